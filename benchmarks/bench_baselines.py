"""What ``probe sweep --baselines`` costs beyond the sweep: target one extraction's time
(the random-weights model over the same texts) plus 10 s.

Three CLI runs on one SMS file, the store warm for the real model:

1. ``probe extract`` with the real model (the extraction time the target allows once more);
2. ``probe sweep`` (features from the cache);
3. ``probe sweep --baselines`` (builds the random-weights model once, extracts the texts with
   it, fits bag of words and the random-weights rows, adds selectivity).

    python benchmarks/bench_baselines.py --n 1000 --layers 0:5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "probe", *args], check=True, cwd=REPO, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--layers", default="all")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_baselines"))
    parser.add_argument("--name", default="baselines_sms")
    args = parser.parse_args()

    import pandas as pd

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / f"sms{args.n}.csv"
    pd.read_csv(REPO / "data" / "sms_spam.csv").head(args.n).to_csv(data, index=False)
    load_before = os.getloadavg()
    common = ["--model", args.model, "--data", str(data), "--layers", args.layers, "-q"]
    extract = timed(
        ["extract", "--model", args.model, "--data", str(data), "--layers", args.layers, "-q"]
    )
    plain = timed(["sweep", *common, "--out-dir", str(args.work / "plain")])
    with_baselines = timed(
        ["sweep", *common, "--baselines", "--out-dir", str(args.work / "baselines")]
    )
    result = json.loads((args.work / "baselines" / "sweep.json").read_text())
    found = result["baselines"]
    random_extract = found["random_extract_seconds"]
    beyond = with_baselines - plain - random_extract
    best = result["best"]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    report = {
        "command": "python " + " ".join(sys.argv),
        "n": result["n"],
        "layers": args.layers,
        "heads": len(result["entries"]),
        "extract_seconds_real_model": extract,
        "sweep_seconds": plain,
        "sweep_with_baselines_seconds": with_baselines,
        "random_weights_model_and_extract_seconds": random_extract,
        "baselines_fit_seconds": found["seconds"],
        "overhead_beyond_random_extraction_seconds": beyond,
        "target": "overhead <= 10 s and random extraction ~ one extraction",
        "majority": found["majority"],
        "bag_of_words": found["bag_of_words"],
        "selected": {
            k: best.get(k)
            for k in (
                "layer",
                "pool",
                "test_accuracy",
                "test_accuracy_ci",
                "selectivity_vs_random",
                "selectivity_vs_random_ci",
                "selectivity_vs_bow",
                "selectivity_vs_bow_ci",
            )
        },
        "machine": {
            "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)),
            "shared": True,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    from probe.research.baselines.report import markdown_baselines

    lines = [
        f"# `probe sweep --baselines`: cost and rows, SMS ({args.n} texts), {args.model}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {cpu}, {report['machine']['cores']} cores, *shared* (load average before "
        f"{tuple(round(x, 1) for x in load_before)}, after "
        f"{tuple(round(x, 1) for x in report['machine']['load_average_after'])}): every time is "
        "an upper bound.",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| `probe extract` (real model, layers {args.layers}) | {extract:.1f} |",
        f"| `probe sweep` ({len(result['entries'])} heads, from the cache) | {plain:.1f} |",
        f"| `probe sweep --baselines` | {with_baselines:.1f} |",
        f"| of which: random-weights model + extraction | {random_extract:.1f} |",
        f"| of which: baseline fits (bag of words, random rows, CIs) | {found['seconds']:.1f} |",
        f"| **overhead beyond the random-weights extraction** (target <= 10 s) | "
        f"**{beyond:.1f}** |",
        "",
        f"Selected row: layer {best['layer']} {best['pool']}, test accuracy "
        f"{best['test_accuracy']:.4f}; minus random weights {best['selectivity_vs_random']:+.4f} "
        f"{best['selectivity_vs_random_ci']}; minus bag of words "
        f"{best['selectivity_vs_bow']:+.4f} {best['selectivity_vs_bow_ci']}.",
        "",
        markdown_baselines(result),
        "",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
