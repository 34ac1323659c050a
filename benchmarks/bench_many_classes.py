"""Hundreds of classes (issue 29 item 3): the country of a place, 352 classes, one head and a sweep.

Data: a SmolLM2-135M extraction of all 31,663 places of ``world_places/places.csv`` (every
layer, mean and last pools; the country is the label stored in the cache). 69 countries have
one place, 19 more two. Split as ``probe fit`` would: the test set carved by ``prepare``
(20%, stratified, seed 0), then a validation set carved from the rest (1/8 of it: 70/10/20),
by the same draw; a class with one row stays in training, and the notice says so.

- one head (layer 15; mean, then last): ``ProbeClassifier`` with C chosen on the validation
  split, next to what a careful scikit-learn user writes: ``StandardScaler`` then
  ``LogisticRegression(solver="lbfgs", max_iter=MAX_ITER)`` (multinomial, tol default) fitted
  at each C of the same grid in increasing order with ``warm_start=True`` (each fit starts at
  the previous C's solution), C chosen by validation log loss, scored on test. Both timed
  (wall, process CPU) on the same two cores; agreement of their test predictions.
- the sweep: 31 layers x 2 pools, C on the validation split, ``run_sweep`` (two workers).

    python benchmarks/bench_many_classes.py --cache /work/places/places_all.h5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
MAX_ITER = 1000  # scikit-learn's default of 100 stops far from the optimum at 352 classes
VAL_SHARE = 0.125  # of what the test split leaves: 70/10/20 in all


def machine() -> dict:
    from bench_sweep import cpu_name

    return {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def country_data(cache: str):
    """(CachedData with train/val/test, the notices said): ``prepare`` carves the test set,
    then the validation set is carved from its training rows by the same rule."""
    import logging

    from probe.data.splits import train_only_classes, train_only_notice
    from probe.heads.rows import prepare, stratified_rows

    said: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    logger = logging.getLogger("probe")
    logger.addHandler(Collect())
    logger.setLevel(logging.INFO)
    data = prepare(data=cache, test_size=0.2, seed=0)
    train = data.train
    keep, held = stratified_rows(train.labels, VAL_SHARE, 0, train.group_ids())
    notice = train_only_notice(train_only_classes(train.labels, train.group_ids()), "val")
    if notice:
        said.append(notice)
    data = replace(data, train=train.take(keep, "train"), val=train.take(held, "val"))
    return data, said


def ours(X, y, X_val, y_val) -> tuple[dict, object]:
    from probe.heads.estimator import ProbeClassifier

    started, cpu = time.perf_counter(), time.process_time()
    clf = ProbeClassifier().fit(X, y, X_val, y_val)
    figures = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "C": clf.C_,
        "Cs_tried": clf.search_["Cs"],
        "val_log_loss": clf.search_["log_loss"],
        "solver": clf.solver_,
    }
    return figures, clf


def careful_user(X, y, X_val, y_val, X_test, grid) -> tuple[dict, np.ndarray]:
    """StandardScaler + LogisticRegression(lbfgs, warm_start) at each C, C by validation
    log loss: (figures, test predictions at the chosen C)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    started, cpu = time.perf_counter(), time.process_time()
    scaler = StandardScaler().fit(X)
    X, X_val, X_test = scaler.transform(X), scaler.transform(X_val), scaler.transform(X_test)
    model = LogisticRegression(solver="lbfgs", max_iter=MAX_ITER, warm_start=True)
    per_C, predictions = [], []
    for C in grid:
        at, at_cpu = time.perf_counter(), time.process_time()
        model.set_params(C=C)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(X, y)
        loss = log_loss(y_val, model.predict_proba(X_val), labels=model.classes_)
        predictions.append(model.predict(X_test))
        per_C.append(
            {
                "C": C,
                "seconds": time.perf_counter() - at,
                "cpu_seconds": time.process_time() - at_cpu,
                "iterations": int(np.max(model.n_iter_)),
                "converged": not any(w.category is ConvergenceWarning for w in caught),
                "val_log_loss": float(loss),
            }
        )
        print(f"  scikit-learn C={C:g}: {per_C[-1]}", file=sys.stderr, flush=True)
    best = min(range(len(grid)), key=lambda i: (round(per_C[i]["val_log_loss"], 12), i))
    figures = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "C": grid[best],
        "per_C": per_C,
        "max_iter": MAX_ITER,
        "warm_start": True,
    }
    return figures, predictions[best]


def one_head(data, layer: int, pool: str, reuse: bool = False, peer: bool = True) -> dict:
    from threadpoolctl import threadpool_limits

    from probe.heads.estimator import DEFAULT_CS

    X = data.train.features(layer, pool)
    X_val, X_test = data.val.features(layer, pool), data.test.features(layer, pool)
    y, y_val, y_test = data.train.labels, data.val.labels, data.test.labels
    load = [round(x, 2) for x in os.getloadavg()]
    mine, clf = ours(X, y, X_val, y_val)
    predicted = clf.predict(X_test)
    mine["test_accuracy"] = float(np.mean(predicted == y_test))
    # the same fit on one BLAS thread: on a machine shared with other jobs two OpenBLAS
    # threads spin and wait on the pass's small block products (up to 6x slower here)
    with threadpool_limits(limits=1):
        mine["one_thread"] = ours(X, y, X_val, y_val)[0]
    print(f"layer {layer} {pool}: probe {mine}", file=sys.stderr, flush=True)
    if not peer:
        return {"layer": layer, "pool": pool, "load_before": load, "probe": mine}
    saved = RESULTS / f"many_classes_sklearn_{layer}_{pool}.json"  # scikit-learn's, reusable
    if reuse and saved.is_file():
        theirs = json.loads(saved.read_text())
        their_predicted = np.asarray(theirs.pop("test_predictions"))
    else:
        theirs, their_predicted = careful_user(X, y, X_val, y_val, X_test, list(DEFAULT_CS))
        saved.write_text(json.dumps({**theirs, "test_predictions": their_predicted.tolist()}))
    theirs["test_accuracy"] = float(np.mean(their_predicted == y_test))
    tried = set(mine["Cs_tried"])
    same_Cs = [row for row in theirs["per_C"] if row["C"] in tried]
    return {
        "layer": layer,
        "pool": pool,
        "load_before": load,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "probe": mine,
        "sklearn": theirs,
        "ratio_wall": theirs["seconds"] / mine["seconds"],
        "ratio_wall_one_thread": theirs["seconds"] / mine["one_thread"]["seconds"],
        "ratio_cpu": theirs["cpu_seconds"] / mine["cpu_seconds"],
        # scikit-learn on only the Cs the probe's search solved (it stops once the
        # validation loss has turned up): the conservative ratio
        "ratio_wall_same_Cs": sum(r["seconds"] for r in same_Cs) / mine["seconds"],
        "test_prediction_agreement": float(np.mean(predicted == their_predicted)),
    }


def sweep(data) -> dict:
    from probe.research.sweep import run_sweep

    load = [round(x, 2) for x in os.getloadavg()]
    result = run_sweep(data, n_jobs=2)
    entries = result["entries"]
    errors = [row for row in entries if row.get("error")]
    best = result["best"]
    return {
        "seconds": result["seconds"],
        "heads": len(entries),
        "error_rows": len(errors),
        "heads_cpu_seconds": float(sum(r.get("cpu_seconds", 0.0) for r in entries)),
        "fallbacks": sum(row.get("solver") == "sklearn-fallback" for row in entries),
        "selected": {k: best.get(k) for k in ("layer", "pool", "C", "val_accuracy")},
        "selected_test_accuracy": best.get("test_accuracy"),
        "load_before": load,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "rows": [
            {
                k: row.get(k)
                for k in ("layer", "pool", "C", "val_accuracy", "test_accuracy", "seconds")
                + ("cpu_seconds", "solver")
            }
            for row in entries
        ],
    }


def write_markdown(report: dict, path: Path) -> None:
    shape = report["data"]
    lines = [
        "# Hundreds of classes: country of a place (issue 29 item 3)",
        "",
        f"Command: `{report['command']}`"
        + "".join(
            f"; {part} from `{report[part + '_command']}`"
            for part in ("heads", "sweep")
            if part + "_command" in report
        ),
        "",
        f"Machine: {report['machine_before']['cpu']}, {report['machine_before']['cores']} "
        f"cores; load average {report['machine_before']['load_average']} before, "
        f"{report['machine_after']['load_average']} after (per part below; a part kept from an "
        "earlier run says its own).",
        "",
        f"Data: {shape['n']:,} places, D = {shape['dim']}, K = {shape['classes']} countries; "
        f"train / val / test {shape['train']:,} / {shape['val']:,} / {shape['test']:,}. Said:",
        "",
        *[f"- {line}" for line in report["said"]],
        "",
    ]
    heads = report.get("heads", [])
    if heads:
        lines += [
            "| layer, pool | probe (C on val) | scikit-learn, 7 Cs warm-started | ratio wall "
            "(CPU) | ratio on the Cs probe tried | test acc probe / sklearn | same test "
            "predictions | load |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for head in heads:
            mine, theirs = head["probe"], head.get("sklearn")
            single = mine["one_thread"]
            ours_cell = (
                f"{mine['seconds']:.1f} s ({mine['cpu_seconds']:.1f} s CPU); one thread "
                f"{single['seconds']:.1f} s ({single['cpu_seconds']:.1f} s CPU); C {mine['C']:g}"
            )
            if theirs is None:
                lines.append(
                    f"| {head['layer']} {head['pool']} | {ours_cell} | (not run) | | | "
                    f"{mine['test_accuracy']:.4f} / - | | {head['load_before']} |"
                )
                continue
            lines.append(
                f"| {head['layer']} {head['pool']} | {ours_cell} | {theirs['seconds']:.1f} s "
                f"({theirs['cpu_seconds']:.1f} s CPU), C {theirs['C']:g} | "
                f"**{head['ratio_wall']:.1f}x** ({head['ratio_cpu']:.1f}x); one thread "
                f"{head['ratio_wall_one_thread']:.1f}x | "
                f"{head['ratio_wall_same_Cs']:.1f}x | {mine['test_accuracy']:.4f} / "
                f"{theirs['test_accuracy']:.4f} | {head['test_prediction_agreement']:.2%} | "
                f"{head['load_before']} -> {head['load_after']} |"
            )
        lines += ["", "scikit-learn per C (iterations, converged within max_iter):", ""]
        for head in [h for h in heads if "sklearn" in h]:
            steps = ", ".join(
                f"C {r['C']:g}: {r['seconds']:.0f} s, {r['iterations']} it"
                + ("" if r["converged"] else " (not converged)")
                for r in head["sklearn"]["per_C"]
            )
            lines.append(f"- {head['layer']} {head['pool']}: {steps}")
        lines.append("")
    swept = report.get("sweep")
    if swept:
        lines += [
            f"Sweep, 31 layers x 2 pools, C on the validation split, two workers: "
            f"**{swept['seconds']:.1f} s** wall ({swept['heads_cpu_seconds']:.1f} s CPU in "
            f"heads), {swept['error_rows']} error rows, {swept['fallbacks']} scikit-learn "
            f"fallbacks; selected {swept['selected']}, test "
            f"accuracy {swept['selected_test_accuracy']}; load {swept['load_before']} -> "
            f"{swept['load_after']}.",
            "",
        ]
    path.with_suffix(".md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/work/places/places_all.h5")
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--pools", default="mean,last")
    parser.add_argument("--skip", default="", help="comma list: heads,sweep")
    parser.add_argument("--name", default="many_classes_country")
    parser.add_argument("--sklearn-pools", default="mean,last", help="pools with the peer")
    parser.add_argument(
        "--reuse-sklearn", action="store_true", help="scikit-learn's figures from a run before"
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    report = {"command": "python " + " ".join(sys.argv), "machine_before": machine()}
    data, said = country_data(args.cache)
    report["said"] = said
    labels = np.concatenate([s.labels for s in data.splits().values()])
    report["data"] = {
        "n": len(labels),
        "dim": int(data.train.features(args.layer, "mean").shape[1]),
        "classes": len(np.unique(labels)),
        **{name: len(split) for name, split in data.splits().items()},
    }
    path = RESULTS / f"{args.name}.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    for part in skip & set(earlier):  # a part not run this time keeps its recorded figures
        report[part] = earlier[part]
        report[f"{part}_command"] = earlier.get(f"{part}_command", earlier.get("command"))
    if "heads" not in skip:
        peers = set(args.sklearn_pools.split(","))
        report["heads"] = [
            one_head(data, args.layer, pool, args.reuse_sklearn, pool in peers)
            for pool in args.pools.split(",")
        ]
    if "sweep" not in skip:
        report["sweep"] = sweep(data)
        print(f"sweep: {report['sweep']['seconds']:.1f} s", file=sys.stderr)
    report["machine_after"] = machine()
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float))
    write_markdown(report, path)
    print(path)


if __name__ == "__main__":
    main()
