"""One exception type for every user-facing failure, and the one-line rule for messages.

The CLI turns a ``ProbeError`` into a one-line message and exit code 1. A few errors of the
environment (a full disk, a denied write, a path of the wrong kind, memory) are expected
too and get one line from ``environment_message``; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import errno
import re

MAX_LINE = 200  # the longest error line a user sees, "Error: " included
_CLICK_PREFIX = len("Error: ")


class ProbeError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class RowsFailed(ProbeError):
    """A command wrote its results, but some rows could not be fitted (each said above): the
    CLI's exit status 3 instead of 1, so a script can tell it from bad input."""

    exit_code = 3


def short_reason(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception from a library, for quoting inside a one-line error;
    a long one loses its middle (``shorten``), so a library's own advice at the end stays."""
    text = str(exc)
    return shorten(text.splitlines()[0] if text.strip() else type(exc).__name__, limit)


def shorten(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: its head, ``…``, and its tail.

    The tail is what follows the last ``; `` (probe's messages put the remedy there: ``… are
    not in the cache (e.g. …); extract them first: probe extract --data x.csv``) when that
    fits in half the line, else the last sentence when it does, else the last 40% of the line
    from a word's start. What is lost is the middle: examples, a quoted reason, a path.
    """
    if len(text) <= limit:
        return text
    if limit < 2:
        return text[:limit]
    half = limit // 2
    tail = ""
    for mark in ("; ", ". "):
        cut = text.rfind(mark, 1)
        if cut > 0 and len(text) - cut <= half:
            tail = text[cut:] if mark == "; " else text[cut + 1 :]
            break
    if not tail:
        size = max((limit - 1) * 2 // 5, 1)
        tail = text[-size:]
        space = tail.find(" ")
        if 0 <= space < size // 3:  # start at a word, unless that wastes a third of it
            tail = tail[space:]
    head = text[: limit - 1 - len(tail)].rstrip()
    return head + "…" + tail


def is_bare_exception(exc: BaseException) -> bool:
    """Whether ``exc`` is a plain ``Exception``: what tokenizers raises for any error of its
    Rust core and Ray for a start-up timeout. No ``except`` clause names it without every
    other type too, so where those libraries are called the handler catches ``Exception``
    and re-raises whatever is not this one (``tests/test_house.py`` lists those places)."""
    return type(exc) is Exception


def http_errors() -> tuple[type[Exception], ...]:
    """The errors of the HTTP clients huggingface_hub and datasets use (httpx, httpx2) that
    they may let through: those clients' ``HTTPError`` derives from ``Exception``, not
    ``OSError`` as requests' does. Only clients already imported count (none is imported
    here)."""
    import sys

    clients = [sys.modules[name] for name in ("httpx", "httpx2") if name in sys.modules]
    return tuple(client.HTTPError for client in clients if hasattr(client, "HTTPError"))


def one_line(message: str, limit: int = MAX_LINE - _CLICK_PREFIX) -> str:
    """The first non-empty line of ``message`` in at most ``limit`` characters.

    A safety net: messages are written to fit, but one that quotes a library or a long path
    must still not push a traceback-sized wall of text at the user. Paths lose their folders
    first; then the middle goes (``shorten``), never the remedy at the end.
    """
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    first = lines[0] if lines else "failed"
    if len(first) > limit:  # long paths lose their folders first, the advice stays
        first = re.sub(r"/[^\s'\"()]*/([^/\s'\"()]+/[^/\s'\"()]+)", r"…/\1", first)
    if len(first) > limit:  # still too long (deep temporary folders): keep file names only
        first = re.sub(r"…/[^/\s'\"()]+/([^/\s'\"()]+)", r"…/\1", first)
    return shorten(first, limit)


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def environment_message(exc: BaseException) -> str | None:
    """One line for an expected failure of the machine rather than of probe, else None."""
    if isinstance(exc, MemoryError):
        return one_line(f"out of memory ({short_reason(exc, 80)}); use fewer texts or layers")
    if type(exc).__name__ == "OutOfMemoryError":  # torch's, without importing torch
        return "the GPU ran out of memory; lower --batch-tokens or --max-length, or --device cpu"
    if not isinstance(exc, OSError):
        return None
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in _DISK_FULL:
        return one_line(f"disk full while writing{where}; free space or set PROBE_CACHE elsewhere")
    if isinstance(exc, PermissionError) or exc.errno in _DENIED:
        return one_line(f"permission denied:{where or ' ' + short_reason(exc, 80)}")
    if isinstance(exc, IsADirectoryError):
        return one_line(f"expected a file, found a folder:{where}")
    if isinstance(exc, NotADirectoryError):
        return one_line(f"expected a folder, but part of this path is a file:{where}")
    if isinstance(exc, FileNotFoundError):
        return one_line(f"not found:{where or ' ' + short_reason(exc, 80)}")
    return None
