# ruff: noqa: B023  (each lambda is called at once, inside its loop iteration)
"""Multi-label heads on the EWT sentence properties (issue 29 item 2): the head side of the sweep.

The target: "Multi-label sweep over 62 rows of the EWT sentence properties: under 60 s with the
features cached". This times what the heads cost in it: ``ProbeMultiLabel`` on every layer x
pool ('last', 'mean') of a cache of ``data/ewt_properties.csv``, its C chosen by 5-fold
cross-validation (texts repeated in the data kept in one fold), and again on a validation
split; against a careful scikit-learn baseline on the same standardised features, grid and
folds: ``LogisticRegressionCV`` per label (lbfgs, warm-started along the Cs within each
fold, which ``OneVsRestClassifier(LogisticRegression)`` is not), its per-fold log losses
summed over labels to pick one shared C, thresholds from its out-of-fold probabilities,
then one ``LogisticRegression`` per label at that C. The baseline runs on a subset of layers
(it takes minutes a row), as does ours with scipy's joint L-BFGS-B instead of the fast path.

    PROBE_CACHE=/work/bench-store nice probe extract --model smollm2-135m \\
        --data data/ewt_properties.csv --layers all --out /work/places/ewt_props.h5
    nice python benchmarks/bench_multilabel.py --cache /work/places/ewt_props.h5

Split: 20% of the distinct texts held out for test (seed 0); the validation mode holds out a
further 20% of the rest. Times are wall and CPU seconds of ``fit`` alone (features already
read, as a sweep has them); reading them is timed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
POOLS = ("last", "mean")


def split(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """bool mask: ``fraction`` of the distinct groups, drawn with ``seed``."""
    distinct = np.unique(groups)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(distinct)[: int(round(fraction * len(distinct)))]
    return np.isin(groups, chosen)


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def scores(model_proba, thresholds, Y_test) -> dict:
    from probe.heads.tasks.multilabel import multilabel_report

    report = multilabel_report(Y_test, (model_proba >= thresholds).astype(int), model_proba)
    return {key: round(report[key], 4) for key in ("macro_f1", "micro_f1", "lrap")}


def sklearn_baseline(X, Y, groups, grid, folds: int, seed: int):
    """The baseline of the module docstring: (C, thresholds, predict_proba function)."""
    from scipy.special import expit
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    from probe.heads.tasks.multilabel import best_f1_threshold

    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    splits = list(GroupKFold(folds, shuffle=True, random_state=seed).split(Xs, groups=groups))
    losses, fold_coefs = np.zeros(len(grid)), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for label in range(Y.shape[1]):
            cv = LogisticRegressionCV(
                Cs=list(grid), cv=splits, scoring="neg_log_loss", max_iter=1000, refit=False
            ).fit(Xs, Y[:, label])
            losses -= cv.scores_[1].mean(axis=0)  # (folds, Cs) negative log loss
            fold_coefs.append(cv.coefs_paths_[1])  # (folds, Cs, D + 1)
        best = int(np.argmin(np.round(losses, 12)))
        held = np.zeros(Y.shape)
        for fold, (_, rows) in enumerate(splits):
            for label, coefs in enumerate(fold_coefs):
                held[rows, label] = expit(Xs[rows] @ coefs[fold, best, :-1] + coefs[fold, best, -1])
        thresholds = np.array([best_f1_threshold(held[:, j], Y[:, j]) for j in range(Y.shape[1])])
        heads = [
            LogisticRegression(C=grid[best], max_iter=1000).fit(Xs, Y[:, j])
            for j in range(Y.shape[1])
        ]
    warned = sum(issubclass(w.category, ConvergenceWarning) for w in caught)

    def proba(X_new):
        Z = scaler.transform(X_new)
        return np.column_stack([head.predict_proba(Z)[:, 1] for head in heads])

    return grid[best], thresholds, proba, warned


def joint_reference_fit(X, Y, groups):
    """ProbeMultiLabel with scipy's joint L-BFGS-B in place of the fast path."""
    import probe.heads.tasks.multilabel as multilabel
    from probe.heads.solver.onevsrest import JointReference, OneVsRestPath

    multilabel.OneVsRestPath = JointReference
    try:
        return multilabel.ProbeMultiLabel().fit(X, Y, groups=groups)
    finally:
        multilabel.OneVsRestPath = OneVsRestPath


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/ewt_properties.csv"))
    parser.add_argument("--cache", type=Path, default=Path("/work/places/ewt_props.h5"))
    parser.add_argument("--baseline-layers", default="0,6,12,18,24,30")
    parser.add_argument("--layers", default="", help="comma list (default: every stored layer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="multilabel_ewt")
    args = parser.parse_args(argv)

    import pandas as pd

    from probe.data.readers import text_sha1
    from probe.heads.cached import open_cached
    from probe.heads.estimator import DEFAULT_CS
    from probe.heads.tasks.multilabel import ProbeMultiLabel, label_columns, parse_label_sets

    frame = pd.read_csv(args.data, keep_default_na=False)
    properties = [c for c in frame.columns if c not in ("text", "labels")]
    Y, names = label_columns({name: frame[name].tolist() for name in properties})
    from_sets, set_names = parse_label_sets(frame["labels"].tolist())
    assert (from_sets == Y[:, [names.index(n) for n in set_names]]).all()
    cache = open_cached(str(args.cache))
    row_of = {bytes(key): i for i, key in enumerate(np.asarray(cache.text_sha1))}
    rows = np.array([row_of[text_sha1(text)] for text in frame["text"]])
    groups = np.unique(frame["text"].to_numpy(), return_inverse=True)[1]
    test = split(groups, 0.2, args.seed)
    train = ~test
    val = train & split(groups, 0.2, args.seed + 1)
    fit_rows = train & ~val
    baseline_layers = {int(x) for x in args.baseline_layers.split(",") if x}
    load_before = os.getloadavg()
    entries = []
    layers = [int(x) for x in args.layers.split(",") if x] or cache.layers
    for layer in layers:
        for pool in POOLS:
            features, read_s, _ = timed(cache.features, layer, pool)
            features = features[rows]
            X_train, Y_train, g_train = features[train], Y[train], groups[train]
            X_test, Y_test = features[test], Y[test]
            cv_model, wall, cpu = timed(ProbeMultiLabel().fit, X_train, Y_train, groups=g_train)
            entry = {"layer": layer, "pool": pool, "read_s": round(read_s, 3)}
            entry["cv"] = {
                "C": cv_model.C_,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "Cs_tried": len(cv_model.search_["Cs"]),
                "solver": cv_model.solver_,
                **scores(cv_model.predict_proba(X_test), cv_model.thresholds_, Y_test),
            }
            val_model, wall, cpu = timed(
                ProbeMultiLabel().fit, features[fit_rows], Y[fit_rows], features[val], Y[val]
            )
            entry["validation"] = {
                "C": val_model.C_,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                **scores(val_model.predict_proba(X_test), val_model.thresholds_, Y_test),
            }
            if layer in baseline_layers:
                (C, thresholds, proba, warned), wall, cpu = timed(
                    sklearn_baseline, X_train, Y_train, g_train, DEFAULT_CS, 5, 0
                )
                entry["sklearn"] = {
                    "C": C,
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu, 3),
                    "convergence_warnings": warned,
                    **scores(proba(X_test), thresholds, Y_test),
                }
                joint, wall, cpu = timed(joint_reference_fit, X_train, Y_train, g_train)
                entry["scipy_joint"] = {
                    "C": joint.C_,
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu, 3),
                    **scores(joint.predict_proba(X_test), joint.thresholds_, Y_test),
                }
            entries.append(entry)
            print(json.dumps(entry), flush=True)
    summary = summarise(entries)
    result = {
        "command": shlex.join(
            ["python", "benchmarks/bench_multilabel.py", *(argv or sys.argv[1:])]
        ),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "model": cache.meta.get("model"),
        "n": int(len(frame)),
        "n_train": int(train.sum()),
        "n_test": int(test.sum()),
        "n_fit_validation_mode": int(fit_rows.sum()),
        "n_val": int(val.sum()),
        "D": int(cache.dim),
        "labels": names,
        "prevalence": dict(zip(names, np.round(Y.mean(axis=0), 4).tolist(), strict=True)),
        "grid": list(DEFAULT_CS),
        "summary": summary,
        "rows": entries,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    print(json.dumps(summary, indent=1))


def summarise(entries) -> dict:
    compared = [e for e in entries if "sklearn" in e]
    total = lambda mode, key: round(sum(e[mode][key] for e in entries), 2)  # noqa: E731
    out = {
        "rows": len(entries),
        "read_s": round(sum(e["read_s"] for e in entries), 2),
        "cv_wall_s": total("cv", "wall_s"),
        "cv_cpu_s": total("cv", "cpu_s"),
        "validation_wall_s": total("validation", "wall_s"),
        "validation_cpu_s": total("validation", "cpu_s"),
        "best_cv_row": max(entries, key=lambda e: e["cv"]["macro_f1"]) if entries else None,
    }
    if compared:
        ours = sum(e["cv"]["wall_s"] for e in compared)
        for name in ("sklearn", "scipy_joint"):
            theirs = sum(e[name]["wall_s"] for e in compared)
            cpu = sum(e[name]["cpu_s"] for e in compared) / sum(e["cv"]["cpu_s"] for e in compared)
            gap = max(abs(e[name]["macro_f1"] - e["cv"]["macro_f1"]) for e in compared)
            out[name] = {
                "rows": len(compared),
                "wall_s": round(theirs, 2),
                "ours_wall_s": round(ours, 2),
                "speedup_wall": round(theirs / ours, 1),
                "speedup_cpu": round(cpu, 1),
                "max_abs_macro_f1_gap": round(gap, 4),
                "same_C_rows": sum(e[name]["C"] == e["cv"]["C"] for e in compared),
            }
    return out


def cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        "# Multi-label heads on EWT sentence properties (issue 29 item 2)",
        "",
        f"Command: `{result['command']}`  ",
        f"CPU {result['cpu']} ({result['cores']} cores, shared; load average "
        f"{result['load_before'][0]} before, {result['load_after'][0]} after); "
        f"model {result['model']}; n {result['n']} sentences ({result['n_train']} train, "
        f"{result['n_test']} test; validation mode {result['n_fit_validation_mode']} fit + "
        f"{result['n_val']} val), D {result['D']}, {len(result['labels'])} labels "
        f"({', '.join(f'{k} {v:.1%}' for k, v in result['prevalence'].items())}).",
        "",
        f"- {s['rows']} rows, 5-fold C search ({len(result['grid'])} Cs, early stop): fit "
        f"{s['cv_wall_s']} s wall ({s['cv_cpu_s']} s CPU) in all; validation search: "
        f"{s['validation_wall_s']} s wall ({s['validation_cpu_s']} s CPU); reading the "
        f"features: {s['read_s']} s.",
    ]
    for name, title in (
        ("sklearn", "scikit-learn LogisticRegressionCV per label"),
        ("scipy_joint", "ours with scipy's joint L-BFGS-B"),
    ):
        if name in s:
            b = s[name]
            lines.append(
                f"- vs {title} on {b['rows']} rows: {b['wall_s']} s against {b['ours_wall_s']} s "
                f"wall: {b['speedup_wall']}x (CPU {b['speedup_cpu']}x); same C on "
                f"{b['same_C_rows']} rows; largest test macro-F1 gap {b['max_abs_macro_f1_gap']}."
            )
    best = s["best_cv_row"]
    if best:
        lines.append(
            f"- Best row by test macro-F1 (reported, not selected on): layer {best['layer']} "
            f"{best['pool']}, macro-F1 {best['cv']['macro_f1']}."
        )
    lines += [
        "",
        "| layer | pool | C (5-fold) | fit s | CPU s | test macro-F1 | micro-F1 | LRAP | "
        "C (val) | fit s | macro-F1 | sklearn s | sklearn macro-F1 | scipy joint s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["rows"]:
        cv, va = e["cv"], e["validation"]
        sk, joint = e.get("sklearn", {}), e.get("scipy_joint", {})
        lines.append(
            f"| {e['layer']} | {e['pool']} | {cv['C']:g} | {cv['wall_s']} | {cv['cpu_s']} | "
            f"{cv['macro_f1']} | {cv['micro_f1']} | {cv['lrap']} | {va['C']:g} | "
            f"{va['wall_s']} | {va['macro_f1']} | {sk.get('wall_s', '')} | "
            f"{sk.get('macro_f1', '')} | {joint.get('wall_s', '')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
