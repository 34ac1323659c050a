"""A view as one file that other tools read without probe: Parquet, safetensors or ``.npz``.

Every format carries the features and each row's identity: ``id`` (where the data had one),
``text_sha1`` (the sha1 of the text: hex in Parquet, uint8 [N, 20] in the binary formats),
``label`` (where stored), ``n_tokens``, the model layer of every feature row and the view's
attributes (model, fingerprint, tokenizer, max length, prompt: the ``probe`` metadata,
JSON). ``probe fit --features FILE`` reads all three back (``probe.features.store.imported``).

- ``parquet``: one row per text; one fixed-size list column of float32 per (layer, pool),
  ``layer_12_last``. float32, not the view's float16: every float16 widens exactly, and
  readers older than Parquet's FLOAT16 type (DuckDB, Spark, polars, pyarrow < 15) read it.
  ``pandas.read_parquet`` and ``datasets.Dataset.from_parquet`` read it as it is.
- ``safetensors``: tensors ``last``/``mean`` float16 [L, N, D] (the view's values, as
  stored), ``layers``, ``text_sha1``, ``n_tokens``; the string columns (``id``, ``label``)
  are JSON lists in its metadata, which holds strings only.
- ``npy``: one ``.npz`` (numpy's own zip of ``.npy`` files), because an export is several
  arrays and one ``.npy`` holds one; ``numpy.load`` reads each member lazily, no pickle.

Word views export one row per word: ``sentence`` (its index), ``word``, the word type's
``text_sha1``, ``aligned`` and one label column per task. Features are streamed a layer (or
4,096 rows) at a time, so memory stays flat in the view's size; files appear atomically.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.files import atomic_path

FORMATS = ("parquet", "safetensors", "npy")
EXPORT_FORMAT = "probe-features"  # the ``format`` field of every export's metadata
ROWS_PER_GROUP = 4096  # Parquet row groups: one HDF5 chunk of rows per read


def feature_column(layer: int, pool: str) -> str:
    """The Parquet column of one (layer, pool): ``layer_12_last``."""
    return f"layer_{layer}_{pool}"


def export_view(
    view: str | Path,
    out: str | Path,
    fmt: str,
    layers: str | None = None,
    pools: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the view ``view`` (a path, or a file name in the store) to ``out`` as ``fmt``;
    ``layers``/``pools`` (specs as in ``probe sweep``) pick what goes in. Returns ``out``."""
    import h5py

    from probe.features.store.caches import open_cache

    if fmt not in FORMATS:
        raise ProbeError(f"unknown export format '{fmt}'; choose {', '.join(FORMATS)}")
    out = Path(out)
    if fmt == "npy" and out.suffix != ".npz":
        raise ProbeError(f"an npy export is one .npz file (several arrays); name it {out}.npz")
    if out.exists() and not overwrite:
        raise ProbeError(f"{out} exists; give --overwrite to replace it")
    cache = open_cache(find_view(view))
    chosen = chosen_layers(cache, layers)
    chosen_pools = [p.strip() for p in (pools or ",".join(cache.pools)).split(",") if p.strip()]
    for pool in chosen_pools:
        if pool not in cache.pools:
            raise ProbeError(f"pool '{pool}' is not in {cache.path.name}; it holds {cache.pools}")
    picked = Picked(chosen, [cache.layers.index(layer) for layer in chosen], chosen_pools)
    columns = row_columns(cache)
    meta = export_meta(cache, picked)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = {"parquet": write_parquet, "safetensors": write_safetensors, "npy": write_npz}[fmt]
    with h5py.File(cache.path, "r") as handle, atomic_path(out, suffix=out.suffix) as staging:
        writer(staging, handle, picked, columns, meta)
    return out


def find_view(view: str | Path) -> Path:
    """``view`` as given, else the store's view of that file name or key (``probe cache ls``
    prints names)."""
    from probe.features.store.caches import features_dir

    path = Path(view)
    if path.exists():
        return path
    for candidate in (features_dir() / path.name, features_dir() / f"{path.name}.h5"):
        if candidate.is_file():
            return candidate
    return path  # open_cache names what is missing


def chosen_layers(cache, spec: str | None) -> list[int]:
    """The stored layers ``spec`` names (every stored one when None), or a one-line error."""
    from probe.features.layers import resolve_layers

    if spec is None:
        return list(cache.layers)
    top = int(cache.meta.get("n_layers_model", max(cache.layers)))
    chosen = resolve_layers(spec, top)
    missing = [layer for layer in chosen if layer not in cache.layers]
    if missing:
        stored = ",".join(map(str, cache.layers))
        raise ProbeError(f"layer {missing[0]} is not stored in {cache.path.name}; stored: {stored}")
    return chosen


@dataclass
class Picked:
    """What an export holds: model layers, their positions in the view, pools."""

    layers: list[int]
    indexes: list[int]
    pools: list[str]


def row_columns(cache) -> dict[str, np.ndarray]:
    """The per-row columns beside the features, in order: strings as ``str`` arrays."""
    if cache.meta.get("unit") in ("word", "token"):
        return word_columns(cache)
    columns = {}
    if cache.ids is not None:
        columns["id"] = np.asarray(cache.ids, dtype=str)
    columns["text_sha1"] = np.asarray([bytes(row).hex() for row in cache.text_sha1], dtype=str)
    if cache.labels is not None:
        columns["label"] = np.asarray(cache.labels, dtype=str)
    columns["n_tokens"] = np.asarray(cache.n_tokens, dtype=np.int32)
    return columns


def word_columns(cache) -> dict[str, np.ndarray]:
    """A word (or token) view's rows: sentence index, word, type hash, aligned, task labels."""
    from probe.features.store.wordviews import read_tasks, read_word_layout

    layout = read_word_layout(cache.path)
    offsets = layout["sentence_offsets"]
    columns = {"sentence": np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))}
    if layout["words"] is not None:
        columns["word"] = np.asarray(layout["words"], dtype=str)
        columns["text_sha1"] = np.asarray([bytes(row).hex() for row in cache.text_sha1], str)
    columns["aligned"] = np.asarray(layout["aligned"], dtype=bool)
    for task, labels in read_tasks(cache.path).items():
        columns[task] = np.asarray(labels, dtype=str)
    return columns


def export_meta(cache, picked: Picked) -> dict:
    """The ``probe`` metadata of an export: what it holds and the view's own attributes."""
    return {
        "format": EXPORT_FORMAT,
        "version": 1,
        "unit": cache.meta.get("unit", "text"),
        "view": cache.path.name,
        "layers": picked.layers,
        "pools": picked.pools,
        "columns": {
            feature_column(layer, pool): [layer, pool]
            for layer in picked.layers
            for pool in picked.pools
        },
        "attrs": cache.meta,
    }


# --- the writers: (staging path, open view, picked, row columns, metadata) -------------------


def write_parquet(path: Path, handle, picked: Picked, columns: dict, meta: dict) -> None:
    """One row per text; features as fixed-size float32 lists, a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, dim = len(next(iter(columns.values()))), handle[picked.pools[0]].shape[2]
    writer = None
    try:
        for start in range(0, max(n, 1), ROWS_PER_GROUP):
            stop = min(n, start + ROWS_PER_GROUP)
            batch = {name: pa.array(values[start:stop]) for name, values in columns.items()}
            for layer, index in zip(picked.layers, picked.indexes, strict=True):
                for pool in picked.pools:
                    block = handle[pool][index, start:stop].astype(np.float32)  # (rows, D)
                    flat = pa.array(block.reshape(-1), type=pa.float32())
                    batch[feature_column(layer, pool)] = pa.FixedSizeListArray.from_arrays(
                        flat, dim
                    )
            table = pa.table(batch)
            if writer is None:
                schema = table.schema.with_metadata({"probe": json.dumps(meta, default=str)})
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


@dataclass
class Entry:
    """One array of a binary export, written as a header and then ``blocks`` in order."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    blocks: Callable[[], Iterable[np.ndarray]]


def binary_entries(handle, picked: Picked, columns: dict, strings: bool) -> list[Entry]:
    """The features [L, N, D] per pool (read a layer at a time), ``layers``, the text hashes
    and the numeric columns; the string columns too when ``strings`` (npz, not safetensors)."""

    def layers_of(pool):
        return lambda: (handle[pool][index] for index in picked.indexes)  # (N, D) each

    def whole(array):
        return lambda: [array]

    n, dim = handle["text_sha1"].shape[0], handle[picked.pools[0]].shape[2]
    entries = [
        Entry(pool, handle[pool].dtype, (len(picked.layers), n, dim), layers_of(pool))
        for pool in picked.pools
    ]
    arrays = {"layers": np.asarray(picked.layers, np.int64), "text_sha1": handle["text_sha1"][()]}
    arrays.update((k, v) for k, v in columns.items() if k != "text_sha1")  # hex: Parquet's
    for name, values in arrays.items():
        if values.dtype.kind == "U" and not strings:
            continue
        if values.dtype == bool:
            values = values.astype(np.uint8)
        entries.append(Entry(name, values.dtype, values.shape, whole(values)))
    return entries


def write_npz(path: Path, handle, picked: Picked, columns: dict, meta: dict) -> None:
    """Uncompressed members (``numpy.load`` maps them lazily), one ``.npy`` each, streamed."""
    from numpy.lib import format as npy

    entries = binary_entries(handle, picked, columns, strings=True)
    meta_text = np.asarray(json.dumps(meta, default=str))
    entries.append(Entry("meta", meta_text.dtype, (), lambda: [meta_text]))
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
        for entry in entries:
            with archive.open(f"{entry.name}.npy", "w", force_zip64=True) as member:
                header = {
                    "descr": npy.dtype_to_descr(np.dtype(entry.dtype)),
                    "fortran_order": False,
                    "shape": tuple(entry.shape),
                }
                npy.write_array_header_1_0(member, header)
                for block in entry.blocks():
                    member.write(np.ascontiguousarray(block, dtype=entry.dtype).tobytes())


SAFETENSORS_DTYPES = {"f2": "F16", "f4": "F32", "i8": "I64", "i4": "I32", "u1": "U8"}


def write_safetensors(path: Path, handle, picked: Picked, columns: dict, meta: dict) -> None:
    """The safetensors layout (8-byte header length, JSON header, raw little-endian data),
    written by hand so a tensor [L, N, D] streams a layer at a time."""
    entries = binary_entries(handle, picked, columns, strings=False)
    metadata = {"probe": json.dumps(meta, default=str)}
    for name, values in columns.items():
        if values.dtype.kind == "U" and name != "text_sha1":
            metadata[name] = json.dumps(values.tolist())  # ids, labels, words: JSON lists
    header, offset = {}, 0
    for entry in entries:
        dtype = np.dtype(entry.dtype)
        size = dtype.itemsize * int(np.prod(entry.shape, dtype=np.int64))
        code = SAFETENSORS_DTYPES[dtype.str[1:]]
        header[entry.name] = {
            "dtype": code,
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header["__metadata__"] = metadata
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as stream:
        stream.write(struct.pack("<Q", len(encoded)))
        stream.write(encoded)
        for entry in entries:
            little = np.dtype(entry.dtype).newbyteorder("<")
            for block in entry.blocks():
                stream.write(np.ascontiguousarray(block, dtype=little).tobytes())
