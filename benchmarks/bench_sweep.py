"""The layer-wise sweep from the cache: every stored layer x pool, C searched, timed.

Target (issue 4): SmolLM2-135M, 31 layers x 2 pools, the 67,349 SST-2 training sentences,
C chosen on the 872 validation sentences, in under 60 s on a 2-core CPU. The features come
from the cache (``probe extract`` of both files first; here a cache hit, no model run).

The headline time is what ``probe sweep`` costs a user with the features cached: opening the
caches (reading and hashing the data files, finding their views, reading labels and text
keys) plus the sweep (reading each layer fp16 -> fp32, standardising, the C path with
validation scoring, the metrics). Both parts are also reported on their own. Run it in a fresh
process: ``probe.heads.rows`` memoises opened caches per process.

``--split-from FILE`` writes a stratified 80/20 train/validation split of FILE (seed 0) and
sweeps that, for a dataset without a validation file (e.g. ``data/sms_spam.csv``).

Also fitted once, for the best (layer, pool) and C: scikit-learn's ``LogisticRegression``
(lbfgs, float64) on the same standardised features, for time and agreement.

    nice -n 10 python benchmarks/bench_sweep.py \\
        --train ../shared/datasets/sst2/train.csv --val ../shared/datasets/sst2/validation.csv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sklearn_reference(data, layer: int, pool: str, C: float, ours) -> dict:
    """scikit-learn's lbfgs at the chosen C, on our standardisation of the same features."""
    from sklearn.linear_model import LogisticRegression

    X = data.train.features(layer, pool)
    standardised = (X - ours.mean_) / ours.scale_
    started = time.perf_counter()
    theirs = LogisticRegression(C=C, max_iter=10_000, tol=1e-6).fit(standardised, data.train.labels)
    seconds = time.perf_counter() - started
    X_val = (data.val.features(layer, pool) - ours.mean_) / ours.scale_
    agreement = float(
        np.mean(theirs.predict(X_val) == ours.predict(data.val.features(layer, pool)))
    )
    return {
        "seconds_one_C": seconds,
        "n_iter": int(np.max(theirs.n_iter_)),
        "val_accuracy": float(theirs.score(X_val, data.val.labels)),
        "val_prediction_agreement": agreement,
        "max_relative_coef_difference": float(
            np.abs(theirs.coef_ - ours.coef_).max() / np.abs(theirs.coef_).max()
        ),
    }


def split_file(path: str) -> tuple[str, str]:
    """Stratified 80/20 split of ``path`` into train.csv / val.csv beside the results, with
    the draw ``probe`` uses (``stratified_split``, seed 0): the same files every run."""
    import pandas as pd

    from probe.data.readers import read_dataset
    from probe.data.splits import stratified_split

    data = read_dataset(path)
    train, val = stratified_split(data, 0.2, np.random.default_rng(0))
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_sweep_{Path(path).stem}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("val", val)):
        frame = pd.DataFrame({"text": part.texts, "label": part.labels})
        frame.to_csv(folder / f"{name}.csv", index=False)
    return str(folder / "train.csv"), str(folder / "val.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--train", help="training file or cache .h5")
    parser.add_argument("--val", help="validation file or cache .h5")
    parser.add_argument("--split-from", help="one labelled file: split 80/20 into train/val")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn fit")
    parser.add_argument("--name", default="sweep_sst2")
    args = parser.parse_args()
    if args.split_from:
        args.train, args.val = split_file(args.split_from)
    elif not (args.train and args.val):
        parser.error("give --train and --val, or --split-from FILE")

    from probe.heads.cached import is_cache_file
    from probe.heads.rows import prepare
    from probe.messages import configure
    from probe.research.sweep import public, run_sweep
    from probe.research.sweep_report import markdown_table

    configure("normal")  # prepare's lines on stderr

    load_before = os.getloadavg()
    started = time.perf_counter()
    caches_only = is_cache_file(args.train) and is_cache_file(args.val)  # they know their model
    data = prepare(
        None if caches_only else args.model,
        train=args.train,
        val=args.val,
        test_size=0,
    )
    prepare_seconds = time.perf_counter() - started
    result = run_sweep(data, n_jobs=args.jobs)
    load_after = os.getloadavg()
    best = result["_best_result"]
    print(markdown_table(result))
    reference = None
    if not args.no_sklearn:
        reference = sklearn_reference(
            data, best.layer, best.pool, best.classifier.C_, best.classifier
        )
    report = {
        "command": "python " + " ".join(sys.argv),
        "total_seconds_with_opening_caches": prepare_seconds + result["seconds"],
        "sweep_seconds": result["seconds"],
        "prepare_seconds": prepare_seconds,
        "target_seconds": 60,
        "heads": len(result["entries"]),
        "fit_seconds_per_head_mean": float(
            np.mean([r["seconds"] for r in result["entries"] if "seconds" in r])
        ),
        "task_cpu_seconds_total": float(sum(r.get("cpu_seconds", 0.0) for r in result["entries"])),
        "n_train": len(data.train),
        "n_val": len(data.val),
        "dim": int(best.classifier.n_features_in_),
        "Cs": best.classifier.search_["Cs"],
        "machine": {
            "cpu": cpu_name(),
            "cores": len(os.sched_getaffinity(0)),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "sklearn_reference": reference,
        "fallback_heads": [
            (r["layer"], r["pool"])
            for r in result["entries"]
            if r.get("solver") not in (None, "probe-lbfgs")
        ],
        "error_rows": [
            (r["layer"], r["pool"], r["error"]) for r in result["entries"] if r.get("error")
        ],
        **{k: v for k, v in public(result).items() if k not in ("seconds",)},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Layer sweep from the cache: {Path(str(data.model)).name}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"- {report['heads']} heads ({len(data.layers)} layers x 2 pools), "
        f"{report['n_train']:,} training examples x {report['dim']} features, C searched over "
        f"{len(report['Cs'])} values and chosen on {report['n_val']} validation examples.",
        f"- **Time with the features cached: {prepare_seconds + result['seconds']:.1f} s** "
        f"(target < 60 s) = opening the caches {prepare_seconds:.1f} s + the sweep "
        f"{result['seconds']:.1f} s, with {result['n_jobs']} parallel jobs on "
        f"{report['machine']['cpu']} ({report['machine']['cores']} cores); mean fit time per "
        f"head {report['fit_seconds_per_head_mean']:.2f} s."
        + (
            " *Shared*: other jobs ran (load above the cores' count): an upper bound."
            if max(load_before[0], load_after[0]) > report["machine"]["cores"] + 0.5
            else ""
        ),
        f"- Load average (1, 5, 15 min) before {tuple(round(x, 2) for x in load_before)}, "
        f"after {tuple(round(x, 2) for x in load_after)}: it counts this run and, decaying "
        "over minutes, what ran just before. CPU time of "
        f"the {report['heads']} tasks (reading, fitting, scoring): "
        f"{report['task_cpu_seconds_total']:.1f} s, i.e. "
        f"{report['task_cpu_seconds_total'] / result['n_jobs']:.1f} s of wall time on "
        f"{result['n_jobs']} otherwise idle cores.",
    ]
    if reference:
        lines.append(
            f"- scikit-learn `LogisticRegression` (lbfgs, float64, tol 1e-6) at the chosen "
            f"(layer {best.layer}, {best.pool}, C {best.classifier.C_:g}) alone: "
            f"{reference['seconds_one_C']:.1f} s, {reference['n_iter']} iterations; "
            f"validation predictions agree on {reference['val_prediction_agreement']:.2%}, "
            f"largest coefficient difference {reference['max_relative_coef_difference']:.1e} "
            "of the largest coefficient."
        )
    lines.append(
        f"- Heads fitted by the scikit-learn fallback: {len(report['fallback_heads'])}; "
        f"rows with an error: {len(report['error_rows'])}."
    )
    lines += ["", markdown_table(result), ""]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print(f"\nsweep {result['seconds']:.1f} s; wrote {RESULTS / args.name}.json and .md")


if __name__ == "__main__":
    main()
