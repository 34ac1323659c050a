"""Choosing a regression or multi-label row: the task's natural metric (R², macro-F1) or
``--metric``, on validation (else out-of-fold) predictions, with the paired bootstrap that
marks the rows the data cannot tell from the chosen one, as for classes
(``probe.research.selection``)."""

from __future__ import annotations

import numpy as np

from probe.errors import ProbeError
from probe.research.selection import _best, _pool_rank, depth
from probe.research.uncertainty import (
    LEVEL,
    RESAMPLES,
    _percentiles,
    indistinguishable,
    resamples_of,
)


def check_target_metric(task, metric: str | None, kind: str) -> str:
    """The metric a sweep of ``kind`` rows selects by; a one-line error for another."""
    if metric is None:
        return task.NATURAL_METRIC
    if metric not in task.SELECTABLE:
        raise ProbeError(
            f"--metric {metric} does not apply to {kind} rows: choose {', '.join(task.SELECTABLE)}"
        )
    return metric


def select_target_row(
    task,
    rows: list[dict],
    scores: list,
    metric: str,
    *,
    where: str = "validation",
    prefer_early: bool = False,
    resamples: int = RESAMPLES,
    seed: int = 0,
    clusters=None,
) -> dict:
    """Choose a row by ``metric`` (higher better; MAE and RMSE: lower) on its selection
    predictions (``where``: validation or out-of-fold); mark ``indistinguishable`` rows and
    each row's ``METRIC_difference_ci``."""
    if any(s is None for s in scores):
        raise ProbeError("too few training rows to cross-validate; give --val data")
    sign = -1.0 if metric in task.LOWER_IS_BETTER else 1.0
    ones = np.ones((1, len(scores[0]["truth"])))
    value = np.array([task.resampled(s["truth"], s["outputs"], ones)[metric][0] for s in scores])
    goodness = sign * value
    if np.isnan(goodness).all():
        raise ProbeError(f"{metric} is undefined on the selection examples")
    best = _best(rows, goodness)
    differences = []
    for counts in resamples_of(len(ones[0]), resamples, seed, clusters):
        values = np.stack(
            [task.resampled(s["truth"], s["outputs"], counts)[metric] for s in scores], axis=1
        )
        differences.append(values - values[:, [best]])
    intervals = _percentiles(np.concatenate(differences), LEVEL)
    same = indistinguishable(np.nan_to_num(intervals))
    for row, interval, alike, own in zip(rows, intervals, same, value, strict=True):
        row["indistinguishable"] = bool(alike)
        row[f"{metric}_difference_ci"] = [float(interval[0]), float(interval[1])]
        row[f"selection_{metric}"] = float(own)
    chosen = best
    if prefer_early:
        candidates = [i for i in range(len(rows)) if same[i]]
        chosen = min(candidates, key=lambda i: (depth(rows[i]), -goodness[i], _pool_rank(rows[i])))
    how = metric + (" then the shallowest indistinguishable layer" if prefer_early else "")
    return {
        "index": chosen,
        "selected_by": f"{where} {how}",
        "highest_metric": {"layer": rows[best]["layer"], "pool": rows[best]["pool"]},
        "n_indistinguishable": int(same.sum()) - 1,
        "prefer_early": prefer_early,
    }
