"""Heads in seconds on multi-class data (issue 18), side by side with scikit-learn.

Scenarios (each optional):

- ``--sixclass DIR``: the six-class data of ``benchmarks/make_sixclass.py`` (extracted once
  through the store): the 62-head sweep without a validation file (C and the row by 5-fold
  cross-validation, CIs, out-of-fold selection loss), with the 500-text validation file,
  and with ``--control --mdl``; then one ``probe fit``-style head with C by cross-validation
  on the selected layer next to scikit-learn's ``LogisticRegressionCV`` (lbfgs, the same
  7 Cs and the same 5 stratified folds, on the same standardised features).
- ``--synthetic17``: 17 classes, 25,000 rows x 576 features with known structure (class
  means in a 64-d subspace, decaying spectrum, outlier and duplicated columns, like hidden
  states), 31 "layers" of rising signal: 31 heads by 5-fold cross-validation, and
  ``LogisticRegressionCV`` on one of them.
- ``--upos``: UPOS on all of UD-EWT dev (17 classes; SmolLM2 word rows of every layer already
  in ``$PROBE_CACHE``, from ``bench_tokens.py --part full``): the 31-head word sweep (C, layer
  on the sweep's sentence-level validation split), then with ``--control``; scikit-learn's
  ``LogisticRegression`` at the selected layer and C as an accuracy check.

The peer is what a careful user would write: ``StandardScaler`` then
``LogisticRegressionCV(Cs=DEFAULT_CS, cv=StratifiedKFold(5, shuffle=True, random_state=0),
solver="lbfgs", max_iter=1000)``. Wall times on a shared machine are upper bounds; the CPU
seconds of the heads divided by the jobs say what two idle cores would take.

    python benchmarks/bench_heads_speed.py --sixclass /tmp/sixclass --model smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    from bench_sweep import cpu_name

    return {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def sweep_figures(result: dict, started_load) -> dict:
    from probe.research.sweep import public

    entries = result["entries"]
    cpu = float(sum(r.get("cpu_seconds", 0.0) for r in entries))
    best = result["best"]
    return {
        "seconds": result["seconds"],
        "heads": len(entries),
        "n_jobs": result["n_jobs"],
        "heads_cpu_seconds": cpu,
        "idle_estimate_seconds": cpu / result["n_jobs"],
        "selected": {
            "layer": best["layer"],
            "pool": best["pool"],
            "C": best["C"],
            "test_accuracy": best["test_accuracy"],
        },
        "selected_by": result.get("selected_by"),
        "error_rows": sum(bool(r.get("error")) for r in entries),
        "load_before": started_load,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "rows": public(result)["entries"],
    }


def run(data, label: str, **options) -> dict:
    from probe.research.sweep import run_sweep

    load = [round(x, 2) for x in os.getloadavg()]
    result = run_sweep(data, **options)
    figures = sweep_figures(result, load)
    print(
        f"{label}: {figures['seconds']:.1f} s wall, {figures['heads_cpu_seconds']:.1f} s CPU "
        f"in heads, selected {figures['selected']}",
        file=sys.stderr,
    )
    return figures


def one_head(X, y, label: str) -> dict:
    """ProbeClassifier with C by 5-fold CV vs LogisticRegressionCV, same Cs and folds."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from probe.heads.estimator import DEFAULT_CS, ProbeClassifier

    started, cpu = time.perf_counter(), time.process_time()
    ours = ProbeClassifier().fit(X, y)
    mine = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "C": ours.C_,
        "Cs_tried": len(ours.search_["Cs"]),
    }
    started, cpu = time.perf_counter(), time.process_time()
    standardised = StandardScaler().fit_transform(X.astype(np.float64))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    theirs = LogisticRegressionCV(Cs=list(DEFAULT_CS), cv=folds, solver="lbfgs", max_iter=1000).fit(
        standardised, y
    )
    peer = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "C": float(np.atleast_1d(theirs.C_)[0]),
    }
    agree = float(np.mean(theirs.predict(standardised) == ours.predict(X)))
    ratio = peer["seconds"] / mine["seconds"]
    print(
        f"{label}: probe {mine['seconds']:.1f} s, LogisticRegressionCV {peer['seconds']:.1f} s "
        f"({ratio:.1f}x), C {mine['C']:g} vs {peer['C']:g}",
        file=sys.stderr,
    )
    return {
        "probe": mine,
        "sklearn_LogisticRegressionCV": peer,
        "ratio": ratio,
        "train_prediction_agreement": agree,
        "n": len(y),
        "dim": X.shape[1],
        "classes": len(np.unique(y)),
    }


def sixclass(folder: Path, model: str, skip: set) -> dict:
    from probe.heads.rows import prepare
    from probe.messages import configure

    configure("normal")  # prepare's lines and the sweeps' progress on stderr
    out = {}
    started = time.perf_counter()
    no_val = prepare(model, train=str(folder / "train.csv"), test=str(folder / "test.csv"))
    out["prepare_seconds"] = time.perf_counter() - started
    if "sweep" not in skip:
        out["sweep_cv"] = run(no_val, "six-class sweep, C by 5-fold CV")
    if "val" not in skip:
        with_val = prepare(
            model,
            train=str(folder / "train_minus_val.csv"),
            val=str(folder / "val.csv"),
            test=str(folder / "test.csv"),
        )
        out["sweep_val"] = run(with_val, "six-class sweep, C on 500 validation texts")
    if "measures" not in skip:
        out["sweep_control_mdl"] = run(
            no_val, "six-class sweep --control --mdl", control=True, mdl=True
        )
    if "fit" not in skip:
        chosen = out.get("sweep_cv", {}).get("selected") or {"layer": 12, "pool": "mean"}
        X = no_val.train.features(chosen["layer"], chosen["pool"])
        out["one_head"] = one_head(X, no_val.train.labels, "six-class probe fit vs LRCV")
        out["one_head"]["layer"], out["one_head"]["pool"] = chosen["layer"], chosen["pool"]
    return out


def synthetic17(n=25_000, dim=576, k=17, layers=31, seed=0):
    """31 matrices (n, dim) float32 sharing labels, the class signal rising with the layer."""
    rng = np.random.default_rng(seed)
    shares = rng.dirichlet(np.full(k, 2.0))
    y = rng.choice(k, size=n, p=shares)
    rank = 64
    means = rng.normal(size=(k, rank))
    mixing = rng.normal(size=(rank, dim)) * np.logspace(0, -2, rank)[:, None]
    for layer in range(layers):
        signal = 0.15 + 0.6 * layer / (layers - 1)
        latent = rng.normal(size=(n, rank)) + signal * means[y]
        X = (latent @ mixing + 0.05 * rng.normal(size=(n, dim))).astype(np.float32)
        X[:, :3] *= 50  # outlier dimensions
        X[:, 5] = X[:, 4]  # a duplicated column
        yield layer, X, y


def _fit_matrix(layer, X, y):
    from probe.heads.estimator import ProbeClassifier

    started, cpu = time.perf_counter(), time.process_time()
    clf = ProbeClassifier(copy_X=False).fit(X, y)
    probabilities = clf.out_of_fold_proba()
    loss = float(-np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-300, 1)).mean())
    return {
        "layer": layer,
        "C": clf.C_,
        "cv_accuracy": max(clf.search_["accuracy"]),
        "oof_log_loss": loss,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
    }


def synthetic(jobs: int, peer: bool) -> dict:
    from joblib import Parallel, delayed

    load = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    rows = Parallel(n_jobs=jobs)(delayed(_fit_matrix)(*args) for args in synthetic17())
    seconds = time.perf_counter() - started
    cpu = sum(r["cpu_seconds"] for r in rows)
    print(f"17-class synthetic: 31 heads {seconds:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    out = {
        "seconds": seconds,
        "heads": len(rows),
        "n_jobs": jobs,
        "heads_cpu_seconds": cpu,
        "idle_estimate_seconds": cpu / jobs,
        "load_before": load,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
    if peer:
        layer, X, y = list(synthetic17(layers=31))[15]
        out["one_head"] = one_head(X, y, "17-class probe vs LRCV (layer 15)")
    return out


def upos(model: str, skip: set) -> dict:
    """UPOS on all of UD-EWT dev (17 classes, word rows of every layer in the store): the
    sweep's own split by sentence (validation chooses C, the layer and the row), 31 heads;
    then with the word-type control task; then scikit-learn's ``LogisticRegression`` at the
    selected layer and C on the same split, as an independent check of the probe's accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from probe.messages import configure
    from probe.research.words.rows import prepare_words

    configure("normal")
    ewt = Path(__file__).resolve().parents[2] / "shared/datasets/ud_ewt/en_ewt-ud-dev.conllu"
    started = time.perf_counter()
    data = prepare_words(model, task="upos", data=str(ewt))
    out = {"prepare_seconds": time.perf_counter() - started, "n_train": len(data.train)}
    pools = [data.word_pool]  # word rows hold one pool, as ``probe sweep --task`` sweeps
    out["sweep"] = run(data, "UPOS sweep, 31 heads, C on validation", pools=pools)
    if "control" not in skip:
        out["sweep_control"] = run(data, "UPOS sweep --control", pools=pools, control=True)
    chosen = out["sweep"]["selected"]
    layer, C = int(chosen["layer"]), float(chosen["C"])
    scaler = StandardScaler().fit(data.train.features(layer, "last").astype(np.float64))
    reference = LogisticRegression(C=C, max_iter=5000).fit(
        scaler.transform(data.train.features(layer, "last").astype(np.float64)),
        data.train.labels,
    )
    test = scaler.transform(data.test.features(layer, "last").astype(np.float64))
    out["sklearn_test_accuracy_at_selected"] = float(
        np.mean(reference.predict(test) == data.test.labels)
    )
    return out


TARGETS = {"sweep_cv": 60, "sweep_val": 20, "sweep_control_mdl": 180, "upos_sweep": 60}
TARGETS["upos_sweep_control"] = "-"
LABELS = {
    "sweep_cv": "62 heads, C by 5-fold CV, CIs, out-of-fold selection loss",
    "sweep_val": "62 heads, C on the 500-text validation file",
    "sweep_control_mdl": "62 heads, C by 5-fold CV, --control --mdl",
    "upos_sweep": "UPOS (17 classes, 18k training words): 31 heads, C on validation",
    "upos_sweep_control": "UPOS: 31 heads + the word-type control task",
}


def _sweep_line(name: str, figures: dict) -> str:
    chosen = figures["selected"]
    return (
        f"| {LABELS.get(name, name)} | {figures['seconds']:.1f} s | "
        f"{figures['idle_estimate_seconds']:.1f} s | < {TARGETS.get(name, '-')} s | "
        f"layer {chosen['layer']} {chosen['pool']}, C {chosen['C']:g}, test "
        f"{_number(chosen['test_accuracy'])} | {figures['load_before']} -> "
        f"{figures['load_after']} | {figures['error_rows']} |"
    )


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _head_line(what: str, head: dict) -> str:
    ours, theirs = head["probe"], head["sklearn_LogisticRegressionCV"]
    return (
        f"| {what} ({head['n']:,} x {head['dim']}, {head['classes']} classes) | "
        f"{ours['seconds']:.1f} s ({ours['cpu_seconds']:.1f} s CPU), C {ours['C']:g} | "
        f"{theirs['seconds']:.1f} s ({theirs['cpu_seconds']:.1f} s CPU), C {theirs['C']:g} | "
        f"**{head['ratio']:.1f}x** (CPU {theirs['cpu_seconds'] / ours['cpu_seconds']:.1f}x) | "
        f"{head['train_prediction_agreement']:.2%} |"
    )


def write_markdown(report: dict, path: Path) -> None:
    machine = report["machine_before"]
    lines = [
        f"# Heads in seconds on multi-class data (issue 18): {path.stem}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, "
        + (
            "*shared* with other jobs"
            if machine["load_average"][0] > machine["cores"]
            else "otherwise idle (the load below is the benchmark's own jobs)"
        )
        + f": load average {machine['load_average']} before, "
        f"{report['machine_after']['load_average']} after. 'idle estimate' is the heads' "
        "CPU seconds divided by the jobs (what the same work takes on otherwise idle cores).",
        "",
    ]
    sweeps = {**report.get("sixclass", {}), **{"synthetic17": report.get("synthetic17")}}
    for name, figures in (report.get("upos") or {}).items():
        sweeps[f"upos_{name}"] = figures
    rows = [(name, f) for name, f in sweeps.items() if isinstance(f, dict) and "selected" in f]
    if rows:
        lines += [
            "| sweep | wall | idle estimate | target | selected | load | error rows |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [_sweep_line(name, figures) for name, figures in rows]
        lines.append("")
    synthetic = report.get("synthetic17")
    if synthetic:
        lines += [
            f"17-class synthetic, 31 heads of 25,000 x 576 by 5-fold CV: "
            f"{synthetic['seconds']:.1f} s wall, {synthetic['idle_estimate_seconds']:.1f} s "
            f"idle estimate (target < 60 s); load {synthetic['load_before']} -> "
            f"{synthetic['load_after']}.",
            "",
        ]
    heads = [
        ("six-class, selected layer", report.get("sixclass", {}).get("one_head")),
        ("17-class synthetic, layer 15", (synthetic or {}).get("one_head")),
    ]
    heads = [(what, head) for what, head in heads if head]
    if heads:
        lines += [
            "| one head, C by 5-fold CV over 7 Cs | probe | scikit-learn "
            "LogisticRegressionCV (lbfgs) | ratio | same predictions |",
            "|---|---|---|---|---|",
        ]
        lines += [_head_line(what, head) for what, head in heads]
        lines.append("")
    path.with_suffix(".md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sixclass", type=Path, help="make_sixclass.py output folder")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--synthetic17", action="store_true")
    parser.add_argument("--upos", action="store_true", help="UPOS on EWT dev (word rows)")
    parser.add_argument("--skip", default="", help="comma list: sweep,val,measures,fit,peer")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--name", default="heads_speed")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    report = {"command": "python " + " ".join(sys.argv), "machine_before": machine()}
    if args.sixclass:
        report["sixclass"] = sixclass(args.sixclass, args.model, skip)
    if args.synthetic17:
        report["synthetic17"] = synthetic(args.jobs, "peer" not in skip)
    if args.upos:
        report["upos"] = upos(args.model, skip)
    report["machine_after"] = machine()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_markdown(report, path)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
