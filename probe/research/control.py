"""Control tasks (Hewitt & Liang 2019): how much of a probe's accuracy is the probe's own doing.

A control task keeps the inputs and the label distribution but replaces each label with one
drawn from a hash of the text: equal texts get equal labels (the task is learnable by
memorising texts), yet the labels say nothing about what the text means. A probe that does
well on the control task is expressive enough to memorise; *selectivity* = task accuracy
minus control accuracy says how much of the task accuracy the representation explains.

On held-out sentences a sentence-level control task is at chance unless texts repeat, so the
control *training* accuracy (what the probe memorises) is reported next to it.
"""

from __future__ import annotations

import hashlib

import numpy as np

SALT = b"probe-control-task-v1"


def text_uniforms(text_sha1: np.ndarray, salt: bytes = SALT) -> np.ndarray:
    """A number in [0, 1) per row, a function of the text alone (equal texts, equal value)."""
    keys = np.asarray(text_sha1, dtype=np.uint8)
    values = np.empty(len(keys))
    for i, key in enumerate(keys):
        digest = hashlib.sha1(salt + key.tobytes()).digest()
        values[i] = int.from_bytes(digest[:8], "big") / 2.0**64
    return values


def control_labels(text_sha1: np.ndarray, classes, proportions) -> np.ndarray:
    """Labels drawn from ``proportions`` over ``classes`` by each text's hash."""
    cumulative = np.cumsum(np.asarray(proportions, np.float64))
    cumulative /= cumulative[-1]
    index = np.searchsorted(cumulative, text_uniforms(text_sha1), side="right")
    return np.asarray(classes)[np.minimum(index, len(cumulative) - 1)]


def control_task(data) -> dict:
    """Control labels for every split of ``CachedData``: {split name: labels (n,)}.

    The distribution is the training labels' (so chance is the same as the task's).
    """
    classes, counts = np.unique(data.train.labels, return_counts=True)
    return {
        name: control_labels(split.text_sha1(), classes, counts)
        for name, split in data.splits().items()
    }


def fit_control(X_train, labels: dict, held_out: tuple | None, C: float) -> dict:
    """Fit the same probe (same C) on control labels; accuracy on train and held-out rows.

    ``held_out`` is (X, split name) of the rows to score (test, else validation) or None.
    """
    from probe.heads.estimator import ProbeClassifier

    train_labels = labels["train"]
    if len(np.unique(train_labels)) < 2:  # a tiny or very skewed set: nothing to fit
        return {"control_train_accuracy": None, "control_accuracy": None}
    classifier = ProbeClassifier(C=C).fit(X_train, train_labels)
    result = {"control_train_accuracy": float(np.mean(classifier.predict(X_train) == train_labels))}
    result["control_accuracy"] = None
    if held_out is not None:
        X, name = held_out
        result["control_accuracy"] = float(np.mean(classifier.predict(X) == labels[name]))
    return result


def selectivity(task_accuracy: float | None, control_accuracy: float | None) -> float | None:
    if task_accuracy is None or control_accuracy is None:
        return None
    return float(task_accuracy - control_accuracy)
