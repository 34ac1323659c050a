"""Housekeeping of the row store: what a setting's folder holds, and what ``probe cache gc`` frees.

Three kinds of bytes are never read. A killed writer leaves a temporary ``.shard-*`` file or a
shard the index does not name (*orphans*). A (text, layer) stored twice (``--force``, two
processes computing the same text, or a store made before extraction stored only the layers
a text lacked) resolves to the earliest shard holding it: the later copy is *superseded*.
And views (``features/``) are copies of their rows, rebuilt from them without the model.
Cut from ``probe.features.store.rowstore`` because finding them (whose writer is gone, on
which host; which copy a lookup resolves to) and sizing a folder are jobs of ``probe
cache``, not of the reads and commits an extraction makes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES
from probe.features.store.rowstore import SHA1_BYTES, RowStore, Setting, ShardEntry, rows_dir
from probe.files import cache_root, write_atomic

FOREIGN_TEMP_AGE_S = 24 * 3600  # a writer on another host is trusted this long


def _process_gone(host: str, pid: int, mtime: float) -> bool:
    """Whether process ``pid`` on ``host`` has exited (another host's: after a day)."""
    if host != socket.gethostname():
        return time.time() - mtime > FOREIGN_TEMP_AGE_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _writer_gone(name: str, mtime: float) -> bool:
    """Whether the process that named a shard ``shard-<ns>-<host>-<pid>-<id>.h5`` has exited."""
    stem = name.lstrip(".").split(".h5")[0]
    parts = stem.split("-")
    try:
        host, pid = "-".join(parts[2:-2]), int(parts[-2])
    except (IndexError, ValueError):
        return time.time() - mtime > FOREIGN_TEMP_AGE_S
    return _process_gone(host, pid, mtime)


def _store_of(folder: Path) -> RowStore | None:
    """The row store of one setting's folder (None without a readable ``setting.json``)."""
    try:
        setting = json.loads((folder / "setting.json").read_text())
        return RowStore(Setting(**{**setting, "pools": tuple(setting["pools"])}), folder.parents[1])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def orphans(folder: Path) -> list[Path]:
    """Temporary shards and shards the index does not name, whose writer has exited."""
    store = _store_of(folder)
    named = {entry.name for entry in store.entries()} if store is not None else set()
    found = []
    for path in folder.iterdir():
        is_shard = path.name.startswith(("shard-", ".shard-")) and ".h5" in path.name
        if not is_shard or path.name in named:
            continue
        if _writer_gone(path.name, path.stat().st_mtime):
            found.append(path)
    return found


class ShardUse(NamedTuple):
    """What of one committed shard lookups still read."""

    entry: ShardEntry
    units: np.ndarray  # int64 [n]: vectors per row (1 for sentence rows, words for word rows)
    live: np.ndarray  # bool [n, k]: the (row, layer) pairs a lookup resolves to this shard
    bytes: int

    @property
    def stored(self) -> int:  # unit vectors of every layer held
        return int(self.units.sum()) * len(self.entry.layers)

    @property
    def used(self) -> int:
        return int((self.units[:, None] * self.live).sum())


def shard_uses(store: RowStore) -> list[ShardUse]:
    """Every committed shard with the (row, layer) pairs that resolve to it."""
    import h5py

    entries = store.entries()
    units = []
    for entry in entries:
        with h5py.File(store.folder / entry.name, "r") as handle:
            held = np.diff(handle["offsets"][()]) if "offsets" in handle else np.ones(entry.n)
        units.append(held.astype(np.int64))
    live = [np.zeros((entry.n, len(entry.layers)), bool) for entry in entries]
    keys = [store.shard_keys(entry.name) for entry in entries]
    distinct = np.unique(np.concatenate(keys)) if keys else []
    if len(distinct):
        index_of = {entry.name: i for i, entry in enumerate(entries)}
        layers = sorted({layer for entry in entries for layer in entry.layers})
        as_sha1 = distinct.view(np.uint8).reshape(-1, SHA1_BYTES)
        for layer, where in store.locate(as_sha1, layers).items():
            for shard in np.unique(where.shard[where.shard >= 0]):
                i = index_of.get(where.names[shard])
                if i is not None:
                    rows = where.row[where.shard == shard]
                    live[i][rows, entries[i].layers.index(layer)] = True
    return [
        ShardUse(entry, held, used, (store.folder / entry.name).stat().st_size)
        for entry, held, used in zip(entries, units, live, strict=True)
    ]


def setting_report(folder: Path) -> dict:
    """Rows (distinct texts), units, shards, bytes, superseded copies and orphans of one
    setting's folder; every count is of distinct (text, layer) pairs unless named stored."""
    store = _store_of(folder)
    setting = json.loads((folder / "setting.json").read_text()) if store is not None else {}
    try:
        uses = shard_uses(store) if store is not None else []
    except (OSError, ValueError, ProbeError):
        uses = []
    keys = [store.shard_keys(use.entry.name) for use in uses]
    all_units = np.concatenate([use.units for use in uses]) if uses else np.zeros(0, np.int64)
    distinct, first = np.unique(np.concatenate(keys), return_index=True) if keys else ([], [])
    stored = sum(use.stored for use in uses)
    used = sum(use.used for use in uses)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    pools = setting.get("pools") or []
    return {
        "setting": folder.name,
        "model_fingerprint": setting.get("model_fingerprint"),
        "max_length": setting.get("max_length"),
        "compute_dtype": setting.get("compute_dtype"),
        "rows": len(distinct),
        "layers": sorted({layer for use in uses for layer in use.entry.layers}),
        "shards": len(uses),
        "bytes": size,
        "orphans": len(orphans(folder)),
        "unit": pools[0] if len(pools) == 1 and pools[0] not in POOL_NAMES else "sentence",
        "units": int(all_units[first].sum()) if len(distinct) else 0,  # each text's once
        "unit_layers": used,
        "stored_unit_layers": stored,
        "superseded_bytes": int(sum(u.bytes * (1 - u.used / u.stored) for u in uses if u.stored)),
        "bytes_per_unit_layer": size / stored if stored else None,
    }


# --- probe cache gc ----------------------------------------------------------------------------


def views_being_made(root: Path | None = None) -> list[Path]:
    """``<view>.h5.partial/`` folders whose extraction is still running (it reads shards)."""
    folder = (root or cache_root()) / "features"
    running = []
    for partial in sorted(folder.glob("*.partial")) if folder.is_dir() else []:
        try:
            manifest = json.loads((partial / "manifest.json").read_text())
            host, pid = str(manifest["host"]), int(manifest["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a run from before pids were recorded: long gone
        if not _process_gone(host, pid, partial.stat().st_mtime):
            running.append(partial)
    return running


def reclaim_superseded(store: RowStore) -> list[tuple[Path, int]]:
    """Rewrite each shard holding superseded pairs as shards of only its used ones (one per
    pattern of used layers, in its place in the index, so every lookup resolves as before)
    when they are smaller; a shard nothing resolves to leaves the index. Returns (path,
    bytes freed) per shard rewritten or removed."""
    removed = []
    for use in shard_uses(store):
        if use.live.all():
            continue
        patterns, group = np.unique(use.live, axis=0, return_inverse=True)
        group = group.reshape(-1)
        parts = [
            _subset_shard(store, use.entry, np.flatnonzero(group == index), pattern)
            for index, pattern in enumerate(patterns)
            if pattern.any()
        ]
        path = store.folder / use.entry.name
        kept = sum((store.folder / part.name).stat().st_size for part in parts)
        if kept < use.bytes and _replace_in_index(store, use.entry.name, parts):
            removed.append((path, use.bytes - kept))
            path.unlink(missing_ok=True)
        else:  # no smaller (a few tiny rows: files cost more), or another gc got there first
            for part in parts:
                (store.folder / part.name).unlink(missing_ok=True)
    return removed


def _subset_shard(store: RowStore, entry: ShardEntry, rows, keep) -> ShardEntry:
    """A new shard file (not yet in the index) of ``rows`` x the layers ``keep`` marks."""
    import h5py

    from probe.features.store.wordrows import UNITS_NODE

    picked = [i for i, wanted in enumerate(keep) if wanted]
    layers = [entry.layers[i] for i in picked]
    with h5py.File(store.folder / entry.name, "r") as handle:
        columns = {name: handle[name][()][rows] for name in ("text_sha1", "n_tokens")}
        truncated = handle["truncated"][()][rows] if "truncated" in handle else None
        if "offsets" in handle:  # ragged rows: one span of units per row
            offsets = handle["offsets"][()]
            spans = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in rows])
            counts = np.diff(offsets)[rows]
            arrays = {
                "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                "aligned": handle["aligned"][()][spans],
                UNITS_NODE: np.stack([handle[UNITS_NODE][i][spans] for i in picked]),
            }
        else:
            arrays = {
                pool: np.stack([handle[pool][i][rows] for i in picked])
                for pool in store.setting.pools
            }
    path = store.write_shard_file(
        columns["text_sha1"], columns["n_tokens"], layers, truncated, arrays
    )
    return ShardEntry(path.name, len(rows), layers)


def _replace_in_index(store: RowStore, name: str, parts: list[ShardEntry]) -> bool:
    from filelock import FileLock

    with FileLock(str(store.folder / "index.lock")):
        shards = [asdict(entry) for entry in store.entries()]
        names = [shard["name"] for shard in shards]
        if name not in names:
            return False
        at = names.index(name)
        shards[at : at + 1] = [asdict(part) for part in parts]
        write_atomic(store.folder / "index.json", json.dumps({"shards": shards}))
    return True


class Collected(NamedTuple):
    """What ``probe cache gc`` removed: (path, bytes) per file, by kind."""

    orphans: list
    superseded: list
    views: list
    running: list  # views being made: superseded copies are left while one reads the rows


def collect_garbage(root: Path | None = None, views: bool = False) -> Collected:
    """Remove orphan shards and stale temporary view files (a crashed writer's), superseded
    copies of rows (unless a view is being made), and with ``views`` every complete view."""
    root = root or cache_root()
    orphaned, superseded, removed_views = [], [], []
    folder = rows_dir(root)
    settings = [p for p in sorted(folder.iterdir()) if p.is_dir()] if folder.is_dir() else []
    for setting_folder in settings:
        for path in orphans(setting_folder):
            orphaned.append((path, path.stat().st_size))
            path.unlink(missing_ok=True)
    running = views_being_made(root)
    for setting_folder in settings if not running else []:
        store = _store_of(setting_folder)
        superseded += reclaim_superseded(store) if store is not None else []
    features = root / "features"
    for path in sorted(features.glob(".*.h5*")) if features.is_dir() else []:
        if path.is_file() and time.time() - path.stat().st_mtime > 3600:  # no pid in the name
            orphaned.append((path, path.stat().st_size))
            path.unlink(missing_ok=True)
    for path in sorted(features.glob("*.h5")) if views and features.is_dir() else []:
        removed_views.append((path, path.stat().st_size))
        path.unlink(missing_ok=True)
    return Collected(orphaned, superseded, removed_views, running)
