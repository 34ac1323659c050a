"""Where a many-class head's time goes (issue 29's sweep target, missed): one head of the
country sweep, profiled, beside what its passes cost at best and what a start from the
adjacent layer would save.

1. one head (layer 7 mean, C on the validation split, one BLAS thread): every solve's C,
   tolerance, gradient evaluations and seconds; cProfile's largest shares;
2. a pass's two products and softmax alone (random float32 data of the same shape) at row
   blocks of 256 .. all rows: the floor of a pass;
3. layer 8's coarse solves along the usual C path against each started from layer 7's solution
   at the same C (``LogisticPath.start_from``).

    python benchmarks/bench_many_class_costs.py --cache /work/places/places_all.h5
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

import numpy as np
from bench_many_classes import RESULTS, country_data, machine
from threadpoolctl import threadpool_limits


def one_head(data, layer: int, pool: str) -> dict:
    from probe.heads.estimator import ProbeClassifier
    from probe.heads.solver.path import LogisticPath

    X, Xv = data.train.features(layer, pool), data.val.features(layer, pool)
    solves, original = [], LogisticPath.solve

    def timed(self, C, tol, max_iter, rtol=None, screen=None):
        started = time.perf_counter()
        evaluations = original(self, C, tol, max_iter, rtol=rtol, screen=screen)
        seconds = time.perf_counter() - started
        solves.append({"C": C, "tol": tol, "evaluations": evaluations, "seconds": seconds})
        solves[-1]["screened"] = bool(self.screened)
        return evaluations

    LogisticPath.solve = timed
    profile = cProfile.Profile()
    try:
        started = time.perf_counter()
        profile.enable()
        ProbeClassifier().fit(X, data.train.labels, Xv, data.val.labels)
        profile.disable()
        total = time.perf_counter() - started
    finally:
        LogisticPath.solve = original
    stats = pstats.Stats(profile).stats
    shares = sorted(
        (
            {"function": f"{Path(name[0]).name}:{name[2]}", "seconds": own}
            for name, (_, _, own, _, _) in stats.items()
        ),
        key=lambda row: -row["seconds"],
    )[:8]
    return {"layer": layer, "pool": pool, "seconds": total, "solves": solves, "top": shares}


def pass_floor(n: int, dim: int, classes: int) -> list[dict]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, dim), dtype=np.float32)
    W = rng.standard_normal((classes, dim), dtype=np.float32)
    rows = []
    for block in (256, 1024, 4096, n):
        best = np.inf
        for _ in range(3):
            started = time.perf_counter()
            grad = np.zeros((classes, dim), np.float32)
            for start in range(0, n, block):
                Z = X[start : start + block] @ W.T
                Z = np.exp(Z - Z.max(axis=1, keepdims=True))
                Z /= Z.sum(axis=1, keepdims=True)
                grad += Z.T @ X[start : start + block]
            best = min(best, time.perf_counter() - started)
        flops = 4 * n * dim * classes
        rows.append({"block": block, "seconds": best, "gflops": flops / best / 1e9})
    return rows


def adjacent_start(data, first: int, pool: str, grid) -> dict:
    from probe.heads.maths import accuracy_and_log_loss
    from probe.heads.search import COARSE_RTOL, COARSE_TOL
    from probe.heads.solver.path import LogisticPath

    classes, codes = np.unique(data.train.labels, return_inverse=True)
    val_codes = np.searchsorted(classes, data.val.labels)

    def standardised(layer):
        X = data.train.features(layer, pool).astype(np.float32)
        mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
        return (X - mean) / scale, (data.val.features(layer, pool) - mean) / scale

    weights = np.ones(len(codes))
    X_first, _ = standardised(first)
    X_next, X_val = standardised(first + 1)
    path = LogisticPath(X_first, codes, len(classes), weights)
    solutions = {}
    for C in grid:
        path.solve(C, COARSE_TOL, 1000, rtol=COARSE_RTOL)
        solutions[C] = (path.W.copy(), path.b.copy())
    runs = {}
    for name in ("usual path", "from the layer before"):
        path, rows = LogisticPath(X_next, codes, len(classes), weights), []
        started = time.perf_counter()
        for C in grid:
            before = path.passes
            if name != "usual path":
                path.start_from(*solutions[C])
            path.solve(C, COARSE_TOL, 1000, rtol=COARSE_RTOL)
            loss = accuracy_and_log_loss(path.logits(X_val.astype(np.float32)), val_codes, False)
            rows.append({"C": C, "passes": path.passes - before, "val_log_loss": loss[1]})
        runs[name] = {"seconds": time.perf_counter() - started, "per_C": rows}
    return {"layers": [first, first + 1], "pool": pool, "runs": runs}


def markdown(report: dict) -> str:
    head = report["head"]
    lines = [
        "# Where a many-class head's time goes (country, 352 classes)",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, one BLAS "
        f"thread; load average {report['machine']['load_average']} before.",
        "",
        f"One head, layer {head['layer']} {head['pool']}, C on the validation split: "
        f"{head['seconds']:.1f} s.",
        "",
        "| C | tolerance | evaluations | seconds | screened |",
        "|---|---|---|---|---|",
        *[
            f"| {s['C']:g} | {s['tol']:g} | {s['evaluations']} | {s['seconds']:.2f} | "
            f"{'yes' if s['screened'] else ''} |"
            for s in head["solves"]
        ],
        "",
        "Largest own times (cProfile): "
        + ", ".join(f"{row['function']} {row['seconds']:.2f} s" for row in head["top"]),
        "",
        "A pass's products and softmax alone (random data, same shape): "
        + ", ".join(
            f"{row['block']}-row blocks {row['seconds']:.3f} s ({row['gflops']:.0f} GFLOP/s)"
            for row in report["pass_floor"]
        ),
        "",
        f"Layer {report['adjacent']['layers'][1]}'s coarse solves:",
        "",
    ]
    for name, run in report["adjacent"]["runs"].items():
        steps = ", ".join(f"C {row['C']:g}: {row['passes']}" for row in run["per_C"])
        lines.append(f"- {name}: {run['seconds']:.1f} s; passes {steps}")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/work/places/places_all.h5")
    args = parser.parse_args()
    report = {"machine": machine()}
    data, _ = country_data(args.cache)
    with threadpool_limits(1):
        report["head"] = one_head(data, 7, "mean")
        shape = data.train.features(7, "mean").shape
        report["pass_floor"] = pass_floor(shape[0], shape[1], 352)
        report["adjacent"] = adjacent_start(data, 7, "mean", [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    path = RESULTS / "many_class_costs.json"
    path.write_text(json.dumps(report, indent=2, default=float))
    path.with_suffix(".md").write_text(markdown(report))
    print(path.with_suffix(".md"))


if __name__ == "__main__":
    main()
