"""Read a labelled text dataset: CSV, TSV, JSONL, Parquet, a ``datasets`` folder, a hub id.

A folder written by ``datasets``' ``save_to_disk`` (a Dataset, or a DatasetDict with
``--split``) and a Hugging Face hub id (with ``--split``, default ``train``; offline from the
local hub cache) go through ``datasets``; ClassLabel columns arrive as their label names.
A text file holding NUL bytes is refused: it is binary (or UTF-16), and pandas would
otherwise read garbage rows from it without complaint.

Policy for empty or whitespace-only texts: they are skipped and counted (``skipped_empty``),
never fed to the model, because a zero-token example has no last token to pool. Bytes that
are not UTF-8 are an error, not silently replaced: a replaced character would change the
text hash and with it the cache identity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probe.errors import ProbeError, http_errors, short_reason

READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass
class TextDataset:
    texts: list[str]
    labels: list[str] | None
    source: str
    skipped_empty: int = 0
    splits: list[str] | None = None  # a ``split`` column, when the file has one
    ids: list[str] | None = field(default=None)  # an ``id`` column, when the file has one
    groups: list[str | None] | None = None  # a ``--group-col`` column (None: no group)
    targets: np.ndarray | None = None  # numbers or label sets (``probe.data.targets``)
    target_names: list[str] | None = None  # their columns or label names

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, mask) -> TextDataset:
        keep = [i for i, flag in enumerate(mask) if flag]

        def pick(values):
            return None if values is None else [values[i] for i in keep]

        return TextDataset(
            [self.texts[i] for i in keep],
            pick(self.labels),
            self.source,
            0,
            pick(self.splits),
            pick(self.ids),
            pick(self.groups),
            None if self.targets is None else self.targets[keep],
            self.target_names,
        )


def text_sha1(text: str) -> bytes:
    """Identity of one example: joins label files to cached features by exact text."""
    return hashlib.sha1(text.encode("utf-8")).digest()


def read_dataset(
    source: str,
    text_col: str = "text",
    label_col: str | None = "label",
    split: str | None = None,
    require_labels: bool = False,
    group_col: str | None = None,
    target=None,
) -> TextDataset:
    """Read texts (and labels, if the column exists) from a file or a hub dataset;
    ``group_col`` names a column of groups that no split may cut (an empty cell: none).
    ``target`` (``probe.data.targets.TargetSpec``) other than a class reads numbers or label
    sets into ``targets`` instead of ``labels``."""
    from probe.data.targets import CLASSIFICATION, read_targets

    if target is not None and target.kind != CLASSIFICATION:
        label_col, require_labels = None, False  # targets: read below, from their columns
    frame = _read_frame(source, split)
    if text_col not in frame.columns:
        raise ProbeError(
            f"{source}: no column '{text_col}' (columns: {', '.join(map(str, frame.columns))}); "
            "use --text-col"
        )
    has_labels = label_col is not None and label_col in frame.columns
    if require_labels and not has_labels:
        raise ProbeError(f"{source}: no label column '{label_col}'; use --label-col")
    if len(frame) == 0:
        raise ProbeError(f"{source}: the dataset is empty")
    if group_col is not None and group_col not in frame.columns:
        raise ProbeError(
            f"{source}: no group column '{group_col}' "
            f"(columns: {', '.join(map(str, frame.columns))}); check --group-col"
        )
    texts = frame[text_col]
    if texts.isna().any() or not all(isinstance(t, str) for t in texts):
        texts = texts.fillna("").astype(str)
    keep = texts.str.strip().str.len() > 0
    skipped = int((~keep).sum())
    if not keep.any():
        raise ProbeError(f"{source}: every text is empty or whitespace")
    frame = frame[keep.values]
    labels = None
    if has_labels:
        column = frame[label_col]
        if column.isna().any():
            raise ProbeError(f"{source}: {int(column.isna().sum())} rows have no label")
        labels = [str(v) for v in column]
    targets, names = None, None
    if label_col is None and target is not None:
        targets, names = read_targets(frame, target, source)
    return TextDataset(
        texts=[str(t) for t in texts[keep.values]],
        labels=labels,
        source=source,
        skipped_empty=skipped,
        splits=[str(v) for v in frame["split"]] if "split" in frame.columns else None,
        ids=[str(v) for v in frame["id"]] if "id" in frame.columns else None,
        groups=None if group_col is None else _group_values(frame[group_col]),
        targets=targets,
        target_names=names,
    )


def read_table(source: str):
    """A local CSV/TSV/JSONL/Parquet file as a data frame, every row kept (no text column
    needed, none skipped): a label file matched to features by row order needs them all."""
    return _read_frame(source, None)


def _group_values(column) -> list[str | None]:
    """A group column's cells as strings; empty or missing cells belong to no group."""
    return [None if v is None or v != v or str(v).strip() == "" else str(v) for v in column]


def _read_frame(source: str, split: str | None):
    import pandas as pd

    path = Path(source).expanduser()
    kind = READERS.get(path.suffix.lower())
    if not path.exists():
        if kind is not None or source.startswith((".", "/", "~")):
            raise ProbeError(f"data file not found: {source}")
        return _read_hub_dataset(source, split)
    if path.is_dir():
        return _read_saved_dataset(path, split)
    if kind is None:
        raise ProbeError(
            f"{source}: expected a .csv, .tsv, .jsonl or .parquet file or a datasets folder"
        )
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        raw = path.read_bytes()
        if b"\x00" in raw:
            first = raw.index(b"\x00")
            raise ProbeError(
                f"{source}: holds NUL bytes (first at byte {first}): a binary or "
                f"UTF-16 file, not {kind} text; save it as UTF-8 {kind}"
            )
        raw.decode("utf-8")  # fail loudly on bytes that are not UTF-8
        if not raw.strip():
            raise ProbeError(f"{source}: the dataset is empty")
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        sep = "\t" if kind == "tsv" else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProbeError(f"{source}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except _parse_errors(kind) as exc:
        raise ProbeError(f"{source}: cannot parse as {kind}: {short_reason(exc, 300)}") from None


def _parse_errors(kind: str) -> tuple[type[Exception], ...]:
    """What pandas and pyarrow raise for a file they cannot parse: ValueError (pandas'
    ParserError and EmptyDataError, JSON errors, pyarrow's ArrowInvalid) and TypeError (JSON
    lines of mixed shapes); for Parquet also pyarrow's ArrowException types and OSError (its
    ArrowIOError: "Corrupt snappy compressed data"). Reading a text file fails with an
    OSError of the machine, which the CLI words itself."""
    if kind != "parquet":
        return (ValueError, TypeError)
    from pyarrow import ArrowException

    return (ValueError, TypeError, OSError, ArrowException)


def _read_hub_dataset(name: str, split: str | None):
    """A hub dataset through ``datasets``: online, or offline from the local hub cache."""
    import datasets

    split = split or "train"
    try:
        loaded = datasets.load_dataset(name, split=split)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise ProbeError(f"dataset '{name}': {short_reason(exc)}; use --split") from None
        raise ProbeError(f"cannot load dataset '{name}': {short_reason(exc)}") from None
    except (OSError, datasets.exceptions.DatasetsError, *http_errors()) as exc:
        # offline or unreachable (ConnectionError), no such dataset (DatasetNotFoundError),
        # the hub's HTTP errors: OSErrors all; a dataset that fails to build: DatasetsError;
        # the HTTP client's own errors
        if datasets.config.HF_HUB_OFFLINE:
            raise ProbeError(
                f"dataset '{name}' is not in the local Hugging Face cache and HF_HUB_OFFLINE=1: "
                "with network, set HF_HUB_OFFLINE=0; else pass a local file or datasets folder"
            ) from None
        raise ProbeError(
            f"cannot load dataset '{name}' from the Hugging Face hub (offline, or no such "
            f"dataset: {short_reason(exc)}); pass a local .csv/.tsv/.jsonl/.parquet file instead"
        ) from None
    return _frame_with_label_names(loaded)


def _read_saved_dataset(path: Path, split: str | None):
    """A folder from ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    is_dict = (path / "dataset_dict.json").is_file()
    if not is_dict and not (path / "state.json").is_file():
        raise ProbeError(
            f"{path}: a folder, but not one written by datasets' save_to_disk; "
            "expected a .csv, .tsv, .jsonl or .parquet file or a save_to_disk folder"
        )
    import datasets
    import pyarrow

    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, TypeError, KeyError, pyarrow.ArrowException) as exc:
        # damaged arrow files or state: a missing file (OSError), bad JSON or arrow data
        # (ValueError, pyarrow's ArrowException), JSON of the wrong shape (TypeError, KeyError)
        raise ProbeError(f"{path}: cannot read the datasets folder: {short_reason(exc)}") from None
    if is_dict:
        split = split or "train"
        if split not in loaded:
            raise ProbeError(
                f"{path}: no split '{split}' (splits: {', '.join(loaded)}); use --split"
            )
        loaded = loaded[split]
    elif split is not None:
        raise ProbeError(f"{path} holds one split; --split {split} applies to a DatasetDict only")
    return _frame_with_label_names(loaded)


def _frame_with_label_names(dataset):
    """``to_pandas`` with every ClassLabel column turned from ids into label names."""
    import datasets

    frame = dataset.to_pandas()
    for column, feature in dataset.features.items():
        if isinstance(feature, datasets.ClassLabel):
            frame[column] = [
                feature.int2str(int(v)) if v is not None and v >= 0 else None for v in frame[column]
            ]
    return frame
