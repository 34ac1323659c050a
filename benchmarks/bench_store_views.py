"""A dataset view as a copy of its rows vs an HDF5 virtual dataset over the shards.

What ``fit`` pays is one layer read ([N, D] float16); what the store pays is bytes and the
time to write the view. Rows are synthetic (the numbers do not matter, the layout does):
N rows of D=576 (SmolLM2's width), L layers, in shards of 4096 rows. Two shard orders:
``view order`` (a shard holds a run of consecutive view rows: one VDS mapping per shard)
and ``length-sorted`` (how extraction commits them: one VDS mapping per row).

    python benchmarks/bench_store_views.py [N]   -> benchmarks/results/store_views.md
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from probe.features.store.rowstore import RowStore, Setting
from probe.features.store.views import materialise

D, LAYERS, SHARD = 576, 4, 4096
RESULTS = Path(__file__).parent / "results" / "store_views.md"


def build_store(root: Path, n: int, shuffled: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, 20), dtype=np.uint8)
    order = rng.permutation(n) if shuffled else np.arange(n)
    store = RowStore(Setting("fp", "tok", 512, "right", "float32"), root)
    for start in range(0, n, SHARD):
        rows = order[start : start + SHARD]
        pooled = {
            p: rng.standard_normal((LAYERS, len(rows), D)).astype(np.float16)
            for p in store.setting.pools
        }
        store.commit(keys[rows], np.full(len(rows), 10), pooled, list(range(LAYERS)))
    return store, keys


def virtual_view(path: Path, store: RowStore, keys: np.ndarray) -> int:
    """One VDS per pool over the shards; returns the number of mappings."""
    n = len(keys)
    located = store.locate(keys, range(LAYERS))
    mappings = 0
    with h5py.File(path, "w") as handle:
        for pool in store.setting.pools:
            layout = h5py.VirtualLayout(shape=(LAYERS, n, D), dtype=np.float16)
            for layer in range(LAYERS):
                where = located[layer]
                for shard in dict.fromkeys(where.shard.tolist()):
                    name = where.names[shard]
                    positions = np.flatnonzero(where.shard == shard)
                    shard_rows = where.row[positions]
                    source = h5py.VirtualSource(
                        str(store.folder / name), pool, shape=(LAYERS, SHARD_LEN[name], D)
                    )
                    # split into runs where both view positions and shard rows are consecutive
                    breaks = np.flatnonzero((np.diff(positions) != 1) | (np.diff(shard_rows) != 1))
                    starts = np.concatenate([[0], breaks + 1])
                    stops = np.concatenate([breaks + 1, [len(positions)]])
                    for a, b in zip(starts, stops, strict=True):
                        layout[layer, positions[a] : positions[b - 1] + 1] = source[
                            layer, shard_rows[a] : shard_rows[b - 1] + 1
                        ]
                        mappings += 1
            handle.create_virtual_dataset(pool, layout)
    return mappings


SHARD_LEN: dict[str, int] = {}


def read_layer(path: Path, pool="last", layer=2) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        with h5py.File(path, "r") as handle:
            handle[pool][layer].astype(np.float32)
        best = min(best, time.perf_counter() - started)
    return best


def main(n: int) -> None:
    lines = [
        "# Dataset views: a copy vs an HDF5 virtual dataset (VDS) over the shards",
        "",
        f"Synthetic rows: N={n}, D={D}, {LAYERS} layers x 2 pools, fp16, shards of {SHARD} rows.",
        "Read = one layer [N, D] of one pool as float32, best of 3, page cache warm (what "
        "`fit` does). Machine: 2 shared cores with other jobs running (times are upper bounds).",
        f"Command: `python benchmarks/bench_store_views.py {n}`",
        "",
        "| shard order | view | write s | view MB | VDS mappings | read one layer s |",
        "|---|---|---|---|---|---|",
    ]
    for shuffled in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            store, keys = build_store(root, n, shuffled)
            for entry in store.entries():
                SHARD_LEN[entry.name] = entry.n
            copy_path, vds_path = root / "copy.h5", root / "vds.h5"
            started = time.perf_counter()
            materialise(copy_path, store, keys, list(range(LAYERS)), {"key": "bench"})
            copy_write = time.perf_counter() - started
            started = time.perf_counter()
            mappings = virtual_view(vds_path, store, keys)
            vds_write = time.perf_counter() - started
            order = "length-sorted" if shuffled else "view order"
            for name, path, write, maps in (
                ("copy", copy_path, copy_write, "-"),
                ("VDS", vds_path, vds_write, mappings),
            ):
                size = os.path.getsize(path) / 1e6
                lines.append(
                    f"| {order} | {name} | {write:.2f} | {size:.1f} | {maps} | "
                    f"{read_layer(path):.3f} |"
                )
                print(lines[-1], flush=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
