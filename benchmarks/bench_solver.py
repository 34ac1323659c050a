"""The robust solver's speed: a 62-head sweep's worth of fits, against the previous solver
(git HEAD, ``--baseline``) and scikit-learn's lbfgs (the fallback and reference).

Features are synthetic stand-ins for a 576-wide model's hidden states (SmolLM2-135M), one
matrix per (layer, pool), because no backbone weights can be downloaded on this machine:
a low-rank signal whose rank grows with depth, three outlier dimensions with large means,
near-constant columns in the embedding layer, everything rounded through float16 as in the
cache. Labels follow a noisy linear rule whose strength grows with depth. Shapes:

- ``sms``: 4,459 train rows (80% of 5,574), 13% positive, C by 5-fold cross-validation;
- ``sst2``: 67,349 train rows, 872 validation rows, C chosen on validation.

Each (layer, pool) is fitted as ``run_sweep`` fits it (``copy_X=False``), ``--jobs`` at a
time (joblib); timed: the fit alone (wall and CPU seconds), as the sweep's rows are.

    python benchmarks/bench_solver.py --shape sms --baseline /tmp/oldprobe
    python benchmarks/bench_solver.py --shape sst2 --layers 0,5,10,15,20,25,30
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
SHAPES = {"sms": (4459, 0, 0.13), "sst2": (67349, 872, 0.56)}  # train, val, positive share
DIM, LAYERS = 576, 31


def hidden_states(rows: int, layer: int, pool: str, seed: int) -> np.ndarray:
    """float32 (rows, 576) through float16, shaped like a decoder's pooled hidden states."""
    rng = np.random.default_rng([layer, pool == "mean", seed])
    rank = 8 + 2 * layer
    latent = rng.standard_normal((rows, rank), dtype=np.float32)
    X = latent @ rng.standard_normal((rank, DIM), dtype=np.float32)
    X += 0.3 * rng.standard_normal((rows, DIM), dtype=np.float32)
    X[:, :3] = 40.0 + 5.0 * X[:, :3]  # outlier dimensions
    if layer == 0:
        X[:, -40:] = 0.5 + 1e-3 * np.round(X[:, -40:])  # near-constant embedding columns
    return X.astype(np.float16).astype(np.float32)


def labels(X: np.ndarray, layer: int, positive: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng([layer, seed, 7])
    direction = rng.standard_normal(DIM)
    signal = (X - X.mean(axis=0)) @ direction
    signal /= signal.std()
    strength = 0.5 + 3.0 * layer / (LAYERS - 1)
    logits = strength * signal + rng.logistic(size=len(X))
    return (logits > np.quantile(logits, 1 - positive)).astype(int)


def one_head(estimator_module: str, shape: str, layer: int, pool: str, path=None) -> dict:
    """Build one (layer, pool), fit it as the sweep does; time the fit."""
    import importlib

    if path and path not in sys.path:
        sys.path.insert(0, path)

    n_train, n_val, positive = SHAPES[shape]
    X_all = hidden_states(n_train + n_val, layer, pool, seed=0)
    y_all = labels(X_all, layer, positive, seed=0)
    X, y = X_all[:n_train], y_all[:n_train]
    val = (X_all[n_train:], y_all[n_train:]) if n_val else (None, None)
    estimator = importlib.import_module(estimator_module)
    wall, cpu = time.perf_counter(), time.process_time()
    classifier = estimator.ProbeClassifier(copy_X=False).fit(X, y, *val)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    score_X, score_y = val if n_val else (X_all[:n_train], y)  # X was standardised in place
    return {
        "layer": layer,
        "pool": pool,
        "C": classifier.C_,
        "seconds": wall,
        "cpu_seconds": cpu,
        "solver": getattr(classifier, "solver_", "probe-lbfgs (HEAD)"),
        "n_iter": int(classifier.n_iter_),
        "score_accuracy": float(classifier.score(score_X, score_y)) if n_val else None,
    }


def sweep(estimator_module: str, shape: str, layers: list[int], jobs: int, path=None) -> dict:
    from joblib import Parallel, delayed

    started = time.perf_counter()
    rows = Parallel(n_jobs=jobs)(
        delayed(one_head)(estimator_module, shape, layer, pool, path)
        for layer in layers
        for pool in ("last", "mean")
    )
    return {
        "wall_seconds": time.perf_counter() - started,
        "heads": rows,
        "fit_seconds_sum": sum(r["seconds"] for r in rows),
        "fit_cpu_seconds_sum": sum(r["cpu_seconds"] for r in rows),
    }


def sklearn_reference(shape: str, layer: int, pool: str, C: float) -> dict:
    """scikit-learn's lbfgs (float64, tol 1e-6) at one C on the same standardised features."""
    from sklearn.linear_model import LogisticRegression

    from probe.heads.estimator import standardise

    n_train, n_val, positive = SHAPES[shape]
    X_all = hidden_states(n_train + n_val, layer, pool, seed=0)
    y = labels(X_all, layer, positive, seed=0)[:n_train]
    standardised, _, _ = standardise(X_all[:n_train])
    wall, cpu = time.perf_counter(), time.process_time()
    model = LogisticRegression(C=C, tol=1e-6, max_iter=10_000).fit(standardised, y)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "layer": layer,
        "pool": pool,
        "C": C,
        "seconds_one_C": wall,
        "cpu_seconds_one_C": cpu,
        "n_iter": int(model.n_iter_.max()),
    }


def degenerate_cases(baseline: str | None) -> list[dict]:
    """The fuzz test's degenerate matrices: this solver, git HEAD's, scikit-learn at our C."""
    import importlib
    import warnings

    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    from probe.heads.estimator import ProbeClassifier

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "heads"))
    fuzz = importlib.import_module("test_solver_fuzz")
    old = None
    if baseline:
        sys.path.insert(0, str(Path(baseline).resolve()))
        old = importlib.import_module("old_estimator")
    rows = []
    for name, case in fuzz.CASES.items():
        X, y, X_test, y_test = case()
        row = {"case": name, "shape": list(X.shape), "classes": int(len(np.unique(y)))}
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.process_time()
            ours = ProbeClassifier().fit(X, y)
            row.update(seconds=time.process_time() - started, C=ours.C_, solver=ours.solver_)
            if old is not None:
                try:
                    old.ProbeClassifier().fit(X, y)
                    row["head_solver"] = "ok"
                except Exception as error:  # noqa: BLE001  (what HEAD raised is the finding)
                    row["head_solver"] = f"{type(error).__name__}: {error}"
            standardised = (np.asarray(X, np.float64) - ours.mean_) / ours.scale_
            started = time.process_time()
            LogisticRegression(C=ours.C_, tol=1e-6, max_iter=10_000).fit(standardised, y)
            row["sklearn_seconds_one_C"] = time.process_time() - started
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="sms")
    parser.add_argument("--layers", default="all", help="comma list, or all (0..30)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--baseline", help="folder with old_estimator.py (git HEAD's)")
    parser.add_argument("--reference-heads", type=int, default=2, help="sklearn fits to time")
    parser.add_argument("--degenerate", action="store_true", help="the fuzz cases instead")
    args = parser.parse_args()
    if args.degenerate:
        report = {
            "command": "python " + " ".join(sys.argv),
            "load_average": os.getloadavg(),
            "cases": degenerate_cases(args.baseline),
        }
        path = RESULTS / "solver_robust_degenerate.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        return print(f"wrote {path}")
    layers = (
        list(range(LAYERS)) if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    )

    load_before = os.getloadavg()
    report = {
        "command": "python " + " ".join(sys.argv),
        "shape": args.shape,
        "n_train": SHAPES[args.shape][0],
        "n_val": SHAPES[args.shape][1],
        "dim": DIM,
        "layers": layers,
        "jobs": args.jobs,
        "cores": len(os.sched_getaffinity(0)),
    }
    report["robust"] = sweep("probe.heads.estimator", args.shape, layers, args.jobs)
    print(f"robust: {report['robust']['wall_seconds']:.1f} s wall", flush=True)
    if args.baseline:
        baseline = str(Path(args.baseline).resolve())
        report["baseline_head"] = sweep("old_estimator", args.shape, layers, args.jobs, baseline)
        print(f"HEAD: {report['baseline_head']['wall_seconds']:.1f} s wall", flush=True)
    heads = report["robust"]["heads"]
    picks = np.linspace(0, len(heads) - 1, args.reference_heads).astype(int)
    report["sklearn_reference"] = [
        sklearn_reference(args.shape, heads[i]["layer"], heads[i]["pool"], heads[i]["C"])
        for i in picks
    ]
    report["load_average_before"], report["load_average_after"] = load_before, os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"solver_robust_{args.shape}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {k: v for k, v in report.items() if k not in ("robust", "baseline_head")}, indent=1
        )
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
