"""What does finding the missing rows of a big dataset cost? (issue 13: a 10M-text corpus)

Builds a synthetic row store (random sha1 keys, D = 1 so the shards stay small, all 31
layers of SmolLM2) of ``--rows`` rows in shards of ``--shard-rows``, then times
``RowStore.missing`` and ``held_layers`` for a dataset of all stored rows plus 10% new
ones, and the peak memory the lookup allocates. Time and memory come from separate runs, each
on a fresh ``RowStore`` (no sorted keys kept from the other): the timed run without
tracemalloc (it slows allocation-heavy code, unevenly between the two lookups), then a run
under tracemalloc for its peak. ``--reference FILE`` does the same for another rowstore
module on the same store (the pre-2026-11-26 dict-based lookup).

    python benchmarks/bench_lookup.py --rows 1000000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
LAYERS = list(range(31))


def build(root: Path, rows: int, shard_rows: int, seed: int = 0) -> np.ndarray:
    from probe.features.store.rowstore import RowStore, Setting

    store = RowStore(Setting("bench", "tok", 512, "right", "float32"), root)
    keys = np.random.default_rng(seed).integers(0, 256, (rows, 20), dtype=np.uint8)
    for start in range(0, rows, shard_rows):
        part = keys[start : start + shard_rows]
        pooled = {p: np.zeros((len(LAYERS), len(part), 1), np.float16) for p in ("last", "mean")}
        store.commit(part, np.full(len(part), 10), pooled, LAYERS)
    return keys


def _lookup(module, root: Path, query: np.ndarray) -> tuple:
    store = module.RowStore(module.Setting("bench", "tok", 512, "right", "float32"), root)
    missing = store.missing(query, LAYERS)
    held = store.held_layers(query[: len(query) // 2])
    return missing, held


def timed_lookup(module, root: Path, query: np.ndarray) -> dict:
    """Seconds of one lookup without tracemalloc; peak traced memory of another."""
    start = time.perf_counter()
    missing, held = _lookup(module, root, query)
    seconds = time.perf_counter() - start
    del missing, held
    tracemalloc.start()
    missing, held = _lookup(module, root, query)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(peak / 2**20, 1),
        "timed_without_tracemalloc": True,
        "memory_from_a_separate_run": True,
        "missing": int(len(missing)),
        "held_layers": len(held),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shard-rows", type=int, default=4096)
    parser.add_argument("--reference", help="another rowstore.py to time on the same store")
    parser.add_argument("--out", default=str(RESULTS / "lookup"))
    args = parser.parse_args()

    import probe.features.store.rowstore as current

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        keys = build(root, args.rows, args.shard_rows)
        build_s = time.perf_counter() - started
        fresh = np.random.default_rng(1).integers(0, 256, (args.rows // 10, 20), dtype=np.uint8)
        query = np.concatenate([keys, fresh])
        result = {
            "rows": args.rows,
            "shard_rows": args.shard_rows,
            "query": len(query),
            "cpu": _cpu(),
            "load_average_before": os.getloadavg(),
            "build_seconds": round(build_s, 1),
            "vectorised": timed_lookup(current, root, query),
        }
        if args.reference:
            spec = importlib.util.spec_from_file_location("reference_rowstore", args.reference)
            reference = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = reference  # dataclasses look their module up
            spec.loader.exec_module(reference)
            result["reference"] = timed_lookup(reference, root, query)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    Path(args.out).with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
