"""Every baseline scored as the probe's rows are: on one held-out split (test, else
validation) with the same bootstrap CIs, its per-example correctness kept for the paired
selectivity intervals. The majority baseline is nothing more than that.
"""

from __future__ import annotations

import numpy as np

from probe.heads.cached import CachedData, CachedSplit
from probe.research.uncertainty import RESAMPLES, metric_intervals


def held_out_split(data: CachedData) -> CachedSplit | None:
    """The split every baseline and selectivity is scored on: test, else validation."""
    return data.test if data.test is not None else data.val


def scored_row(row: dict, split: CachedSplit, predicted, classes, resamples, seed) -> dict:
    """``row`` plus accuracy, macro F1, balanced accuracy and their CIs on ``split``; the
    per-example correctness goes in ``_correct`` (dropped from the JSON)."""
    from probe.heads.metrics import classification_report

    truth = np.asarray(split.labels)
    report = classification_report(truth, predicted, list(classes))
    codes = np.searchsorted(classes, truth), np.searchsorted(classes, predicted)
    ci = metric_intervals(
        *codes, len(classes), n_resamples=resamples, seed=seed, clusters=split.group_ids()
    )
    scored = dict(row)
    for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
        scored[f"{split.name}_{metric}"] = report[metric]
        scored[f"{split.name}_{metric}_ci"] = ci[metric]
    scored["_correct"] = (np.asarray(predicted) == truth).astype(np.float64)
    return scored


def majority_row(data: CachedData, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    classes, counts = np.unique(data.train.labels, return_counts=True)
    held = held_out_split(data)
    predicted = np.full(len(held), classes[counts.argmax()])
    return scored_row(
        {"baseline": "majority", "prediction": str(classes[counts.argmax()])},
        held,
        predicted,
        classes,
        resamples,
        seed,
    )
