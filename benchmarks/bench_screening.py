"""Does C screening keep every choice? Each head fitted twice: as shipped, and with every C of
the grid solved to the end (``ProbeClassifier(stop_early=False)``, the full search a careful
user would run: no early stop, no screening). Reports, per dataset, the heads whose C agrees,
those that differ (with both searches' scores), the fits screened out and the CPU of both.

The margins of ``probe.heads.search`` were chosen on UPOS (on validation) and the six-class
data; ``--data`` also takes data they were not chosen on:

- ``sixclass``: the six-class data by 5-fold CV, 62 heads (``benchmarks/make_sixclass.py``);
- ``sst2k``: SST-2, 2,000 training sentences by 5-fold CV, 62 heads;
- ``upos-cv``: UPOS on EWT dev by 5-fold CV, every third layer (11 heads);
- ``synthetic17``: ``bench_heads_speed.synthetic17`` (6,000 rows, 17 classes, 16 layers) by CV.

    python benchmarks/bench_screening.py --data sst2k,synthetic17 --sst2k FILE
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def heads(name: str, args):
    """(head name, X, y) of one dataset, in order."""
    if name == "synthetic17":
        from bench_heads_speed import synthetic17

        for layer, X, y in synthetic17(n=6000, layers=16):
            yield f"layer {layer}", X, y
        return
    if name == "upos-cv":
        from probe.research.words.rows import prepare_words

        data = prepare_words(
            args.model, task="upos", data=str(SHARED / "ud_ewt/en_ewt-ud-dev.conllu")
        )
        for layer in range(0, 31, 3):
            yield f"layer {layer}", data.train.features(layer, "last"), data.train.labels
        return
    from probe.heads.rows import prepare

    train = str(Path(args.sixclass) / "train.csv") if name == "sixclass" else args.sst2k
    data = prepare(args.model, train=train, test_size=0)
    for layer in data.layers:
        for pool in ("last", "mean"):
            yield f"layer {layer} {pool}", data.train.features(layer, pool), data.train.labels


def check(name: str, args) -> dict:
    from threadpoolctl import threadpool_limits

    from probe.heads.estimator import ProbeClassifier

    out = {"heads": 0, "same_C": 0, "differ": [], "screened_fits": 0, "cpu": [0.0, 0.0]}
    for head, X, y in heads(name, args):
        fitted = []
        for index, stop_early in enumerate((True, False)):
            with threadpool_limits(1):
                started = time.process_time()
                fitted.append(ProbeClassifier(stop_early=stop_early).fit(X, y))
                out["cpu"][index] += time.process_time() - started
        shipped, whole = fitted
        out["heads"] += 1
        out["screened_fits"] += sum(shipped.search_["screened"])
        if shipped.C_ == whole.C_:
            out["same_C"] += 1
        else:
            out["differ"].append(
                {
                    "head": head,
                    "C": shipped.C_,
                    "C_whole_grid": whole.C_,
                    "accuracy": shipped.search_["accuracy"],
                    "accuracy_whole_grid": whole.search_["accuracy"],
                }
            )
        print(name, head, shipped.C_, whole.C_, file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="sixclass,sst2k,upos-cv,synthetic17")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sixclass", default="/tmp/sixclass", help="make_sixclass.py's folder")
    parser.add_argument("--sst2k", help="SST-2 training CSV of 2,000 sentences")
    parser.add_argument("--name", default="screening_check")
    args = parser.parse_args()
    from bench_heads_speed import machine

    report = {"command": " ".join(["python", *sys.argv]), "machine": machine()}
    for name in args.data.split(","):
        report[name] = check(name, args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Does C screening keep every choice? (issue 18)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores. Each head "
        "fitted as shipped and with every C solved to the end "
        "(`ProbeClassifier(stop_early=False)`), one core each; CPU seconds of all heads.",
        "",
        "| data | heads | same C | fits screened out | CPU shipped | CPU whole grid |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.data.split(","):
        r = report[name]
        lines.append(
            f"| {name} | {r['heads']} | {r['same_C']} | {r['screened_fits']} | "
            f"{r['cpu'][0]:.1f} s | {r['cpu'][1]:.1f} s |"
        )
    for name in args.data.split(","):
        for row in report[name]["differ"]:
            lines.append(f"\n{name} {row['head']}: C {row['C']:g} vs {row['C_whole_grid']:g}")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / args.name}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
