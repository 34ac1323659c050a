"""Where probe keeps its files, and the one way it writes them: atomically.

The store is named by ``PROBE_CACHE``, else ``./cache``. Every file probe writes goes to a
temporary name in the target's folder, is flushed to disk, and is moved into place with
``os.replace``: a reader (or a run killed half-way) sees the old file or the new one, never
half of one.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from probe.errors import ProbeError


def cache_root() -> Path:
    """The store's folder; a ``PROBE_CACHE`` that names a file is a one-line error, not a
    traceback from the first ``mkdir`` deep inside extraction."""
    root = Path(os.environ.get("PROBE_CACHE") or "cache").expanduser()
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        named = f"PROBE_CACHE={root}" if os.environ.get("PROBE_CACHE") else f"the store {root}"
        where = "is a file" if existing == root else f"lies under a file ({existing})"
        raise ProbeError(f"{named} {where}; point PROBE_CACHE at a folder")
    return root


@contextmanager
def atomic_path(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``target``; on success it replaces ``target``, else it goes."""
    target = Path(target)
    fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(staging)
        with open(staging, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(staging, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would give
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)


def write_atomic(target: str | Path, payload: bytes | str) -> None:
    """Write ``payload`` (text as UTF-8) to ``target`` atomically."""
    data = payload.encode() if isinstance(payload, str) else payload
    with atomic_path(target) as staging:
        staging.write_bytes(data)


@functools.cache
def _umask() -> int:
    """The process umask, read once: reading it means setting it, which must not race with
    files other threads create (extraction writes from a background thread)."""
    current = os.umask(0o022)
    os.umask(current)
    return current
