"""Train / validation / test splits from the ways a user can hand over labelled data.

Three forms: separate ``--train/--val/--test`` files; one ``--data`` file with a ``split``
column (train, val|validation|dev, test); or one file split here, stratified, by
``--test-size/--val-size/--seed``. A split that is not given is carved out of train, so
validation (which picks the epoch) is never the test set. ``balance`` draws every class down
to the size of the rarest one (e.g. every spam message and as many random ham messages)
before splitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.data.readers import TextDataset, read_dataset
from probe.errors import ProbeError

SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}


@dataclass
class Splits:
    train: TextDataset
    val: TextDataset
    test: TextDataset

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def load_splits(
    train: str | None = None,
    val: str | None = None,
    test: str | None = None,
    data: str | None = None,
    text_col: str = "text",
    label_col: str = "label",
    test_size: float = 0.2,
    val_size: float = 0.1,
    seed: int = 0,
    balance: bool = False,
) -> Splits:
    """Read and split; every failure is a one-line ``ProbeError``."""
    if (data is None) == (train is None):
        raise ProbeError("give either --data FILE or --train FILE (with --val/--test)")
    if not (0 < test_size < 1 and 0 < val_size < 1 and test_size + val_size < 1):
        raise ProbeError("--test-size and --val-size must be in (0, 1) and sum below 1")

    def read(path):
        return read_dataset(path, text_col, label_col, require_labels=True)

    rng = np.random.default_rng(seed)
    if data is not None:
        dataset = read(data)
        if balance:
            dataset = balanced(dataset, rng)
        if dataset.splits is None:
            rest, test_set = stratified_split(dataset, test_size, rng)
            train_set, val_set = stratified_split(rest, val_size / (1 - test_size), rng)
            return Splits(train_set, val_set, test_set)
        parts = _by_split_column(dataset)
        train_set, val_set, test_set = parts.get("train"), parts.get("val"), parts.get("test")
        if train_set is None:
            raise ProbeError(f"{data}: the split column has no 'train' rows")
    else:
        train_set = read(train)
        if balance:
            train_set = balanced(train_set, rng)
        val_set = read(val) if val else None
        test_set = read(test) if test else None
    if test_set is None:
        train_set, test_set = stratified_split(train_set, test_size, rng)
    if val_set is None:
        train_set, val_set = stratified_split(train_set, val_size, rng)
    return Splits(train_set, val_set, test_set)


def balanced(dataset: TextDataset, rng: np.random.Generator) -> TextDataset:
    """Every example of the rarest class and as many randomly drawn from each other class."""
    labels = np.asarray(dataset.labels)
    classes, counts = np.unique(labels, return_counts=True)
    keep = np.zeros(len(labels), dtype=bool)
    for name in classes:
        members = np.flatnonzero(labels == name)
        keep[rng.choice(members, size=counts.min(), replace=False)] = True
    return dataset.subset(keep)


def stratified_split(
    dataset: TextDataset, fraction: float, rng: np.random.Generator
) -> tuple[TextDataset, TextDataset]:
    """(rest, held out): ``fraction`` of every class held out, at least one example each."""
    labels = np.asarray(dataset.labels)
    held = np.zeros(len(labels), dtype=bool)
    for name in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == name))
        if len(members) < 2:
            raise ProbeError(
                f"{dataset.source}: class '{name}' has {len(members)} example; "
                "a stratified split needs at least 2 per class"
            )
        take = min(max(1, round(fraction * len(members))), len(members) - 1)
        held[members[:take]] = True
    return dataset.subset(~held), dataset.subset(held)


def split_names(values, source) -> np.ndarray:
    """Normalise a ``split`` column to 'train' / 'val' / 'test'; anything else is an error."""
    names = [SPLIT_NAMES.get(str(s).strip().lower()) for s in values]
    unknown = sorted({str(s) for s, n in zip(values, names, strict=True) if n is None})
    if unknown:
        raise ProbeError(
            f"{source}: unknown split values {', '.join(unknown[:5])}; "
            "use train, val (or validation, dev) and test"
        )
    return np.asarray(names)


def _by_split_column(dataset: TextDataset) -> dict[str, TextDataset]:
    names = split_names(dataset.splits, dataset.source)
    return {name: dataset.subset(names == name) for name in set(names.tolist())}
