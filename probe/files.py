"""Where probe keeps its files, and the one way it writes them: atomically.

The store is named by ``PROBE_CACHE``, else ``./cache``. Every file probe writes goes to a
temporary name in the target's folder, is flushed to disk, and is moved into place with
``os.replace``: a reader (or a run killed half-way) sees the old file or the new one, never
half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("PROBE_CACHE") or "cache").expanduser()


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
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)


def write_atomic(target: str | Path, payload: bytes | str) -> None:
    """Write ``payload`` (text as UTF-8) to ``target`` atomically."""
    data = payload.encode() if isinstance(payload, str) else payload
    with atomic_path(target) as staging:
        staging.write_bytes(data)
