"""Control tasks: labels from a hash of the text, with the task's label distribution."""

from __future__ import annotations

import numpy as np

from probe.research.control import control_labels, control_task
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


def test_control_task_is_near_chance_and_selectivity_positive(research_data):
    control = control_task(research_data)
    assert set(control) == {"train", "val", "test"}
    hashes = research_data.train.text_sha1()
    assert hashes.shape == (240, 20)
    result = run_sweep(research_data, layers=[0, 3], pools=["mean"], n_jobs=1, control=True)
    rows = {row["layer"]: row for row in result["entries"]}
    for row in rows.values():
        assert abs(row["control_accuracy"] - 1 / 3) < 0.15  # held-out texts: chance
        assert row["control_train_accuracy"] > row["control_accuracy"]  # memorised
    best = result["best"]
    assert best["layer"] == 3 and best["selectivity"] > 0.3
    assert abs(rows[0]["selectivity"]) < 0.2  # a noise layer explains nothing
