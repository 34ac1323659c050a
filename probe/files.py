"""Where probe keeps its files, and the one way it writes them: atomically.

**The store** (rows, views, frozen-prefix activations) is the first of these that applies:

1. ``$PROBE_CACHE``;
2. the project's, in the folder probe runs in (not its parents): ``cache = "DIR"`` in
   ``./probe.toml``, or under ``[tool.probe]`` in ``./pyproject.toml`` (DIR relative to that
   file); else ``./cache`` when it already holds a probe store (``rows/`` or ``features/``:
   a store an earlier probe made there stays in use);
3. the per-user cache: ``$XDG_CACHE_HOME/probe``, else ``~/.cache/probe`` (macOS
   ``~/Library/Caches/probe``, Windows ``%LOCALAPPDATA%\\probe\\Cache``).

So a command run in any folder never leaves a ``./cache`` there, and one store serves every
folder a user works in unless a project asks for its own. ``probe cache ls`` and ``probe
cache info`` print the store and the rule that chose it on their first line.

**Converted models** (the de-quantized SmolLM2, random-weights baselines) and the memos of
model digests and shapes are shared by every store: ``$PROBE_MODELS``, else the per-user
cache's ``models/``. A store that holds its own ``models/NAME`` (an earlier probe put them
there) is still read from it.

**Outputs** (heads, sweeps, curves, comparison reports) go under one folder: ``$PROBE_OUT``,
else ``./results``, in ``heads/``, ``sweeps/``, ``curves/`` and ``reports/``; ``--out`` and
``--out-dir`` name another place for one command.

Every file probe writes goes to a temporary name in the target's folder, is flushed to
disk, and is moved into place with ``os.replace``: a reader (or a run killed half-way) sees
the old file or the new one, never half of one.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from probe.errors import ProbeError

PROJECT_STORE = "cache"  # ./cache, used when it already holds a store
STORE_PARTS = ("rows", "features")  # what makes a folder a probe store
STORE_README = "README.md"  # written into a new store: its layout, what may be deleted
OUTPUT_ROOT = "results"


class StoreLocation(NamedTuple):
    path: Path
    source: str  # which rule chose it: "PROBE_CACHE", "project ...", "user cache"


def store_location() -> StoreLocation:
    """The store's folder and the rule that chose it (this module's docstring)."""
    named = os.environ.get("PROBE_CACHE")
    if named:
        return StoreLocation(Path(named).expanduser(), "PROBE_CACHE")
    configured = project_setting("cache")
    if configured is not None:
        return configured
    project = Path.cwd() / PROJECT_STORE
    if any((project / part).is_dir() for part in STORE_PARTS):
        return StoreLocation(project, f"project: ./{PROJECT_STORE} holds a store")
    return StoreLocation(user_cache_dir(), "user cache")


def cache_root() -> Path:
    """The store's folder; one that names a file is a one-line error, not a traceback from
    the first ``mkdir`` deep inside extraction."""
    root, source = store_location()
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        named = f"PROBE_CACHE={root}" if source == "PROBE_CACHE" else f"the store {root} ({source})"
        where = "is a file" if existing == root else f"lies under a file ({existing})"
        raise ProbeError(f"{named} {where}; point PROBE_CACHE at a folder")
    return root


def user_cache_dir() -> Path:
    """The per-user cache folder of probe (what ``platformdirs.user_cache_dir`` gives)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "probe" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "probe"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"  # XDG spec
    return base / "probe"


def project_setting(name: str) -> StoreLocation | None:
    """``name`` from ``./probe.toml`` (top level) or ``./pyproject.toml`` (``[tool.probe]``),
    as a path relative to the file; None when neither sets it."""
    for filename, section in (("probe.toml", ()), ("pyproject.toml", ("tool", "probe"))):
        path = Path.cwd() / filename
        if not path.is_file():
            continue
        table = _read_toml(path)
        for key in section:
            table = table.get(key) if isinstance(table, dict) else None
        value = table.get(name) if isinstance(table, dict) else None
        if value is None:
            continue
        where = f"{filename} [tool.probe]" if section else filename
        if not isinstance(value, str) or not value.strip():
            raise ProbeError(f"{path}: {name} must be a folder name in quotes, not {value!r}")
        return StoreLocation(path.parent / Path(value).expanduser(), f"project: {where}")
    return None


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        if path.name == "pyproject.toml":
            return {}  # another tool's file: its own tools report it
        raise ProbeError(f"{path} is not valid TOML ({exc})") from None


def models_root() -> Path:
    """The models folder every store shares: ``$PROBE_MODELS``, else the user cache's."""
    named = os.environ.get("PROBE_MODELS")
    return Path(named).expanduser() if named else user_cache_dir() / "models"


def model_folder(name: str) -> Path:
    """Where the converted model ``name`` lives: the store's own ``models/NAME`` when an
    earlier probe made it there, else the shared models folder (where new ones go)."""
    own = cache_root() / "models" / name
    return own if own.exists() else models_root() / name


def output_root() -> Path:
    """Where results go unless a command is told otherwise: ``$PROBE_OUT``, else ./results."""
    return Path(os.environ.get("PROBE_OUT") or OUTPUT_ROOT).expanduser()


def ensure_store_readme(root: Path | None = None) -> None:
    """Write the store's README (its layout; what may be deleted) into a store that lacks
    one: every store says what it is, whichever rule made it."""
    root = root or cache_root()
    target = root / STORE_README
    if target.is_file():
        return
    from importlib import resources

    text = resources.files("probe").joinpath("assets", "store-README.md").read_text("utf-8")
    root.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(target, text)
    except OSError:
        pass  # a read-only store still serves its rows


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
