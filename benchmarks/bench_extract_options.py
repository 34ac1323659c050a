"""``probe extract`` end to end with and without --compile / --dtype: does an option pay back?

Each configuration runs the real CLI in a fresh process into an empty store (so a compile
is paid in full, as a user pays it), over the same texts, one after the other. Reported:
wall seconds of the process, the view's ``extract_seconds`` (the pass alone) and real tokens
per second over the wall time. The issue's rule for ``--compile``: keep it where it pays
back its compile time on 10k texts.

    python benchmarks/bench_extract_options.py --data SST2_TRAIN --n 10000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).parent / "results"
CONFIGURATIONS = {
    "fp32 eager": [],
    "fp32 --compile": ["--compile"],
    "bf16 eager": ["--dtype", "bfloat16"],
    "bf16 --compile": ["--dtype", "bfloat16", "--compile"],
}


def run(model: str, data: Path, options: list[str]) -> dict:
    from probe.features.store.caches import open_cache

    with tempfile.TemporaryDirectory() as store:
        # a fresh store, and the shared models folder: the converted GGUF is reused, not rows
        env = {**os.environ, "PROBE_CACHE": store, "HF_HUB_OFFLINE": "1"}
        command = [
            sys.executable,
            "-m",
            "probe",
            "extract",
            "--model",
            model,
            "--data",
            str(data),
            "--layers",
            "all",
            "-q",
            *options,
        ]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        view = open_cache(done.stdout.strip().splitlines()[-1])
        tokens = int(view.n_tokens.sum())
        return {
            "wall_seconds": round(wall, 1),
            "extract_seconds": view.meta["extract_seconds"],
            "real_tokens": tokens,
            "tokens_per_wall_second": round(tokens / wall, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", required=True)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--only", nargs="*", help="configuration names to run")
    parser.add_argument("--out", default=str(RESULTS / "extract_options_10k"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "texts.csv"
        pd.read_csv(args.data).head(args.n).to_csv(data, index=False)
        results = {}
        for name, options in CONFIGURATIONS.items():
            if args.only and name not in args.only:
                continue
            results[name] = run(args.model, data, options)
            print(name, results[name], flush=True)
    eager = results.get("fp32 eager", {}).get("wall_seconds")
    for result in results.values():
        if eager:
            result["speedup_vs_fp32_eager_wall"] = round(eager / result["wall_seconds"], 3)
    summary = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": args.model,
        "data": args.data,
        "texts": args.n,
        "results": results,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = ["| configuration | wall s | extract s | tok/s (wall) | speedup |", "|" + "---|" * 5]
    rows += [
        f"| {name} | {r['wall_seconds']} | {r['extract_seconds']} | "
        f"{r['tokens_per_wall_second']} | {r.get('speedup_vs_fp32_eager_wall', '-')} |"
        for name, r in results.items()
    ]
    out.with_suffix(".md").write_text(
        f"# probe extract options, {args.n} texts of {args.data}\n\n" + "\n".join(rows) + "\n"
    )


if __name__ == "__main__":
    main()
