"""Choosing one row of a sweep without chasing noise.

The highest validation accuracy is a maximum over 62 noisy numbers: on 150 validation
examples a row that got one more example right wins by chance. Log loss uses every
example's confidence, so it separates rows that accuracy ties; the row with the lowest
validation log loss (out-of-fold log loss on train when there is no validation set) is
chosen, and a paired bootstrap over those examples (their sentences, for word rows) marks
every row whose loss difference from it has a 95% interval containing 0: the data cannot
tell them apart. ``prefer_early``
then takes the shallowest such row (``probe predict`` stops the backbone there: cheaper).
"""

from __future__ import annotations

import numpy as np

from probe.features.pooling import POOL_NAMES
from probe.research.uncertainty import RESAMPLES, indistinguishable, paired_differences


def depth(row: dict) -> int:
    """How far up the backbone a row needs: its layer, the deepest of a multi-layer head's."""
    return row["layer"] if isinstance(row["layer"], int) else max(row.get("layers") or [10**6])


def _pool_rank(row: dict) -> int:
    return POOL_NAMES.index(row["pool"]) if row["pool"] in POOL_NAMES else len(POOL_NAMES)


def select_row(
    rows: list[dict],
    scores: list,
    *,
    prefer_early: bool = False,
    resamples: int = RESAMPLES,
    seed: int = 0,
    clusters=None,
) -> dict:
    """Choose a row; mark ``indistinguishable`` and ``loss_difference_ci`` on every row.

    ``clusters`` (word rows: the sentence of each selection example) makes the paired
    bootstrap draw sentences, the unit of independence, as every interval of word rows does.

    Returns {"index", "selected_by", "lowest_loss", "n_indistinguishable", "prefer_early"}.
    Without per-example scores (too few rows per class to cross-validate) it falls back to
    the highest accuracy (ties: macro F1, then the shallower layer, then ``last``).
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
    loss = np.stack([s["log_loss"] for s in scores])  # (rows, n)
    means = loss.mean(axis=1)
    lowest = min(range(len(rows)), key=lambda i: (means[i], depth(rows[i]), _pool_rank(rows[i])))
    intervals = paired_differences(
        loss, lowest, n_resamples=resamples, seed=seed, clusters=clusters
    )
    same = indistinguishable(intervals)
    for row, interval, alike in zip(rows, intervals, same, strict=True):
        row["indistinguishable"] = bool(alike)
        row["loss_difference_ci"] = [float(interval[0]), float(interval[1])]
    chosen = lowest
    if prefer_early:
        candidates = [i for i in range(len(rows)) if same[i]]
        chosen = min(candidates, key=lambda i: (depth(rows[i]), means[i], _pool_rank(rows[i])))
    how = "log loss" + (" then the shallowest indistinguishable layer" if prefer_early else "")
    where = "validation" if "val_accuracy_ci" in rows[0] else "out-of-fold"
    return {
        "index": chosen,
        "selected_by": f"{where} {how}",
        "lowest_loss": {"layer": rows[lowest]["layer"], "pool": rows[lowest]["pool"]},
        "n_indistinguishable": int(same.sum()) - 1,
        "prefer_early": prefer_early,
    }
