"""Extracting a superset costs only its new texts: SMS texts 0..N-1, then 0..M-1.

Both runs use one loaded backbone (start-up excluded) and a fresh store; the second run's
shared rows must be bitwise the first run's. Target (issue 13): the second run costs at most
35% of the first.

    python benchmarks/bench_incremental.py [--model smollm2-135m] [--first 1000] [--second 1200]
    -> benchmarks/results/incremental.md
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_extract import cpu_name

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "incremental.md"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--first", type=int, default=1000)
    parser.add_argument("--second", type=int, default=1200)
    parser.add_argument("--layers", default="all")
    args = parser.parse_args()
    os.environ["PROBE_CACHE"] = tempfile.mkdtemp(prefix="bench-incremental-")

    from probe.data.readers import TextDataset
    from probe.features.extract import extract
    from probe.features.models.loading import load_backbone
    from probe.features.store.caches import open_cache

    texts = pd.read_csv(REPO / "data" / "sms_spam.csv").text.tolist()
    started = time.perf_counter()
    backbone = load_backbone(args.model, device="cpu")
    load_s = time.perf_counter() - started
    runs = []
    for n in (args.first, args.second):
        started = time.perf_counter()
        path = extract(backbone, TextDataset(texts[:n], None, f"sms{n}"), args.layers)
        runs.append((n, time.perf_counter() - started, open_cache(path)))
    (n1, t1, a), (n2, t2, b) = runs
    for layer in a.layers:
        for pool in ("last", "mean"):
            np.testing.assert_array_equal(b.features(layer, pool)[:n1], a.features(layer, pool))
    lines = [
        "# Incremental extraction: a superset costs only its new texts",
        "",
        f"Model {args.model} (CPU, fp32), SMS texts, layers {args.layers} "
        f"({len(a.layers)} stored), one loaded backbone (load {load_s:.1f} s, excluded).",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores (times are upper bounds if other "
        "jobs ran).",
        f"Command: `python benchmarks/bench_incremental.py --model {args.model} "
        f"--first {n1} --second {n2} --layers {args.layers}`",
        "",
        "| run | texts | computed rows | reused rows | extract() s | of these: model s |",
        "|---|---|---|---|---|---|",
        f"| first | {n1} | {a.meta['computed_rows']} | {a.meta['reused_rows']} | {t1:.1f} | "
        f"{a.meta['extract_seconds']:.1f} |",
        f"| superset | {n2} | {b.meta['computed_rows']} | {b.meta['reused_rows']} | {t2:.1f} | "
        f"{b.meta['extract_seconds']:.1f} |",
        "",
        f"Superset / first: **{t2 / t1:.0%}** (target <= 35%). The {n1} shared rows of every "
        "stored layer and pool are bitwise equal (checked by the script).",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
