"""The learning curve of a regression or multi-label row: the task's head fitted on 16, 32,
64 ... training rows (whole groups; several seeds) and on all of them, scored on test (or
val) by the task's first two metrics. Rows are drawn, not per class: numbers and label sets
have no classes to stratify on."""

from __future__ import annotations

import numpy as np

from probe.research.uncertainty import mean_and_sd

TARGET_SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def sample_rows(n: int, k: int, rng: np.random.Generator, groups=None) -> np.ndarray:
    """Sorted positions of about ``k`` rows: whole groups drawn until ``k`` rows are held."""
    if groups is None:
        return np.sort(rng.choice(n, size=min(k, n), replace=False))
    _, group_of = np.unique(np.asarray(groups), return_inverse=True)
    order = rng.permutation(int(group_of.max()) + 1)
    sizes = np.bincount(group_of, minlength=len(order))[order]
    taken = order[: int(np.searchsorted(np.cumsum(sizes), k)) + 1]
    return np.flatnonzero(np.isin(group_of, taken))


def target_points(data, task, features, labels, scored, *, sizes, seeds, seed, C, n_jobs):
    """Curve points {"per_class" (the requested size, or "all"), "n_train", "seeds",
    METRIC_mean, METRIC_sd for the task's first two metrics, "C"}."""
    from joblib import Parallel, delayed

    n = len(labels["train"])
    sizes = sorted({int(k) for k in sizes if 0 < int(k) < n})
    groups = data.train.group_ids()
    draws = [(k, s) for k in sizes for s in range(seeds)] + [(None, 0)]
    fits = Parallel(n_jobs=n_jobs)(
        delayed(_fit_draw)(task, features, labels, scored, k, seed + s, C, groups) for k, s in draws
    )
    metrics = task.METRICS[:2]
    points = []
    for k in [*sizes, None]:
        mine = [fit for (size, _), fit in zip(draws, fits, strict=True) if size == k]
        point = {"per_class": "all" if k is None else k, "n_train": mine[0]["n_train"]}
        point["seeds"] = len(mine)
        for metric in metrics:
            values = [fit[metric] for fit in mine if fit[metric] is not None]
            point[f"{metric}_mean"], point[f"{metric}_sd"] = mean_and_sd(values or [np.nan])
        point["C"] = [fit["C"] for fit in mine]
        points.append(point)
    return points


def _fit_draw(task, features, labels, scored, k, seed, C, groups) -> dict:
    y = labels["train"]
    rng = np.random.default_rng(seed)
    rows = np.arange(len(y)) if k is None else sample_rows(len(y), k, rng, groups)
    val = (features["val"], labels["val"]) if "val" in features and C is None else (None, None)
    head = task.make_head(penalty=C, cv=min(5, len(rows)), copy_X=True)
    kept = None if groups is None else groups[rows]
    head.fit(features["train"][rows], y[rows], *val, groups=kept)
    report = task.split_report(labels[scored], task.outputs(head, features[scored]))
    return {
        **{metric: report.get(metric) for metric in task.METRICS[:2]},
        "n_train": int(len(rows)),
        "C": task.penalty_of(head),
    }
