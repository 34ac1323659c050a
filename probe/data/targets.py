"""What a head predicts, read from a data file: one class, numbers, or a set of labels.

A classifier reads one label column as strings (``probe.data.readers``). The other targets
are arrays read here, so every problem of the file is one line before any model runs:

- ``regression``: one or more numeric columns (``--label-col latitude,longitude``) as float64
  (n, T); a cell that is not a number names its row;
- ``multi-label``: one column of label sets (``sports|politics``; ``--label-sep``; an empty
  cell is no label), or several 0/1 columns (``--label-col a,b,c``), as int8 (n, L).

Splits are stratified on ``strata``: deciles of the first target (regression), the rarest
label a row carries (multi-label), so a carved test set spans the range of the targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.errors import ProbeError

CLASSIFICATION, REGRESSION, MULTI_LABEL = "classification", "regression", "multi-label"
TARGETS = (CLASSIFICATION, REGRESSION, MULTI_LABEL)
TRUE_CELLS = {"1", "1.0", "true", "yes", "y", "t"}
FALSE_CELLS = {"0", "0.0", "false", "no", "n", "f", ""}
NUMERIC_LOOKING = 20  # distinct numeric labels beyond which a class column gets a notice


@dataclass(frozen=True)
class TargetSpec:
    """Which columns hold the target and how they are read."""

    kind: str = CLASSIFICATION
    columns: tuple[str, ...] = ("label",)
    sep: str = "|"

    @property
    def label_col(self) -> str:
        return ",".join(self.columns)


def target_spec(label_col: str, regression: bool = False, multi_label: bool = False, sep="|"):
    """The ``TargetSpec`` of a head command's options; a one-line error for a combination
    that cannot be read (a column list for a classifier, both kinds at once)."""
    if regression and multi_label:
        raise ProbeError("--task regression and --multi-label exclude each other")
    columns = tuple(name.strip() for name in str(label_col).split(","))
    if any(not name for name in columns):
        raise ProbeError(f"--label-col {label_col!r} has an empty column name")
    kind = REGRESSION if regression else MULTI_LABEL if multi_label else CLASSIFICATION
    if kind == CLASSIFICATION and len(columns) > 1:
        raise ProbeError(
            f"--label-col names {len(columns)} columns; a classifier reads one "
            "(--task regression or --multi-label read several)"
        )
    if not sep:
        raise ProbeError("--label-sep must not be empty")
    return TargetSpec(kind, columns, sep)


def read_targets(frame, spec: TargetSpec, source: str) -> tuple[np.ndarray, list[str]]:
    """(targets, names) of ``frame``'s rows: float64 (n, T) or int8 (n, L)."""
    missing = [name for name in spec.columns if name not in frame.columns]
    if missing:
        columns = ", ".join(map(str, frame.columns))
        raise ProbeError(f"{source}: no column '{missing[0]}' (columns: {columns}); --label-col")
    if spec.kind == REGRESSION:
        return _numbers(frame, spec.columns, source), list(spec.columns)
    if len(spec.columns) == 1:
        return label_sets(frame[spec.columns[0]].tolist(), spec.sep, spec.columns[0], source)
    return indicator_columns(frame, spec.columns, source)


def _numbers(frame, columns, source: str) -> np.ndarray:
    import pandas as pd

    values = np.empty((len(frame), len(columns)))
    for j, name in enumerate(columns):
        numeric = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(numeric))
        if len(bad):
            cell, row = frame[name].iloc[bad[0]], _row_number(frame, bad[0])
            raise ProbeError(
                f"{source}: {name} of row {row} is {str(cell)[:40]!r}, not a number "
                f"({len(bad)} such rows); --task regression needs numbers"
            )
        values[:, j] = numeric
    return values


def label_sets(cells, sep: str, column: str, source: str) -> tuple[np.ndarray, list[str]]:
    """A column of ``a|b`` cells as an int8 indicator matrix (n, L) and the sorted names."""
    sets = []
    for cell in cells:
        text = "" if cell is None or cell != cell else str(cell)
        sets.append({part.strip() for part in text.split(sep) if part.strip()})
    names = sorted(set().union(*sets))
    if not names:
        raise ProbeError(f"{source}: the column '{column}' holds no labels (every cell empty)")
    texts = ["" if cell is None or cell != cell else str(cell) for cell in cells]
    if not any(sep in text for text in texts):  # a separator named wrongly, or one label each
        whole = {text.strip() for text in texts}
        for other in (",", ";", "/", " "):
            split = [text for text in texts if other in text.strip()]
            # a space is a separator only when the parts are themselves labels of other cells
            spaced = other != " " or any(all(p in whole for p in t.split()) for t in split)
            if other != sep and split and spaced:
                raise ProbeError(
                    f"{source}: --label-sep {sep!r} never occurs in '{column}'; its cells look "
                    f"separated by {other!r} (give --label-sep {other!r})"
                )
    index = {name: j for j, name in enumerate(names)}
    targets = np.zeros((len(sets), len(names)), np.int8)
    for i, found in enumerate(sets):
        targets[i, [index[name] for name in found]] = 1
    return targets, names


def indicator_columns(frame, columns, source: str) -> tuple[np.ndarray, list[str]]:
    """Several 0/1 (true/false, yes/no) columns as an int8 indicator matrix (n, L)."""
    targets = np.zeros((len(frame), len(columns)), np.int8)
    for j, name in enumerate(columns):
        for i, cell in enumerate(frame[name].tolist()):
            text = "" if cell is None or cell != cell else str(cell).strip().lower()
            if text in TRUE_CELLS:
                targets[i, j] = 1
            elif text not in FALSE_CELLS:
                row = _row_number(frame, i)
                raise ProbeError(
                    f"{source}: {name} of row {row} is {str(cell)[:30]!r}; a label column of "
                    "--multi-label holds 0/1 (true/false, yes/no)"
                )
    if not targets.any():
        raise ProbeError(f"{source}: the columns {', '.join(columns)} hold no labels (all 0)")
    return targets, list(columns)


def _row_number(frame, position: int) -> int:
    """The data row (1 = the first after a header) of ``position``, counted in the file:
    rows skipped for an empty text keep their numbers."""
    label = frame.index[position]
    return int(label) + 1 if isinstance(label, (int, np.integer)) else position + 1


def strata(targets: np.ndarray, kind: str) -> np.ndarray:
    """One stratum per row for stratified splits of non-categorical targets: the decile of
    the first target, or the rarest label the row carries (-1: none)."""
    if kind == REGRESSION:
        first = targets.reshape(len(targets), -1)[:, 0]
        edges = np.unique(np.quantile(first, np.linspace(0, 1, 11)[1:-1]))
        return np.searchsorted(edges, first, side="right").astype(str)
    frequency = targets.sum(axis=0)
    rarest = np.where(targets > 0, frequency[None, :], np.iinfo(np.int64).max).argmin(axis=1)
    return np.where(targets.any(axis=1), rarest, -1).astype(str)


def numeric_label_notice(labels: list[str], column: str) -> str | None:
    """A line when a class column looks like numbers with many values (a year, a price):
    read as classes as asked, but ``--task regression`` may be what was meant."""
    distinct = set(labels)
    if len(distinct) <= NUMERIC_LOOKING:
        return None
    try:
        for label in distinct:
            float(label)
    except ValueError:
        return None
    return (
        f"'{column}' holds {len(distinct)} distinct numbers, read as {len(distinct)} classes; "
        "--task regression fits them as numbers"
    )


def split_strata(labels: np.ndarray, kind: str | None) -> np.ndarray:
    """What a carved split stratifies on: the classes, or the targets' ``strata``."""
    return labels if kind in (None, CLASSIFICATION) else strata(labels, kind)


def label_lines(dataset, label_col: str, training: bool, kind: str) -> list[str]:
    """What the user hears on reading a file's targets: which labels (or targets) it holds,
    skipped texts, texts with two labels, a numeric-looking class column; one class in the
    training file is an error."""
    name, source = dataset.source.rsplit("/", 1)[-1], dataset.source
    lines = []
    if dataset.skipped_empty:
        lines.append(f"{source}: skipped {dataset.skipped_empty} empty or whitespace-only texts")
    if kind != CLASSIFICATION:
        return [*lines, f"{name}: {kind} targets {', '.join(dataset.target_names[:8])}"]
    if training and len(set(dataset.labels)) < 2:
        raise ProbeError(
            f"{source}: every label is {dataset.labels[0]!r}; a classifier needs at least 2 classes"
        )
    lines.append(f"{name}: labels {label_names_line(dataset.labels)} from {source}")
    notice = numeric_label_notice(dataset.labels, label_col) if training else None
    lines += [f"{name}: {notice}"] if notice else []
    conflicting = conflicting_texts(dataset.texts, dataset.labels)
    if conflicting:
        lines.append(
            f"{source}: {conflicting} texts appear more than once with different labels; "
            "they are kept as given (no model can get both right)"
        )
    return lines


def conflicting_texts(texts, labels) -> int:
    """How many distinct texts carry more than one label: worth a warning, not an error."""
    seen: dict[str, set] = {}
    for text, label in zip(texts, labels, strict=True):
        seen.setdefault(text, set()).add(label)
    return sum(len(found) > 1 for found in seen.values())


def label_names_line(labels) -> str:
    """``ham/spam``: the label names a head will learn, for the log line that says so."""
    names = sorted({str(v) for v in labels})
    return "/".join(names) if len(names) <= 8 else "/".join(names[:8]) + f"/... ({len(names)})"


def same_target_names(names: list, kind: str) -> list[str] | None:
    """The target's names (columns or labels) every file holds (None: classes); files that
    name different ones are an error."""
    names = [item for item in names if item is not None]
    if names and any(other != names[0] for other in names):
        raise ProbeError(f"the files hold different {kind} labels: {names[0]} vs {names[1]}")
    return names[0] if names else None
