"""Hewitt & Liang (2019) control tasks where they belong: on word types.

Every word type (its exact form; for an edge, the pair of the head's and the dependent's
forms) gets one label, drawn once from the training labels' distribution by a seeded hash of
the type, so the control task is learnable only by memorising types. The same probe (same
C) is fitted on it. Control accuracy is measured on held-out words whose type was seen in
training (an unseen type's control label cannot be learned by anything); task accuracy is
measured on the same words, and *selectivity* = task accuracy - control accuracy, with a 95%
interval from a paired bootstrap over sentences.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from probe.research.uncertainty import LEVEL, RESAMPLES, cluster_resample_counts


def type_uniforms(type_sha1: np.ndarray, seed: int = 0) -> np.ndarray:
    """A number in [0, 1) per row, a function of its type and the seed alone."""
    salt = f"probe-word-control-v1:{int(seed)}".encode()
    keys = np.asarray(type_sha1, dtype=np.uint8)
    out = np.empty(len(keys))
    for i, key in enumerate(keys):
        out[i] = int.from_bytes(hashlib.sha1(salt + key.tobytes()).digest()[:8], "big") / 2.0**64
    return out


def control_labels(type_sha1: np.ndarray, classes, counts, seed: int = 0) -> np.ndarray:
    """One label per type, drawn from the distribution ``counts`` over ``classes``."""
    cumulative = np.cumsum(np.asarray(counts, np.float64))
    cumulative /= cumulative[-1]
    index = np.searchsorted(cumulative, type_uniforms(type_sha1, seed), side="right")
    return np.asarray(classes)[np.minimum(index, len(classes) - 1)]


@dataclass
class WordControl:
    """Control labels, seen-type masks and sentence clusters per split; scores a sweep row."""

    labels: dict  # split -> control labels
    seen: dict  # split -> bool: the word's type occurs in the training split
    clusters: dict  # split -> sentence ids
    resamples: int = RESAMPLES
    seed: int = 0

    @classmethod
    def build(cls, splits: dict, task_labels, seed: int = 0, resamples: int = RESAMPLES):
        """``splits``: name -> (type sha1 uint8 [n, 20], clusters [n]); ``task_labels``: the
        training labels (their distribution is the control task's)."""
        classes, counts = np.unique(np.asarray(task_labels), return_counts=True)
        train_types = {key.tobytes() for key in splits["train"][0]}
        labels, seen, clusters = {}, {}, {}
        for name, (types, cluster) in splits.items():
            labels[name] = control_labels(types, classes, counts, seed)
            seen[name] = np.fromiter((k.tobytes() in train_types for k in types), bool, len(types))
            clusters[name] = np.asarray(cluster)
        return cls(labels, seen, clusters, resamples, seed)

    def row_fields(self, classifier, features: dict, labels: dict) -> dict:
        """Control accuracy (train and held-out seen types), selectivity and its interval."""
        from probe.heads.families import new_head, refit_spec

        held = "test" if "test" in features else "val" if "val" in features else None
        train_labels = self.labels["train"]
        empty = {
            "control_accuracy": None,
            "control_train_accuracy": None,
            "selectivity": None,
            "selectivity_ci": None,
            "control_words": 0,
        }
        if len(np.unique(train_labels)) < 2:
            return empty
        control = new_head(refit_spec(classifier)).fit(features["train"], train_labels)
        fields = dict(empty)
        fields["control_train_accuracy"] = float(
            np.mean(control.predict(features["train"]) == train_labels)
        )
        if held is None or not self.seen[held].any():
            return fields
        mask = self.seen[held]
        X = features[held][mask]
        control_right = (control.predict(X) == self.labels[held][mask]).astype(np.float64)
        task_right = (classifier.predict(X) == np.asarray(labels[held])[mask]).astype(np.float64)
        difference = task_right - control_right
        fields.update(
            control_accuracy=float(control_right.mean()),
            control_task_accuracy=float(task_right.mean()),
            selectivity=float(difference.mean()),
            selectivity_ci=cluster_interval(
                difference, self.clusters[held][mask], self.resamples, self.seed
            ),
            control_words=int(mask.sum()),
        )
        return fields


def cluster_interval(
    values, clusters, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> list[float]:
    """Percentile interval of mean(values) under a bootstrap over clusters (sentences)."""
    values = np.asarray(values, np.float32)
    means = []
    for counts in cluster_resample_counts(clusters, resamples, seed):  # (r, n)
        means.append((counts @ values) / np.maximum(counts.sum(axis=1), 1.0))
    means = np.concatenate(means).astype(np.float64)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]
