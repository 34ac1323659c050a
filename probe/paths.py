"""Where probe keeps its files: the store named by ``PROBE_CACHE``, else ``./cache``."""

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("PROBE_CACHE") or "cache").expanduser()
