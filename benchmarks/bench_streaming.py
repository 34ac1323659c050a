"""Peak memory of a head on a layer larger than we would load: 2M x 576 fp16, streamed.

Writes a synthetic cache-shaped HDF5 file (``last`` [1, 2,000,000, 576] float16, chunks of
4,096 rows, as ``probe extract`` writes them; labels from a noisy linear rule on a rank-32
signal), then fits one head with ``probe.heads.streaming.fit_streamed`` at a given C in a
fresh process and reports that process's peak RSS. Target (issue 13): under 1.5 GB. The
layer alone would take 2.3 GB as fp16 and 4.6 GB as the float32 an in-memory fit uses.

    python benchmarks/bench_streaming.py --rows 2000000 --file /tmp/stream_layer.h5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
DIM, BLOCK = 576, 65536


def make(path: Path, rows: int) -> None:
    import h5py

    rng = np.random.default_rng(0)
    mix = rng.standard_normal((32, DIM), dtype=np.float32)
    direction = rng.standard_normal(32)
    labels = np.empty(rows, np.int8)
    with h5py.File(path, "w") as handle:
        data = handle.create_dataset("last", (1, rows, DIM), np.float16, chunks=(1, 4096, DIM))
        for start in range(0, rows, BLOCK):
            n = min(BLOCK, rows - start)
            latent = rng.standard_normal((n, 32), dtype=np.float32)
            block = latent @ mix + 0.3 * rng.standard_normal((n, DIM), dtype=np.float32)
            block[:, :3] = 40 + 5 * block[:, :3]  # outlier dimensions, as in hidden states
            data[0, start : start + n] = block.astype(np.float16)
            labels[start : start + n] = latent @ direction + rng.logistic(size=n) > 0
    np.save(path.with_suffix(".labels.npy"), labels)


def fit(path: Path, C: float) -> None:
    """In a fresh process: fit, then print seconds, passes and this process's peak RSS."""
    import resource

    from probe.heads.streaming import fit_streamed

    labels = np.load(path.with_suffix(".labels.npy"))
    started = time.perf_counter()
    clf = fit_streamed(path, "last", 0, labels, C=C)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    record = {
        "seconds": seconds,
        "passes": clf.passes_,
        "n_iter": clf.n_iter_,
        "peak_rss_mb": peak_kib / 1024,
    }
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--file", default="/tmp/stream_layer.h5")
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--child", choices=["make", "fit"])
    args = parser.parse_args()
    path = Path(args.file)
    if args.child == "make":
        return make(path, args.rows)
    if args.child == "fit":
        return fit(path, args.C)
    this = [sys.executable, __file__, "--rows", str(args.rows), "--file", str(path)]
    started = time.perf_counter()
    subprocess.run([*this, "--child", "make"], check=True)
    make_seconds = time.perf_counter() - started
    load_before = os.getloadavg()
    out = subprocess.run(
        [*this, "--C", str(args.C), "--child", "fit"], check=True, capture_output=True, text=True
    ).stdout
    report = {
        "command": "python " + " ".join(sys.argv),
        "rows": args.rows,
        "dim": DIM,
        "C": args.C,
        "file_bytes": path.stat().st_size,
        "make_seconds": make_seconds,
        **json.loads(out.strip().splitlines()[-1]),
        "target_peak_rss_mb": 1536,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "streaming_2M.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=1))
    path.unlink()
    path.with_suffix(".labels.npy").unlink()


if __name__ == "__main__":
    main()
