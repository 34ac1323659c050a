"""The row store: features of one text under one extraction setting, content-addressed.

A **row** is the pooled features of one text (every pool, some layers) under one
:class:`Setting` (model fingerprint, tokenizer, max length, truncation side, compute dtype,
pools). Versions of probe/torch/transformers are not part of it: an upgrade that does not
change the numbers keeps every row. Rows live under ``$PROBE_CACHE/rows/<setting.key>/``:

    setting.json           the setting, for humans and ``probe cache info``
    index.json             the index: committed shards in resolution order, each with its
                           row count and layers; rewritten atomically under ``index.lock``
    shard-*.h5             immutable, written once (temp, fsync, ``os.replace``):
                           /text_sha1 uint8 [n, 20], /n_tokens int32 [n], /layers int64 [k],
                           /<pool> float16 [k, n, D] for each pool

A row key is (setting, text sha1); the index maps it to (shard, row) through the shards'
``text_sha1`` columns, read once per process per shard (shards never change). A text may sit
in several shards (a later request for more layers adds a shard with only the extra layers;
two concurrent writers may both compute it): each (text, layer) resolves to the *earliest*
shard in the index holding it, so what was stored first is never replaced and concurrent
writers agree bitwise on shared rows. ``commit_block(..., prefer=True)`` (``--force``) puts
its shard first instead.

A writer killed at any point leaves a temporary ``.shard-*`` file (before the rename) or a
shard the index does not name (between the rename and the index update): neither is ever
read, and ``probe cache gc`` removes both once their writer process is gone.

API for other engines (the Ray driver): ``missing_rows`` says which texts need the backbone,
``layers_to_compute`` which layers to compute for them, ``commit_block`` stores a finished
block. ``probe.features.store``'s docstring lists their signatures.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES
from probe.files import atomic_path, cache_root, write_atomic

FORMAT_VERSION = 2
SHA1_BYTES = 20


@dataclass(frozen=True)
class Setting:
    """Everything that determines a row's numbers; its hash names the rows' folder."""

    model_fingerprint: str
    tokenizer: str
    max_length: int
    truncation_side: str
    compute_dtype: str  # "float32", "float16", "bfloat16": what the forward pass ran in
    pools: tuple[str, ...] = field(default=POOL_NAMES)

    @property
    def key(self) -> str:
        canonical = json.dumps({"format": FORMAT_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()

    def as_dict(self) -> dict:
        values = asdict(self)
        values["max_length"] = int(values["max_length"])
        values["pools"] = list(self.pools)
        return values


def rows_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "rows"


def layers_to_compute(layers: Sequence[int]) -> list[int]:
    """Extract once: a pass up to layer L computes 0..L anyway, so all of them are stored."""
    return list(range(max(int(x) for x in layers) + 1))


def as_keys(text_sha1: np.ndarray) -> list[bytes]:
    array = np.ascontiguousarray(text_sha1, dtype=np.uint8).reshape(-1, SHA1_BYTES)
    return [row.tobytes() for row in array]


@dataclass
class ShardEntry:
    name: str
    n: int
    layers: list[int]


class RowStore:
    """The rows of one setting: lookups, commits, and reads for views."""

    def __init__(self, setting: Setting, root: Path | None = None):
        self.setting = setting
        self.folder = rows_dir(root) / setting.key
        self._keys: dict[str, list[bytes]] = {}  # shard name -> its text keys (immutable)

    # --- the index ------------------------------------------------------------------------

    def entries(self) -> list[ShardEntry]:
        """Committed shards in resolution order (earliest first)."""
        try:
            raw = json.loads((self.folder / "index.json").read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ProbeError(
                f"the row index {self.folder}/index.json is unreadable ({exc})"
            ) from None
        return [
            ShardEntry(e["name"], int(e["n"]), [int(x) for x in e["layers"]]) for e in raw["shards"]
        ]

    def _shard_keys(self, name: str) -> list[bytes]:
        if name not in self._keys:
            import h5py

            with h5py.File(self.folder / name, "r") as handle:
                self._keys[name] = as_keys(handle["text_sha1"][()])
        return self._keys[name]

    def locate(self, text_sha1: np.ndarray, layers: Sequence[int]) -> dict:
        """{layer: (shard names per text or None, row per text)} by earliest shard."""
        keys = as_keys(text_sha1)
        wanted = [int(x) for x in layers]
        found = {layer: ([None] * len(keys), np.zeros(len(keys), np.int64)) for layer in wanted}
        pending = {layer: set(range(len(keys))) for layer in wanted}
        positions: dict[bytes, list[int]] = {}
        for position, key in enumerate(keys):
            positions.setdefault(key, []).append(position)
        for entry in self.entries():
            useful = [layer for layer in wanted if layer in entry.layers and pending[layer]]
            if not useful:
                continue
            for row, key in enumerate(self._shard_keys(entry.name)):
                for position in positions.get(key, ()):
                    for layer in useful:
                        if position in pending[layer]:
                            pending[layer].discard(position)
                            found[layer][0][position] = entry.name
                            found[layer][1][position] = row
        return found

    def missing(self, text_sha1: np.ndarray, layers: Sequence[int]) -> np.ndarray:
        """Positions (ascending) of texts lacking any of ``layers``."""
        located = self.locate(text_sha1, layers)
        lacking = np.zeros(len(as_keys(text_sha1)), dtype=bool)
        for shards, _ in located.values():
            lacking |= np.asarray([s is None for s in shards], dtype=bool)
        return np.flatnonzero(lacking).astype(np.int64)

    def held_layers(self, text_sha1: np.ndarray) -> set[int]:
        """Layers every one of these texts has (the empty set if one has none)."""
        keys = set(as_keys(text_sha1))
        held: dict[bytes, set[int]] = {key: set() for key in keys}
        for entry in self.entries():
            for key in set(self._shard_keys(entry.name)) & keys:
                held[key].update(entry.layers)
        return set.intersection(*held.values()) if held else set()

    # --- writing --------------------------------------------------------------------------

    def commit(self, text_sha1, n_tokens, pooled: dict, layers: Sequence[int], *,
               truncated=None, prefer: bool = False) -> Path:  # fmt: skip
        """Write one immutable shard, then add it to the index under the lock."""
        import h5py
        from filelock import FileLock

        text_sha1 = np.ascontiguousarray(text_sha1, dtype=np.uint8).reshape(-1, SHA1_BYTES)
        n = len(text_sha1)
        layers = [int(x) for x in layers]
        for pool in self.setting.pools:
            shape = np.shape(pooled[pool])
            if shape[:2] != (len(layers), n):
                raise ValueError(
                    f"pooled['{pool}'] has shape {shape}, expected ({len(layers)}, {n}, D)"
                )
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "setting.json").is_file():
            write_atomic(self.folder / "setting.json", json.dumps(self.setting.as_dict(), indent=1))
        name = (
            f"shard-{time.time_ns()}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.h5"
        )
        with atomic_path(self.folder / name, suffix=".h5") as staging:
            with h5py.File(staging, "w") as handle:
                handle["text_sha1"] = text_sha1
                handle["n_tokens"] = np.asarray(n_tokens, dtype=np.int32)
                handle["layers"] = np.asarray(layers, dtype=np.int64)
                if truncated is not None:
                    handle["truncated"] = np.asarray(truncated, dtype=bool)
                for pool in self.setting.pools:
                    handle.create_dataset(pool, data=np.asarray(pooled[pool], dtype=np.float16))
                handle.attrs["setting"] = self.setting.key
        entry = {"name": name, "n": n, "layers": layers}
        with FileLock(str(self.folder / "index.lock")):
            shards = [asdict(e) for e in self.entries()]
            shards = [entry, *shards] if prefer else [*shards, entry]
            write_atomic(self.folder / "index.json", json.dumps({"shards": shards}))
        return self.folder / name

    # --- reading for views ----------------------------------------------------------------

    def n_tokens(self, text_sha1: np.ndarray, layer: int) -> np.ndarray:
        shards, rows = self.locate(text_sha1, [layer])[layer]
        return self._gather(shards, rows, lambda handle, idx: handle["n_tokens"][()][idx])

    def truncated(self, text_sha1: np.ndarray, layer: int) -> np.ndarray:
        """bool [N]: was each text cut at max_length (shards without the column: n >= max)."""
        shards, rows = self.locate(text_sha1, [layer])[layer]

        def take(handle, idx):
            if "truncated" in handle:
                return handle["truncated"][()][idx]
            return handle["n_tokens"][()][idx] >= self.setting.max_length

        return self._gather(shards, rows, take)

    def read_layer(self, located: tuple, layer: int, pool: str) -> np.ndarray:
        """float16 [N, D] of one layer and pool for the texts ``located`` resolved."""
        shards, rows = located

        def take(handle, idx):
            stored = [int(x) for x in handle["layers"][()]]
            block = handle[pool][stored.index(layer)]  # the shard's whole layer: contiguous
            return block[idx]

        return self._gather(shards, rows, take)

    def _gather(self, shards, rows, take) -> np.ndarray:
        import h5py

        if any(s is None for s in shards):
            raise ProbeError("the row store lacks some rows of this view; re-run probe extract")
        out = None
        names = np.asarray(shards, dtype=object)
        for name in dict.fromkeys(shards):
            positions = np.flatnonzero(names == name)
            with h5py.File(self.folder / name, "r") as handle:
                values = take(handle, rows[positions])
            if out is None:
                out = np.empty((len(shards), *values.shape[1:]), dtype=values.dtype)
            out[positions] = values
        return out


# --- the API other engines call --------------------------------------------------------------


def missing_rows(setting: Setting, text_sha1: np.ndarray, layers: Sequence[int],
                 root: Path | None = None) -> np.ndarray:  # fmt: skip
    """int64 positions into ``text_sha1`` [N, 20] of texts lacking any of ``layers``."""
    return RowStore(setting, root).missing(text_sha1, layers)


def commit_block(setting: Setting, text_sha1: np.ndarray, n_tokens: np.ndarray, pooled: dict,
                 layers: Sequence[int], root: Path | None = None, *, truncated=None,
                 prefer: bool = False) -> Path:  # fmt: skip
    """Store a computed block ({pool: float16 [len(layers), n, D]}) as one shard + index entry.

    ``truncated`` (bool [n], optional): which texts were cut at max_length.
    """
    return RowStore(setting, root).commit(
        text_sha1, n_tokens, pooled, layers, truncated=truncated, prefer=prefer
    )


# --- housekeeping ---------------------------------------------------------------------------

FOREIGN_TEMP_AGE_S = 24 * 3600  # a writer on another host is trusted this long


def _writer_gone(name: str, mtime: float) -> bool:
    """Whether the process that named a shard ``shard-<ns>-<host>-<pid>-<id>.h5`` has exited."""
    stem = name.lstrip(".").split(".h5")[0]
    parts = stem.split("-")
    try:
        host, pid = "-".join(parts[2:-2]), int(parts[-2])
    except (IndexError, ValueError):
        return time.time() - mtime > FOREIGN_TEMP_AGE_S
    if host != socket.gethostname():
        return time.time() - mtime > FOREIGN_TEMP_AGE_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def orphans(folder: Path) -> list[Path]:
    """Temporary shards and shards the index does not name, whose writer has exited."""
    setting = (
        json.loads((folder / "setting.json").read_text())
        if (folder / "setting.json").is_file()
        else None
    )
    named = set()
    if setting is not None:
        store = RowStore(
            Setting(**{**setting, "pools": tuple(setting["pools"])}), folder.parents[1]
        )
        named = {entry.name for entry in store.entries()}
    found = []
    for path in folder.iterdir():
        is_shard = path.name.startswith(("shard-", ".shard-")) and ".h5" in path.name
        if not is_shard or path.name in named:
            continue
        if _writer_gone(path.name, path.stat().st_mtime):
            found.append(path)
    return found


def setting_report(folder: Path) -> dict:
    """Rows (distinct texts), shards, bytes and orphans of one setting's folder."""
    import h5py

    try:
        setting = json.loads((folder / "setting.json").read_text())
        store = RowStore(
            Setting(**{**setting, "pools": tuple(setting["pools"])}), folder.parents[1]
        )
        entries = store.entries()
    except (OSError, ValueError, TypeError, ProbeError):
        setting, entries = {}, []
    keys: set[bytes] = set()
    layers: set[int] = set()
    for entry in entries:
        with h5py.File(folder / entry.name, "r") as handle:
            keys.update(as_keys(handle["text_sha1"][()]))
        layers.update(entry.layers)
    return {
        "setting": folder.name,
        "model_fingerprint": setting.get("model_fingerprint"),
        "max_length": setting.get("max_length"),
        "compute_dtype": setting.get("compute_dtype"),
        "rows": len(keys),
        "layers": sorted(layers),
        "shards": len(entries),
        "bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
        "orphans": len(orphans(folder)),
    }


def collect_garbage(root: Path | None = None) -> list[tuple[Path, int]]:
    """Remove orphan shards (a crashed writer's) and stale temporary view files.

    Returns (path, bytes) of each file removed."""
    removed = []
    folder = rows_dir(root)
    for setting_folder in sorted(folder.iterdir()) if folder.is_dir() else []:
        if setting_folder.is_dir():
            for path in orphans(setting_folder):
                removed.append((path, path.stat().st_size))
                path.unlink(missing_ok=True)
    views = (root or cache_root()) / "features"
    for path in sorted(views.glob(".*.h5*")) if views.is_dir() else []:
        if path.is_file() and time.time() - path.stat().st_mtime > 3600:  # no pid in the name
            removed.append((path, path.stat().st_size))
            path.unlink(missing_ok=True)
    return removed
