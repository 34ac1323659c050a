"""The regression head's speed and answers: places (latitude and longitude together), every
(layer, pool) of a SmolLM2-135M cache, the penalty by 5-fold cross-validation, against
scikit-learn's ``RidgeCV`` with the same penalties and the same folds.

The baseline is what a careful user writes: ``StandardScaler`` on the training features,
targets standardised by their training mean and std (so that one MSE weighs latitude and
longitude alike, the criterion ``ProbeRegressor`` chooses by), then
``RidgeCV(alphas=grid, cv=KFold(5, shuffle=True, random_state=0),
scoring="neg_mean_squared_error")``, predictions mapped back to degrees. Both see the same
in-memory float32 features (reading the cache is not timed) and are timed back to back on
each row, fit and test predictions. Each picks its row by its own cross-validated score
(ours: pooled out-of-fold R²; RidgeCV: 1 + its best mean fold score on standardised
targets, the same quantity up to fold sizes); test R² (scikit-learn's ``r2_score``,
uniform over the two targets) is reported for every row.

    nice python benchmarks/bench_ridge.py --cache /work/places/places_all.h5
    nice python benchmarks/bench_ridge.py --limit-layers 3          # a quick run
    nice python benchmarks/bench_ridge.py --study-alphas            # the DEFAULT_ALPHAS study
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
PLACES = "/work/shared/datasets/world_places/places.csv"
CACHE = "/work/places/places_all.h5"
POOLS = ("last", "mean")
FOLDS, SEED, TEST_SHARE = 5, 0, 0.2


def load(cache_path: str, csv_path: str):
    """(cache, Y (n, 2) latitude and longitude in cache row order); the rows are checked to
    be the CSV's texts in file order (by their sha1, the cache's text identity)."""
    import pandas as pd

    from probe.data.readers import text_sha1
    from probe.heads.cached import open_cached

    cache = open_cached(cache_path)
    table = pd.read_csv(csv_path)
    keys = np.frombuffer(b"".join(text_sha1(t) for t in table["text"]), np.uint8)
    if cache.n != len(table) or not (keys.reshape(-1, 20) == cache.text_sha1).all():
        raise SystemExit("the cache's rows are not the CSV's texts in file order")
    return cache, table[["latitude", "longitude"]].to_numpy(np.float64)


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(n), test_size=TEST_SHARE, random_state=SEED)


def ours(X_train, Y_train, X_test, alphas) -> dict:
    from probe.heads.tasks.regression import ProbeRegressor

    start, cpu = time.perf_counter(), time.process_time()
    head = ProbeRegressor(alphas=alphas, cv=FOLDS, random_state=SEED).fit(X_train, Y_train)
    predictions = head.predict(X_test)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "alpha": head.alpha_,
        "cv_r2": max(head.search_["r2"]),
        "predictions": predictions,
    }


def baseline(X_train, Y_train, X_test, alphas) -> dict:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    start, cpu = time.perf_counter(), time.process_time()
    scaler = StandardScaler().fit(X_train)
    centre, spread = Y_train.mean(axis=0), Y_train.std(axis=0)
    model = RidgeCV(
        alphas=alphas,
        cv=KFold(FOLDS, shuffle=True, random_state=SEED),
        scoring="neg_mean_squared_error",
    ).fit(scaler.transform(X_train), (Y_train - centre) / spread)
    predictions = model.predict(scaler.transform(X_test)) * spread + centre
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "alpha": float(model.alpha_),
        "cv_r2": 1 + float(model.best_score_),
        "predictions": predictions,
    }


def scored(result: dict, Y_test) -> dict:
    from sklearn.metrics import r2_score

    predictions = result.pop("predictions")
    result["test_r2"] = float(r2_score(Y_test, predictions))
    result["test_r2_targets"] = [
        float(v) for v in r2_score(Y_test, predictions, multioutput="raw_values")
    ]
    return result


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in lscpu.splitlines()
            if line.startswith("Model name")
        ),
        "?",
    )
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


def run_speed(args) -> None:
    from probe.heads.tasks.regression import DEFAULT_ALPHAS

    cache, Y = load(args.cache, args.csv)
    train, test = split(cache.n)
    layers = cache.layers[: args.limit_layers] if args.limit_layers else cache.layers
    alphas = list(DEFAULT_ALPHAS)
    rows, load_before = [], os.getloadavg()
    for layer in layers:
        for pool in POOLS:
            X = cache.features(layer, pool)
            X_train, X_test = X[train], X[test]
            first = (ours, baseline) if (layer + (pool == "mean")) % 2 == 0 else (baseline, ours)
            results = {
                f.__name__: scored(f(X_train, Y[train], X_test, alphas), Y[test]) for f in first
            }
            row = {"layer": layer, "pool": pool, **{k: results[k] for k in ("ours", "baseline")}}
            rows.append(row)
            print(
                f"layer {layer:2d} {pool:4s} ours {row['ours']['seconds']:6.2f}s "
                f"a={row['ours']['alpha']:<8.3g} test R2 {row['ours']['test_r2']:.4f} | "
                f"RidgeCV {row['baseline']['seconds']:6.2f}s a={row['baseline']['alpha']:<8.3g} "
                f"test R2 {row['baseline']['test_r2']:.4f}",
                flush=True,
            )
    summary = summarise(rows)
    out = {
        "task": "places: latitude and longitude together, penalty by 5-fold CV",
        "cache": args.cache,
        "n_train": len(train),
        "n_test": len(test),
        "dim": cache.dim,
        "alphas": alphas,
        "folds": f"KFold({FOLDS}, shuffle=True, random_state={SEED}) on the training rows",
        "test_split": f"train_test_split(test_size={TEST_SHARE}, random_state={SEED})",
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        **summary,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ridge_places.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "ridge_places.md").write_text(markdown(out))
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))


def summarise(rows) -> dict:
    ours_s = sum(r["ours"]["seconds"] for r in rows)
    base_s = sum(r["baseline"]["seconds"] for r in rows)
    pick = {k: max(rows, key=lambda r, k=k: r[k]["cv_r2"]) for k in ("ours", "baseline")}
    return {
        "ours_seconds": ours_s,
        "baseline_seconds": base_s,
        "speedup": base_s / ours_s,
        "ours_cpu_seconds": sum(r["ours"]["cpu_seconds"] for r in rows),
        "baseline_cpu_seconds": sum(r["baseline"]["cpu_seconds"] for r in rows),
        "same_alpha_rows": sum(r["ours"]["alpha"] == r["baseline"]["alpha"] for r in rows),
        "max_test_r2_difference": max(
            abs(r["ours"]["test_r2"] - r["baseline"]["test_r2"]) for r in rows
        ),
        "selected": {
            k: {
                "layer": r["layer"],
                "pool": r["pool"],
                "alpha": r[k]["alpha"],
                "cv_r2": r[k]["cv_r2"],
                "test_r2": r[k]["test_r2"],
            }
            for k, r in pick.items()
        },
    }


def markdown(out: dict) -> str:
    sel = out["selected"]
    lines = [
        "# Ridge head on places: ProbeRegressor vs scikit-learn RidgeCV",
        "",
        f"{out['task']}. {len(out['rows'])} rows (layer x pool), n_train {out['n_train']}, "
        f"n_test {out['n_test']}, D {out['dim']}; alphas {len(out['alphas'])}: "
        f"{out['alphas'][0]:g} .. {out['alphas'][-1]:g} (log-spaced); folds "
        f"{out['folds']}; test split {out['test_split']}.",
        "",
        f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores (shared); load "
        f"average before {out['load_average_before'][0]:.2f}, after "
        f"{out['load_average_after'][0]:.2f}. Both timed back to back per row (order "
        "alternating), fit + test predictions, features in memory.",
        "",
        f"**Total: ProbeRegressor {out['ours_seconds']:.1f} s, RidgeCV "
        f"{out['baseline_seconds']:.1f} s: {out['speedup']:.1f}x faster.** Same alpha on "
        f"{out['same_alpha_rows']} of {len(out['rows'])} rows; largest test R² difference "
        f"{out['max_test_r2_difference']:.2g}. CPU seconds: {out['ours_cpu_seconds']:.1f} vs "
        f"{out['baseline_cpu_seconds']:.1f} "
        f"({out['baseline_cpu_seconds'] / out['ours_cpu_seconds']:.1f}x).",
        "",
        "RidgeCV solves in the features' float32 (what StandardScaler hands it); during the "
        "full run scikit-learn warned of ill-conditioned systems (LinAlgWarning, rcond "
        "1.5e-8 .. 1.2e-7, 200 warnings). ProbeRegressor's Gram and eigen work is float64.",
        "",
        f"Selected row (by CV R²): ours layer {sel['ours']['layer']} {sel['ours']['pool']} "
        f"(alpha {sel['ours']['alpha']:g}, CV R² {sel['ours']['cv_r2']:.4f}, test R² "
        f"{sel['ours']['test_r2']:.4f}); RidgeCV layer {sel['baseline']['layer']} "
        f"{sel['baseline']['pool']} (alpha {sel['baseline']['alpha']:g}, CV R² "
        f"{sel['baseline']['cv_r2']:.4f}, test R² {sel['baseline']['test_r2']:.4f}).",
        "",
        "| layer | pool | ours s | RidgeCV s | ours alpha | RidgeCV alpha | ours CV R² | "
        "ours test R² (lat, lon) | RidgeCV test R² (lat, lon) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        o, b = r["ours"], r["baseline"]
        lines.append(
            f"| {r['layer']} | {r['pool']} | {o['seconds']:.2f} | {b['seconds']:.2f} | "
            f"{o['alpha']:g} | {b['alpha']:g} | {o['cv_r2']:.4f} | {o['test_r2']:.4f} "
            f"({o['test_r2_targets'][0]:.3f}, {o['test_r2_targets'][1]:.3f}) | "
            f"{b['test_r2']:.4f} ({b['test_r2_targets'][0]:.3f}, {b['test_r2_targets'][1]:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def run_alpha_study(args) -> None:
    """Where 5-fold CV puts alpha on a wide grid, by training rows n: absolute or ~ n?"""
    from probe.heads.tasks.regression import ProbeRegressor

    cache, Y = load(args.cache, args.csv)
    train, _ = split(cache.n)
    wide = [float(a) for a in np.logspace(-3, 7, 21)]
    sizes = [100, 300, 1000, 3000, 10000, len(train)]
    layers = cache.layers[:: args.layer_step]
    rng = np.random.default_rng(SEED)
    subsets = {n: np.sort(rng.choice(train, n, replace=False)) for n in sizes}
    rows = []
    for layer in layers:
        for pool in POOLS:
            X = cache.features(layer, pool)
            for n, rows_n in subsets.items():
                head = ProbeRegressor(alphas=wide, cv=FOLDS, random_state=SEED).fit(
                    X[rows_n], Y[rows_n]
                )
                r2 = head.search_["r2"]
                near = [a for a, v in zip(wide, r2, strict=True) if v >= max(r2) - 0.005]
                rows.append(
                    {
                        "layer": layer,
                        "pool": pool,
                        "n": n,
                        "alpha": head.alpha_,
                        "cv_r2": max(r2),
                        "within_0.005": [min(near), max(near)],
                    }
                )
                print(rows[-1], flush=True)
    out = {"grid": wide, "sizes": sizes, "dim": cache.dim, "rows": rows}
    (RESULTS / "ridge_alphas.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [
        "# Where 5-fold CV puts the ridge penalty on places (SmolLM2-135M, latitude+longitude)",
        "",
        f"Grid {wide[0]:g} .. {wide[-1]:g} (21, log-spaced); training subsets of n rows "
        f"(seed {SEED}); every {args.layer_step}th layer, both pools; D {cache.dim}. "
        "'near' = the alphas within 0.005 of the best CV R².",
        "",
        "| n | chosen alpha: min / median / max | alpha / n median | near: lowest / highest "
        "| CV R² median |",
        "|---|---|---|---|---|",
    ]
    for n in sizes:
        mine = [r for r in rows if r["n"] == n]
        chosen = np.array([r["alpha"] for r in mine])
        lines.append(
            f"| {n} | {chosen.min():g} / {np.median(chosen):g} / {chosen.max():g} | "
            f"{np.median(chosen) / n:.3g} | {min(r['within_0.005'][0] for r in mine):g} / "
            f"{max(r['within_0.005'][1] for r in mine):g} | "
            f"{np.median([r['cv_r2'] for r in mine]):.3f} |"
        )
    (RESULTS / "ridge_alphas.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=CACHE)
    parser.add_argument("--csv", default=PLACES)
    parser.add_argument("--limit-layers", type=int, default=0, help="the first N layers only")
    parser.add_argument("--study-alphas", action="store_true")
    parser.add_argument("--layer-step", type=int, default=5, help="--study-alphas: every Nth layer")
    args = parser.parse_args()
    run_alpha_study(args) if args.study_alphas else run_speed(args)


if __name__ == "__main__":
    main()
