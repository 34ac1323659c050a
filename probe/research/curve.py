"""Learning curves: accuracy of one (layer, pool) probe from 1 labelled example per class to all.

How many labels a representation needs is the question a practitioner asks before paying for
annotation, and two layers with equal accuracy on 60k labels can differ tenfold at 16. Each
point draws ``k`` training rows per class (fewer where a class has fewer), ``seeds`` times,
fits the usual ``ProbeClassifier`` (C chosen on validation data when there is some), and
scores it on test data (else validation). The last point is the whole training set: one
draw, so its sd is 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.research.uncertainty import mean_and_sd

SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
SEEDS = 5


def sample_per_class(
    labels: np.ndarray, k: int, rng: np.random.Generator, groups=None
) -> np.ndarray:
    """Sorted positions of ``k`` rows of every class (all of a class with fewer); with
    ``groups``, ``k`` groups of every class (a group counts for its most frequent label)
    with all their rows: a subset never holds part of a group."""
    if groups is None:
        chosen = []
        for value in np.unique(labels):
            rows = np.flatnonzero(labels == value)
            chosen.append(rng.choice(rows, size=min(k, len(rows)), replace=False))
        return np.sort(np.concatenate(chosen))
    from probe.data.splits import group_label_of

    _, group_of = np.unique(np.asarray(groups), return_inverse=True)
    group_label = group_label_of(np.asarray(labels), group_of.reshape(-1))
    picked = sample_per_class(group_label, k, rng)  # positions among the groups
    return np.flatnonzero(np.isin(group_of.reshape(-1), picked))


def learning_curve(
    data,
    layer,
    pool: str,
    *,
    sizes=SIZES,
    seeds: int = SEEDS,
    seed: int = 0,
    C: float | None = None,
    Cs=None,
    n_jobs: int = 1,
) -> dict:
    """Points (per class, n train, mean and sd of accuracy and macro F1 over seeds)."""
    from joblib import Parallel, delayed

    from probe.research.sweep import row_features

    if getattr(layer, "kind", None) == "mix":
        raise ProbeError(
            "a learning curve of --layer mix is not supported; give one layer or "
            "a list such as 12,18,24"
        )
    if seeds < 1:
        raise ProbeError("--seeds must be at least 1")
    started = time.perf_counter()
    name, features, *_ = row_features(data, layer, pool)
    labels = {split_name: s.labels for split_name, s in data.splits().items()}
    groups = data.train.group_ids()  # equal texts, --group-col, sentences: kept whole
    scored = "test" if "test" in features else "val" if "val" in features else None
    if scored is None:
        raise ProbeError("a learning curve needs --test or --val data to score on")
    if data.target != "classification":  # numbers, label sets: rows drawn, the task's metrics
        from probe.heads.tasks import task_module
        from probe.research.targets.curve import TARGET_SIZES, target_points

        task = task_module(data.target)
        points = target_points(
            data,
            task,
            features,
            labels,
            scored,
            seed=seed,
            C=C,
            n_jobs=n_jobs,
            seeds=seeds,
            sizes=TARGET_SIZES if tuple(sizes) == SIZES else sizes,
        )
        return _curve(data, name, pool, scored, C, features, seed, points, started)
    y = np.asarray(labels["train"])
    largest = int(np.unique(y, return_counts=True)[1].max())
    sizes = sorted({int(k) for k in sizes if 0 < int(k) < largest})
    draws = [(k, s) for k in sizes for s in range(seeds)] + [(None, 0)]
    fits = Parallel(n_jobs=n_jobs)(
        delayed(_fit_draw)(features, labels, scored, k, seed + s, C, Cs, groups) for k, s in draws
    )
    points = []
    for k in [*sizes, None]:
        mine = [fit for (size, _), fit in zip(draws, fits, strict=True) if size == k]
        accuracy = [fit["accuracy"] for fit in mine]
        accuracy_mean, accuracy_sd = mean_and_sd(accuracy)
        macro_f1_mean, macro_f1_sd = mean_and_sd([fit["macro_f1"] for fit in mine])
        points.append(
            {
                "per_class": "all" if k is None else k,
                "n_train": mine[0]["n_train"],
                "seeds": len(mine),
                "accuracy_mean": accuracy_mean,
                "accuracy_sd": accuracy_sd,
                "macro_f1_mean": macro_f1_mean,
                "macro_f1_sd": macro_f1_sd,
                "accuracies": [float(value) for value in accuracy],
                "C": [fit["C"] for fit in mine],
            }
        )
    return _curve(data, name, pool, scored, C, features, seed, points, started)


def _curve(data, name, pool, scored, C, features, seed, points, started) -> dict:
    return {
        "model": data.model,
        "layer": name,
        "pool": pool,
        "data": data.sources,
        "n": {split_name: len(split) for split_name, split in data.splits().items()},
        "target": data.target,
        "scored_on": scored,
        "C_chosen_on": "validation" if "val" in features and C is None else "given or default",
        "seed": seed,
        "points": points,
        "seconds": time.perf_counter() - started,
    }


def _fit_draw(features, labels, scored, k, seed, C, Cs, groups=None) -> dict:
    from probe.heads.estimator import ProbeClassifier
    from probe.heads.metrics import classification_report

    y = np.asarray(labels["train"])
    rng = np.random.default_rng(seed)
    rows = np.arange(len(y)) if k is None else sample_per_class(y, k, rng, groups)
    # a few rows cannot be cross-validated: without validation data C is 1 (or the given C)
    if C is None and "val" not in features and k is not None:
        C = 1.0
    val = (features["val"], labels["val"]) if "val" in features and C is None else (None, None)
    classifier = ProbeClassifier(C=C, Cs=Cs, random_state=seed).fit(
        features["train"][rows], y[rows], *val, groups=None if groups is None else groups[rows]
    )
    names = sorted(set(y.tolist()))
    report = classification_report(labels[scored], classifier.predict(features[scored]), names)
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "n_train": int(len(rows)),
        "C": float(classifier.C_),
    }


def curve_metrics(curve: dict) -> list[str]:
    """The metrics a curve's points hold (accuracy and macro-F1; a task's first two)."""
    return [key[: -len("_mean")] for key in curve["points"][0] if key.endswith("_mean")]


def markdown_table(curve: dict) -> str:
    metrics = curve_metrics(curve)
    size = "per class" if curve.get("target", "classification") == "classification" else "rows"
    lines = [
        f"| {size} | n train | seeds | "
        + " | ".join(f"{curve['scored_on']} {m} (mean ± sd)" for m in metrics)
        + " |",
        "|---|---|---|" + "---|" * len(metrics),
    ]
    for point in curve["points"]:
        cells = [f"{point[f'{m}_mean']:.4f} ± {point[f'{m}_sd']:.4f}" for m in metrics]
        lines.append(
            f"| {point['per_class']} | {point['n_train']} | {point['seeds']} | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("")
    lines.append(
        f"Layer {curve['layer']}, pool {curve['pool']}; "
        f"{len(curve['points'])} sizes in {curve['seconds']:.1f} s."
    )
    return "\n".join(lines)


def plot_curve(curve: dict, path: str | Path) -> Path:
    """Accuracy against training examples (log axis), mean with a +-1 sd band and bars."""
    from probe.figures import new_figure, save_png

    points = curve["points"]
    n = np.array([p["n_train"] for p in points], float)
    metric = curve_metrics(curve)[0]
    mean = np.array([p[f"{metric}_mean"] for p in points])
    sd = np.array([p[f"{metric}_sd"] for p in points])
    figure, axes = new_figure(size=(7, 4.2))
    axes.errorbar(
        n,
        mean,
        yerr=sd,
        fmt="-o",
        markersize=4,
        capsize=3,
        color="tab:blue",
        label=f"layer {curve['layer']}, {curve['pool']} (mean ± sd)",
    )
    axes.fill_between(n, mean - sd, mean + sd, color="tab:blue", alpha=0.15, linewidth=0)
    axes.set_xscale("log")
    axes.set_xlabel("training examples (1, 2, 4, ... per class; last: all)")
    axes.set_ylabel(f"{curve['scored_on']} {metric}")
    axes.set_title(f"{Path(str(curve['model'])).name}: learning curve")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return save_png(figure, path)
