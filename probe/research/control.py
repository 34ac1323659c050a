"""Memorisation capacity: how well a probe fits labels that carry no information.

Each text gets a label drawn from a hash of the text (Hewitt & Liang 2019's control-task
labels, with the task's label distribution): equal texts get equal labels, so the labels
are learnable only by memorising texts. The probe's *training* accuracy on them is its
memorisation capacity at the row's C: near chance for a well-regularised head, near 1 for
one that could fit anything.

Its held-out score is no measure at sentence level: held-out sentences never repeat, so it
is chance by construction, and "task accuracy minus control accuracy" would be accuracy
minus chance. Hewitt & Liang's selectivity needs types that repeat between train and test
(word-level probes). What the backbone explains at sentence level is measured against
baseline rows instead (``probe.research.baselines``: majority, bag of words, random weights).
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


def memorisation_capacity(X_train, labels: dict, C) -> dict:
    """Train accuracy of the same probe (same C; a ``--probe`` family's head: its ``refit``,
    see ``probe.heads.families.new_head``) on the hashed labels of the training rows."""
    from probe.heads.families import new_head

    train_labels = labels["train"]
    if len(np.unique(train_labels)) < 2:  # a tiny or very skewed set: nothing to fit
        return {"memorisation_capacity": None}
    classifier = new_head(C).fit(X_train, train_labels)
    return {"memorisation_capacity": float(np.mean(classifier.predict(X_train) == train_labels))}
