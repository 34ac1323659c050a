"""Train / validation / test splits from the ways a user can hand over labelled data.

Three forms: separate ``--train/--val/--test`` files; one ``--data`` file with a ``split``
column (train, val|validation|dev, test); or one file split here, stratified, by
``--test-size/--val-size/--seed``. A split that is not given is carved out of train, so
validation (which picks the epoch) is never the test set. ``balance`` draws every class down
to the size of the rarest one (e.g. every spam message and as many random ham messages)
before splitting.

**A group is never split.** Rows with the same text are one group (a repeated text on both
sides of a split is a memorised answer, not a prediction), and so are rows that share a user
group (``--group-col``: an author, a document, a conversation); groups join where they meet.
Every split drawn here, and every fold and resample downstream, keeps a group on one side.
Without repeated groups the draws are the row-wise ones they always were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.data.readers import TextDataset, read_dataset, text_sha1
from probe.errors import ProbeError

SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "dev": "val", "test": "test"}


def group_ids(text_keys, user_groups=None) -> np.ndarray:
    """int64 (n,): one id per group, numbered by first appearance. Rows with equal
    ``text_keys`` are one group; with ``user_groups`` (None entries: no group), rows sharing
    one are too, and groups that meet merge (connected components)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, by_text = np.unique(np.asarray(text_keys), return_inverse=True, axis=0)
    by_text = by_text.reshape(-1)
    n = len(by_text)
    components = by_text
    if user_groups is not None:  # a graph: row -- its text, row -- its user group
        given = np.asarray([g is not None and str(g) != "" for g in user_groups], dtype=bool)
        _, by_user = np.unique(np.asarray([str(g) for g in user_groups]), return_inverse=True)
        n_texts = int(by_text.max()) + 1
        rows = np.concatenate([np.arange(n), np.flatnonzero(given)])
        nodes = np.concatenate([n + by_text, n + n_texts + by_user[given]])
        size = n + n_texts + int(by_user.max()) + 1
        graph = coo_matrix((np.ones(len(rows)), (rows, nodes)), shape=(size, size))
        components = connected_components(graph, directed=False)[1][:n]
    _, first, numbered = np.unique(components, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # ids in order of first appearance
    return order[numbered.reshape(-1)].astype(np.int64)


def dataset_groups(dataset: TextDataset) -> np.ndarray:
    """The groups of a dataset's rows: equal texts, joined by its ``--group-col`` cells."""
    return group_ids([text_sha1(t) for t in dataset.texts], dataset.groups)


def has_shared_groups(groups) -> bool:
    """Whether any group holds more than one row (else every split is row-wise)."""
    return groups is not None and len(np.unique(groups)) < len(groups)


def held_out_rows(labels, fraction: float, rng: np.random.Generator, groups=None) -> np.ndarray:
    """bool (n,): ``fraction`` of every class held out, at least one example each, whole
    groups at a time. A group counts for the class most of its rows carry. A class with a
    single row (group) stays wholly in training: it cannot be on both sides, and dropping it
    would lose a class the user gave (``train_only_classes`` names them for the notice)."""
    labels = np.asarray(labels)
    held = np.zeros(len(labels), dtype=bool)
    grouped = has_shared_groups(groups)
    if grouped:
        groups = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)  # 0..G-1
        unit_label = group_label_of(labels, groups)  # (G,)
    else:
        unit_label = labels
    for name in np.unique(unit_label):
        members = rng.permutation(np.flatnonzero(unit_label == name))
        if len(members) < 2:
            continue
        take = min(max(1, round(fraction * len(members))), len(members) - 1)
        if grouped:
            held[np.isin(groups, members[:take])] = True
        else:
            held[members[:take]] = True
    return held


def train_only_classes(labels, groups=None) -> list[str]:
    """The classes a stratified split keeps wholly in training (``held_out_rows``): those
    with fewer than 2 rows, or groups when rows are grouped."""
    labels = np.asarray(labels)
    if has_shared_groups(groups):
        groups = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
        labels = group_label_of(labels, groups)
    names, counts = np.unique(labels, return_counts=True)
    return [str(name) for name in names[counts < 2]]


def train_only_notice(classes: list[str], split: str) -> str | None:
    """The line that says which classes a carved ``split`` could not take (None: none)."""
    if not classes:
        return None
    names = ", ".join(repr(name) for name in classes[:3]) + (", ..." if len(classes) > 3 else "")
    have = "1 class has" if len(classes) == 1 else f"{len(classes)} classes have"
    return (
        f"{have} fewer than 2 examples ({names}): kept in training only, not in the {split} split"
    )


def group_label_of(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The most frequent label of each group id 0..G-1 (ties: the first in sorted order)."""
    names, codes = np.unique(labels, return_inverse=True)
    counts = np.zeros((int(groups.max()) + 1, len(names)), np.int64)
    np.add.at(counts, (groups, codes), 1)
    return names[counts.argmax(axis=1)]


def shared_texts(held_keys, train_keys) -> int:
    """How many rows of a given held-out split have their exact text in train."""
    train = {bytes(key) for key in np.asarray(train_keys)}
    return sum(bytes(key) in train for key in np.asarray(held_keys))


def grouping_summary(splits: dict, group_col=None) -> dict:
    """What the result files record of the groups (and a line for the user): rows sharing a
    group, the groups, and for given splits the held-out texts also found in train.

    ``splits``: name -> rows with ``groups`` and ``text_sha1()`` (``CachedSplit``)."""
    summary = {"by": "text" + (f" and column '{group_col}'" if group_col else ""), "splits": {}}
    lines = []
    for name, split in splits.items():
        _, sizes = np.unique(split.groups, return_counts=True)
        summary["splits"][name] = {
            "rows": len(split),
            "groups": len(sizes),
            "rows_in_shared_groups": int(sizes[sizes > 1].sum()),
        }
    train = splits["train"]
    overlap = {}
    for name in ("val", "test"):
        if splits.get(name) is not None:
            overlap[name] = shared_texts(splits[name].text_sha1(), train.text_sha1())
            if overlap[name]:
                lines.append(f"{overlap[name]} {name} texts also occur in train (kept as given)")
    summary["held_out_texts_in_train"] = overlap
    shared = sum(part["rows_in_shared_groups"] for part in summary["splits"].values())
    if shared:
        count = sum(part["groups"] for part in summary["splits"].values())
        lines.insert(
            0,
            f"grouped by {summary['by']}: {shared} rows share a group with another row "
            f"({count} groups in all); no split, fold or resample parts a group",
        )
    if lines:
        summary["notice"] = "; ".join(lines)
    return summary


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
            rest, test_set = stratified_split(dataset, test_size, rng, "test")
            train_set, val_set = stratified_split(rest, val_size / (1 - test_size), rng, "val")
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
        train_set, test_set = stratified_split(train_set, test_size, rng, "test")
    if val_set is None:
        train_set, val_set = stratified_split(train_set, val_size, rng, "val")
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
    dataset: TextDataset, fraction: float, rng: np.random.Generator, split: str = "held-out"
) -> tuple[TextDataset, TextDataset]:
    """(rest, held out): ``fraction`` of every class held out, at least one example each;
    rows of one text (or one ``--group-col`` group) stay together; a class with one example
    (group) stays in the rest, and the user is told (``train_only_notice``)."""
    from probe.messages import say

    groups = dataset_groups(dataset)
    held = held_out_rows(dataset.labels, fraction, rng, groups)
    if not held.any():
        raise ProbeError(
            f"{dataset.source}: no class has 2 examples; a {split} split needs 2 in some class"
        )
    notice = train_only_notice(train_only_classes(dataset.labels, groups), split)
    if notice:
        say(f"{dataset.source}: {notice}")
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
