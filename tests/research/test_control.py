"""Memorisation capacity: the probe's train accuracy on labels hashed from the text."""

from __future__ import annotations

import numpy as np

from probe.research.control import control_labels, control_task, memorisation_capacity
from probe.research.sweep import run_sweep


def test_control_labels_follow_the_text_and_the_distribution():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 256, (4000, 20)).astype(np.uint8)
    keys[2000:] = keys[:2000]  # every text twice
    labels = control_labels(keys, ["a", "b", "c"], [6, 3, 1])
    assert (labels[:2000] == labels[2000:]).all()  # duplicates agree
    share = [(labels == v).mean() for v in "abc"]
    assert np.allclose(share, [0.6, 0.3, 0.1], atol=0.03)
    assert (control_labels(keys, ["a", "b", "c"], [6, 3, 1]) == labels).all()  # deterministic


def test_memorisation_capacity_has_known_answers():
    """n points in general position in d >= n dimensions are linearly separable: a weakly
    regularised probe memorises any labels (1.0); a strongly regularised one predicts the
    majority class (its share); fewer dimensions than points memorise part of them."""
    rng = np.random.default_rng(1)
    labels = {"train": rng.choice(["a", "b"], size=200, p=[0.7, 0.3])}
    majority = max((labels["train"] == v).mean() for v in "ab")
    wide = rng.normal(size=(200, 300)).astype(np.float32)
    assert memorisation_capacity(wide, labels, C=100.0)["memorisation_capacity"] == 1.0
    assert (
        abs(memorisation_capacity(wide, labels, C=1e-6)["memorisation_capacity"] - majority) < 1e-12
    )
    narrow = memorisation_capacity(wide[:, :8], labels, C=100.0)["memorisation_capacity"]
    assert 0.6 < narrow < 0.9


def test_sweep_rows_report_memorisation_not_selectivity(research_data):
    control = control_task(research_data)
    assert set(control) == {"train", "val", "test"}
    assert research_data.train.text_sha1().shape == (240, 20)
    result = run_sweep(research_data, layers=[0, 3], pools=["mean"], n_jobs=1, control=True)
    for row in result["entries"]:
        assert 0.3 < row["memorisation_capacity"] < 0.9  # 240 hashed labels, 32 dimensions
        assert "selectivity" not in row and "control_accuracy" not in row
