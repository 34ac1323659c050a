"""Housekeeping of the row store: orphan shards found and removed, one setting's folder reported.

A killed writer leaves a temporary ``.shard-*`` file or a shard the index does not name;
neither is ever read. Cut from ``probe.features.store.rowstore`` because finding them (whose
writer is gone, on which host) and sizing a folder for ``probe cache info`` are jobs of
``probe cache``, not of the reads and commits an extraction makes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES
from probe.features.store.rowstore import RowStore, Setting, as_keys, rows_dir
from probe.files import cache_root

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
    keys = []
    layers: set[int] = set()
    units = unit_layers = 0  # vectors stored (a ragged row holds one per word or token)
    for entry in entries:
        with h5py.File(folder / entry.name, "r") as handle:
            keys.append(as_keys(handle["text_sha1"][()]).copy())
            held = int(handle["offsets"][-1]) if "offsets" in handle else entry.n
        units += held
        unit_layers += held * len(entry.layers)
        layers.update(entry.layers)
    distinct = np.unique(np.concatenate(keys)) if keys else keys
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    pools = setting.get("pools") or []
    return {
        "setting": folder.name,
        "model_fingerprint": setting.get("model_fingerprint"),
        "max_length": setting.get("max_length"),
        "compute_dtype": setting.get("compute_dtype"),
        "rows": len(distinct),
        "layers": sorted(layers),
        "shards": len(entries),
        "bytes": size,
        "orphans": len(orphans(folder)),
        "unit": pools[0] if len(pools) == 1 and pools[0] not in POOL_NAMES else "sentence",
        "units": units,
        "bytes_per_unit_layer": size / unit_layers if unit_layers else None,
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
