"""Choosing one row of a sweep without chasing noise.

The highest validation accuracy is a maximum over 62 noisy numbers: on 150 validation
examples a row that got one more example right wins by chance. Log loss uses every
example's confidence, so it separates rows that accuracy ties; by default the row with the
lowest validation log loss (out-of-fold log loss on train when there is no validation set)
is chosen. A sweep may instead name the metric it cares about (``--metric``: balanced
accuracy on imbalanced data, AUROC when a threshold is set later); then the row with the
highest validation (or out-of-fold) value of it is chosen. Either way a paired bootstrap
over those examples (their sentences, for word rows) marks every row whose difference from
the chosen one has a 95% interval containing 0: the data cannot tell them apart.
``prefer_early`` then takes the shallowest such row (``probe predict`` stops the backbone
there: cheaper).
"""

from __future__ import annotations

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES
from probe.heads.metrics import RANKING, TITLES
from probe.research.uncertainty import (
    RESAMPLES,
    indistinguishable,
    paired_differences,
    paired_metric_differences,
    resampled_metrics,
)

SELECTABLE = ("accuracy", "macro_f1", "balanced_accuracy", "auroc")  # --metric choices


def check_metric(metric: str | None, n_classes: int) -> None:
    """A one-line error for a metric a sweep of ``n_classes`` classes cannot select by."""
    if metric is None:
        return
    if metric not in SELECTABLE:
        raise ProbeError(f"unknown metric {metric!r}: choose {', '.join(SELECTABLE)}")
    if metric in RANKING and n_classes != 2:
        raise ProbeError(
            f"--metric {metric} needs a binary task; this one has {n_classes} classes "
            "(choose accuracy, macro_f1 or balanced_accuracy)"
        )


def depth(row: dict) -> int:
    """How far up the backbone a row needs: its layer, the deepest of a multi-layer head's."""
    return row["layer"] if isinstance(row["layer"], int) else max(row.get("layers") or [10**6])


def _pool_rank(row: dict) -> int:
    return POOL_NAMES.index(row["pool"]) if row["pool"] in POOL_NAMES else len(POOL_NAMES)


def selection_values(scores: list, metric: str, n_classes: int) -> np.ndarray:
    """(rows,) ``metric`` of each row on its selection examples (every example once)."""
    ones = np.ones((1, len(scores[0]["truth"])), np.float32)
    ranked = metric in RANKING
    return np.array(
        [
            resampled_metrics(
                s["truth"], s["predicted"], n_classes, ones, s["positive"] if ranked else None
            )[metric][0]
            for s in scores
        ]
    )


def select_row(
    rows: list[dict],
    scores: list,
    *,
    metric: str | None = None,
    n_classes: int | None = None,
    prefer_early: bool = False,
    resamples: int = RESAMPLES,
    seed: int = 0,
    clusters=None,
) -> dict:
    """Choose a row; mark ``indistinguishable`` and the difference's interval on every row
    (``loss_difference_ci``; with a ``metric``, ``METRIC_difference_ci`` and the row's own
    ``selection_METRIC``).

    ``scores`` are ``probe.research.measures.selection_scores``, one per row; ``n_classes``
    (default: from their codes) sets the macro average's classes. ``clusters`` (word rows:
    the sentence of each selection example) makes the paired bootstrap draw sentences, the
    unit of independence, as every interval of word rows does.

    Returns {"index", "selected_by", "lowest_loss" (or "highest_metric"),
    "n_indistinguishable", "prefer_early"}. Without per-example scores (too few rows per
    class to cross-validate) it falls back to the highest accuracy (ties: macro F1, then the
    shallower layer, then ``last``).
    """
    usable = [i for i, s in enumerate(scores) if s is not None]
    if len(usable) < len(rows):

        def rank(i):
            return (
                rows[i]["val_accuracy"],
                rows[i]["val_macro_f1"] or 0.0,
                -depth(rows[i]),
                -_pool_rank(rows[i]),
            )

        for row in rows:
            row["indistinguishable"], row["loss_difference_ci"] = None, None
        return {
            "index": max(range(len(rows)), key=rank),
            "selected_by": "accuracy",
            "lowest_loss": None,
            "n_indistinguishable": 0,
            "prefer_early": False,
        }
    bootstrap = {"n_resamples": resamples, "seed": seed, "clusters": clusters}
    if metric is None:
        loss = np.stack([s["log_loss"] for s in scores])  # (rows, n)
        goodness = -loss.mean(axis=1)
        best = _best(rows, goodness)
        intervals = paired_differences(loss, best, **bootstrap)
        difference, how, reference = "loss_difference_ci", "log loss", "lowest_loss"
    else:
        k = n_classes or 1 + max(int(max(s["truth"].max(), s["predicted"].max())) for s in scores)
        goodness = selection_values(scores, metric, k)
        if np.isnan(goodness).all():
            raise ProbeError(f"{metric} is undefined on the selection examples: one class only")
        best = _best(rows, goodness)
        intervals = paired_metric_differences(scores, best, metric, k, **bootstrap)
        difference, how, reference = f"{metric}_difference_ci", TITLES[metric], "highest_metric"
        for row, value in zip(rows, goodness, strict=True):
            row[f"selection_{metric}"] = float(value)
    same = indistinguishable(intervals)
    for row, interval, alike in zip(rows, intervals, same, strict=True):
        row["indistinguishable"] = bool(alike)
        row[difference] = [float(interval[0]), float(interval[1])]
    chosen = best
    if prefer_early:
        candidates = [i for i in range(len(rows)) if same[i]]
        chosen = min(candidates, key=lambda i: (depth(rows[i]), -goodness[i], _pool_rank(rows[i])))
    how += " then the shallowest indistinguishable layer" if prefer_early else ""
    where = "validation" if "val_accuracy_ci" in rows[0] else "out-of-fold"
    return {
        "index": chosen,
        "selected_by": f"{where} {how}",
        reference: {
            "layer": rows[best]["layer"],
            "pool": rows[best]["pool"],
            **({"probe": rows[best]["probe"]} if "probe" in rows[best] else {}),
        },
        "n_indistinguishable": int(same.sum()) - 1,
        "prefer_early": prefer_early,
    }


def _best(rows: list[dict], goodness: np.ndarray) -> int:
    """The row of highest ``goodness`` (NaN lowest); ties: the shallower, then ``last``."""
    value = np.where(np.isnan(goodness), -np.inf, goodness)
    return min(range(len(rows)), key=lambda i: (-value[i], depth(rows[i]), _pool_rank(rows[i])))
