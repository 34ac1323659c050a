"""The research sweep and a learning curve from the cache: how long the extra measures cost.

Targets (issue 14): ``probe sweep --control --mdl`` on a 2,000-sentence SST-2 training
subset (SmolLM2-135M, 31 layers x 2 pools = 62 rows; C searched on the 872 validation
sentences; 1,000 test sentences for the CIs) in under 3 minutes on 2 cores; a learning curve
(1, 2, 4 .. 128 per class and all; 5 seeds) in under 30 s. The features come from the cache
(extract the three files first; here a cache hit, no model run). The subset is drawn here,
seeded, from the full SST-2 training file: 2,000 training and 1,000 disjoint test rows.

    python benchmarks/bench_research.py --sst2 ../shared/datasets/sst2 --subset-dir /tmp/sst2k
    # the same sweep on the command line:
    probe sweep --model smollm2-135m --train /tmp/sst2k/sst2_train2k.csv \\
        --val ../shared/datasets/sst2/validation.csv --test /tmp/sst2k/sst2_test1k.csv \\
        --control --mdl --out-dir sweeps/research-sst2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def make_subset(sst2: Path, folder: Path) -> tuple[Path, Path]:
    """2,000 training and 1,000 test rows of SST-2's training file (pandas sample, seed 0)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    train, test = folder / "sst2_train2k.csv", folder / "sst2_test1k.csv"
    if not (train.is_file() and test.is_file()):
        sample = pd.read_csv(sst2 / "train.csv").sample(n=3000, random_state=0)
        sample.iloc[:2000].to_csv(train, index=False)
        sample.iloc[2000:].to_csv(test, index=False)
    return train, test


def _signed(row: dict, key: str) -> str:
    if row.get(key) is None:
        return "-"
    low, high = row[f"{key}_ci"]
    return f"{row[key]:+.4f} [{low:+.3f}, {high:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sst2", type=Path, default=Path("../shared/datasets/sst2"))
    parser.add_argument("--subset-dir", type=Path, default=Path("/tmp/sst2k"))
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--name", default="research_sst2")
    parser.add_argument("--no-baselines", action="store_true")
    args = parser.parse_args()

    from probe.heads.rows import prepare
    from probe.research.curve import learning_curve
    from probe.research.curve import markdown_table as curve_table
    from probe.research.sweep import public, run_sweep
    from probe.research.sweep_report import markdown_table

    train, test = make_subset(args.sst2, args.subset_dir)
    load_before = os.getloadavg()
    started = time.perf_counter()

    from probe.messages import configure

    configure("normal")  # prepare's lines and the progress of extraction and sweep on stderr
    data = prepare(
        args.model,
        train=str(train),
        val=str(args.sst2 / "validation.csv"),
        test=str(test),
        layers="all",
    )
    prepare_seconds = time.perf_counter() - started
    started = time.perf_counter()
    baselines = None
    if not args.no_baselines:
        from probe.research.baselines.inputs import prepare_baselines

        baselines = prepare_baselines(data)
    baseline_prepare_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = run_sweep(data, n_jobs=args.jobs, control=True, mdl=True, baselines=baselines)
    sweep_wall = time.perf_counter() - started
    best = result["best"]
    print(markdown_table(result))
    curve = learning_curve(
        data, best["layer"], best["pool"], seeds=5, n_jobs=args.jobs or len(os.sched_getaffinity(0))
    )
    print(curve_table(curve))
    load_after = os.getloadavg()
    entries = [r for r in result["entries"] if not r.get("error")]

    def ranks(key):
        return [sorted(entries, key=lambda r: -r[key]).index(r) for r in entries]

    from scipy.stats import spearmanr

    rank_correlation = float(spearmanr(ranks("test_accuracy"), ranks("mdl_compression"))[0])
    compression = [r["mdl_compression"] for r in entries]
    below = [f"{r['layer']} {r['pool']}" for r in entries if r["mdl_compression"] < 0.9]
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    report = {
        "command": "python " + " ".join(sys.argv),
        "cli_equivalent": (
            f"probe sweep --model {args.model} --train {train} --val "
            f"{args.sst2 / 'validation.csv'} --test {test} --control --mdl"
            + ("" if args.no_baselines else " --baselines")
        ),
        "sweep_seconds": result["seconds"],
        "sweep_wall_seconds": sweep_wall,
        "sweep_target_seconds": 180,
        "curve_seconds": curve["seconds"],
        "curve_target_seconds": 30,
        "prepare_seconds": prepare_seconds,
        "baselines_prepare_seconds": baseline_prepare_seconds,
        "mdl_compression_min": min(compression),
        "mdl_compression_max": max(compression),
        "mdl_rows_below_0_9": below,
        "task_cpu_seconds_total": float(sum(r.get("cpu_seconds", 0.0) for r in entries)),
        "heads": len(result["entries"]),
        "n": result["n"],
        "spearman_test_accuracy_vs_mdl_compression": rank_correlation,
        "machine": {
            "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)),
            "shared": True,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "sweep": public(result),
        "curve": curve,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    selected = [r for r in entries if (r["layer"], r["pool"]) == (best["layer"], best["pool"])][0]
    top = max(entries, key=lambda r: r["test_accuracy"])
    low, high = selected["test_accuracy_ci"]
    lines = [
        f"# Research sweep and learning curve: {Path(str(data.model)).name}, SST-2 2k subset",
        "",
        f"Command: `{report['command']}`  ",
        f"Same sweep on the command line: `{report['cli_equivalent']}`",
        "",
        f"- Data: {len(data.train):,} training sentences (SST-2 train, pandas sample seed 0), "
        f"{len(data.val)} validation (SST-2 validation), {len(data.test):,} test (disjoint, "
        "same sample); features from the cache (extracted beforehand).",
        "- **Sweep with memorisation capacity, MDL"
        + ("" if args.no_baselines else " and baselines")
        + f": {result['seconds']:.1f} s** for {report['heads']} rows (target < 180 s"
        + (
            ""
            if args.no_baselines
            else f"; baselines "
            f"{result.get('baselines', {}).get('seconds', 0.0):.1f} s of it after a "
            f"{baseline_prepare_seconds:.1f} s random-weights extraction"
        )
        + f"), {result['n_jobs']} jobs "
        f"on {cpu} ({report['machine']['cores']} cores). Each row: C searched over 7 values "
        "on validation, 95% bootstrap CIs (1,000 resamples) on validation and test, the "
        "validation log loss, a hashed-label fit (memorisation capacity) and 10 online-code "
        "blocks, each choosing its own C on its own prefix (5-fold below 1,000 rows, else the "
        "last 20%).",
        f"- **MDL compression over the rows: {min(compression):.3f} to {max(compression):.3f}**; "
        f"rows below 0.9: {', '.join(below) if below else 'none'} (target: none).",
        f"- **Learning curve: {curve['seconds']:.1f} s** (target < 30 s): layer "
        f"{curve['layer']} {curve['pool']}, {len(curve['points'])} sizes, 5 seeds each "
        "(one draw of the full set), C searched on validation per fit.",
        f"- The machine was shared with other helpers' jobs (load average before "
        f"{tuple(round(x, 2) for x in load_before)}, after "
        f"{tuple(round(x, 2) for x in load_after)}): the times are upper bounds. CPU time of "
        f"the rows: {report['task_cpu_seconds_total']:.1f} s.",
        f"- Selected by {result['selected_by']}: layer {best['layer']} {best['pool']}, test "
        f"accuracy {selected['test_accuracy']:.4f} [{low:.3f}, {high:.3f}]; best row on "
        f"test: layer {top['layer']} {top['pool']} {top['test_accuracy']:.4f}. "
        f"{result['n_indistinguishable']} rows indistinguishable from the selected one; the "
        f"best test row is {'inside' if low <= top['test_accuracy'] <= high else 'outside'} "
        "the selected row's CI.",
        f"- Selected row: memorisation capacity {selected['memorisation_capacity']:.4f} (train "
        f"accuracy on hashed labels; majority {result['majority_baseline']:.4f}), accuracy "
        f"minus random weights {_signed(selected, 'selectivity_vs_random')}, minus bag of "
        f"words {_signed(selected, 'selectivity_vs_bow')}, MDL compression "
        f"{selected['mdl_compression']:.3f}. Spearman rank correlation of test accuracy and "
        f"MDL compression over the rows: {rank_correlation:.3f}.",
        "",
        markdown_table(result),
        "",
        "## Learning curve",
        "",
        curve_table(curve),
        "",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / args.name}.md and .json", file=sys.stderr)


if __name__ == "__main__":
    main()
