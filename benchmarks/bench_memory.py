"""Peak RSS of ``probe extract`` at two dataset sizes: it must not grow with N (issue 13).

Each size runs in a fresh subprocess (``resource.getrusage`` reports a process's peak, so
sizes cannot share one) on a fresh store, with a tiny random GPT-2 built here (the real
GPT-2 code path; the model's own memory is the same at every N, so the ratio isolates what
extraction holds per text). Texts are SMS messages made unique by a numbered suffix, so the
store computes every one of them.

    python benchmarks/bench_memory.py --sizes 1000 50000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_extract import cpu_name

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).resolve().parents[1] / "data" / "sms_spam.csv"


def build_tiny_gpt2(folder: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=50257, n_positions=256)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)


def child(model_dir: str, n: int) -> dict:
    """Extract ``n`` texts in this process; report its peak RSS and the run's time."""
    import torch

    torch.set_num_threads(1)  # tiny matrices: OpenMP threads only spin on a shared machine
    from probe.data.readers import TextDataset, read_dataset
    from probe.features.extract import extract

    base = read_dataset(str(DATA)).texts
    texts = [f"{base[i % len(base)]} #{i}" for i in range(n)]
    started = time.perf_counter()
    path = extract(model_dir, TextDataset(texts, None, "bench_memory"), "all")
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "n": n,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "seconds": round(seconds, 1),
        "view_mb": round(Path(path).stat().st_size / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 50000])
    parser.add_argument("--child", nargs=2, metavar=("MODEL_DIR", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS / "memory"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch) / "tiny-gpt2"
        build_tiny_gpt2(model_dir)
        for n in args.sizes:
            env = {
                **os.environ,
                "PROBE_CACHE": str(Path(scratch) / f"store-{n}"),
                "HF_HUB_OFFLINE": "1",
            }
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(model_dir), str(n)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    ratio = runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]
    result = {
        "command": " ".join(["python", *sys.argv]),
        "model": "tiny random GPT-2 (3 blocks, d=32, GPT-2 vocabulary), layers all",
        "runs": runs,
        "peak_rss_ratio_largest_to_smallest": round(ratio, 3),
        "target": "<= 1.3 (issue 13)",
        "met": ratio <= 1.3,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores (RSS does not depend on other jobs)",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
