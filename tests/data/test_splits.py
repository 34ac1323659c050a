"""Train/validation/test splits for fine-tuning and the comparison."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from conftest import SMS_CSV
from probe.data.splits import load_splits
from probe.errors import ProbeError


def test_balanced_split_keeps_every_minority_example_and_is_stratified():
    splits = load_splits(data=str(SMS_CSV), balance=True, seed=0)
    frame = pd.read_csv(SMS_CSV)
    spam = set(frame.text[frame.label == "spam"])
    everything = splits.train.texts + splits.val.texts + splits.test.texts
    labels = splits.train.labels + splits.val.labels + splits.test.labels
    assert Counter(labels) == {"spam": 747, "ham": 747}
    assert {t for t, y in zip(everything, labels, strict=True) if y == "spam"} == spam
    sizes = splits.sizes()
    # 20% and 10% of each class's texts; repeated texts (SMS spam has many) move together,
    # so the sizes are near 298 and 150, not exact
    assert abs(sizes["test"] - 298) <= 15 and abs(sizes["val"] - 150) <= 15
    for split in (splits.train, splits.val, splits.test):
        counts = Counter(split.labels)
        assert abs(counts["spam"] - counts["ham"]) <= 0.1 * len(split.labels)
    parts = [set(splits.train.texts), set(splits.val.texts), set(splits.test.texts)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    again = load_splits(data=str(SMS_CSV), balance=True, seed=0)
    assert again.test.texts == splits.test.texts  # a fixed seed gives the same split


def test_split_column_and_carved_validation(tmp_path):
    rows = [(f"text {i}", "a" if i % 2 else "b", "train" if i < 16 else "test") for i in range(20)]
    path = tmp_path / "with_split.csv"
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(path, index=False)
    splits = load_splits(data=str(path), val_size=0.25)
    assert splits.sizes() == {"train": 12, "val": 4, "test": 4}
    assert set(splits.val.texts).isdisjoint(splits.train.texts)


def test_bad_split_requests(tmp_path):
    with pytest.raises(ProbeError, match="either --data"):
        load_splits()
    with pytest.raises(ProbeError, match="either --data"):
        load_splits(data=str(SMS_CSV), train=str(SMS_CSV))
    path = tmp_path / "odd.csv"
    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"], "split": ["train", "holdout"]}).to_csv(
        path, index=False
    )
    with pytest.raises(ProbeError, match="unknown split values holdout"):
        load_splits(data=str(path))
    single = tmp_path / "single.csv"
    texts = ["a", "b", "c", "d", "e"]
    pd.DataFrame({"text": texts, "label": ["x"] * 4 + ["y"]}).to_csv(single, index=False)
    found = load_splits(data=str(single))  # a class of one example stays in training
    assert "y" in found.train.labels and sum(found.sizes().values()) == 5
    assert "y" not in found.val.labels + found.test.labels
    three = tmp_path / "three.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "x", "y"]}).to_csv(three, index=False)
    with pytest.raises(ProbeError, match="no class has 2 examples; a val split needs 2"):
        load_splits(data=str(three))  # test takes one 'x'; the rest has one of each


def test_many_classes_with_singletons_split_without_losing_a_row():
    """300 classes, a third of them seen once: the carved split neither fails nor drops a
    row; every singleton stays in training, every class with two or more is on both sides."""
    import numpy as np

    from probe.data.splits import held_out_rows, train_only_classes

    rng = np.random.default_rng(0)
    sizes = [1] * 100 + [2] * 100 + list(rng.integers(3, 30, size=100))
    labels = np.concatenate([[f"c{i}"] * n for i, n in enumerate(sizes)])
    held = held_out_rows(labels, 0.2, np.random.default_rng(0))
    assert held.shape == labels.shape and 0 < held.sum() < len(labels)
    assert len(train_only_classes(labels)) == 100
    for i, n in enumerate(sizes):
        mine = held[labels == f"c{i}"]
        assert not mine.all()  # some of every class trains
        assert mine.any() == (n >= 2)  # and a class of two or more is also held out


def test_a_class_with_one_example_stays_in_training_and_is_said(tmp_path, said):
    rows = [(f"text {i}", "x" if i < 12 else "y") for i in range(24)] + [("lone", "z")]
    path = tmp_path / "lone.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    splits = load_splits(data=str(path), seed=0)
    assert "lone" in splits.train.texts  # kept, in training: never dropped
    assert sum(splits.sizes().values()) == 25
    assert "z" not in splits.val.labels and "z" not in splits.test.labels
    assert (
        "1 class has fewer than 2 examples ('z'): kept in training only, not in the test split"
        in ("\n".join(said))
    )
