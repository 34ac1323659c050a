"""The one channel from probe to its user: the ``probe`` logger, which the CLI configures.

Library code never prints and takes no ``quiet`` flag or ``log`` callback: it calls ``say``
(a line the user of a command wants: rows reused, texts truncated, labels read), ``hint``
(advice, once per process), ``detail`` (shown with ``-v``) and opens ``progress`` bars, which
show exactly where ``say`` would. The command line calls ``configure`` once per command from
``-q``/``-v``; a notebook sees the same lines through Python's ``logging``
(``logging.getLogger("probe")``) and, like any library's, they are silent until it asks.
"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("probe")
LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property ignores it
        pass


def configure(verbosity: str = "normal") -> None:
    """Show ``say`` lines and progress on stderr (``normal``), also ``detail`` lines
    (``verbose``), or nothing but warnings (``quiet``)."""
    if not any(isinstance(handler, _CurrentStderr) for handler in LOGGER.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOGGER.addHandler(handler)
    LOGGER.setLevel(LEVELS[verbosity])
    LOGGER.propagate = False  # one copy of each line, not another from the root logger


def say(message: str) -> None:
    """A line the user of a command wants to read (hidden by ``-q``)."""
    LOGGER.info(message)


_HINTED: set[str] = set()  # the hints this process has given


def hint(message: str) -> None:
    """Advice that does not change with the run (a faster ``--dtype`` on this CPU): said like
    ``say``, but once per process, however many extractions a command runs."""
    if message not in _HINTED:
        _HINTED.add(message)
        say(message)


def detail(message: str) -> None:
    """A line for ``-v`` only: options given, time taken, why a choice was made."""
    LOGGER.debug(message)


def warn(message: str) -> None:
    """A line even ``-q`` shows: something the user must know about the result."""
    LOGGER.warning(message)


def shown() -> bool:
    """Whether ``say`` lines reach the user now (progress bars follow the same rule)."""
    return LOGGER.isEnabledFor(logging.INFO)


def progress(total: float, desc: str, unit: str = "it", workers: int = 1):
    """A progress bar (terminal) or plain lines (logs), shown where ``say`` lines are;
    ``workers`` items run at once (a parallel sweep), which its ETA allows for."""
    from probe.progress import Progress

    return Progress(total, desc, unit=unit, quiet=not shown(), workers=workers)
