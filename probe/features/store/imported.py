"""Features computed elsewhere, as a view: ``probe fit/sweep --features FILE [--labels FILE]``.

FILE is a ``.npy`` array ([N, D]: one layer; [L, N, D]: layers 0..L-1), a ``.npz`` or
``.safetensors`` holding one array, or any export of ``probe cache export`` (Parquet,
safetensors, npz), which brings its layers, pools, ids, text hashes, labels and the model's
record. A bare array has no pool: it is stored as ``last`` (fit's default pool).

The array is written once into a view-shaped HDF5 file in the store, named by a hash of
the file's bytes, and every head, sweep and curve reads it as it reads an extraction: one
code path for the splits, the C search, the measures and the saved head, so a head on an
exported array *is* the head on its view. Values keep their dtype (float16 stays float16;
float32 is not rounded). Labels come from the export or from ``--labels`` (a table with the
label column in the file's row order, or an ``id`` column matched to the file's ids); like
an extraction's, they are data, not part of the view's name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probe.errors import ProbeError, short_reason
from probe.features.store.export import EXPORT_FORMAT, feature_column

BARE_POOL = "last"  # the pool name of an array that has none
SUFFIXES = (".npy", ".npz", ".safetensors", ".parquet")
EXPORT_ROWS = ("meta", "layers", "text_sha1", "id", "label", "n_tokens")  # read whole: small


@dataclass
class Layers:
    """Features [L, N, D] read a layer at a time (``read(index)`` -> (N, D)): a file far
    larger than memory becomes a view in a layer's worth of it."""

    shape: tuple[int, int, int]
    dtype: np.dtype
    read: Callable[[int], np.ndarray]


@dataclass
class ForeignFeatures:
    """A features file read back: its pools' ``Layers``, and what the rows are."""

    arrays: dict[str, Layers]
    layers: list[int]
    text_sha1: np.ndarray | None = None  # uint8 [N, 20]
    ids: list[str] | None = None
    labels: list[str] | None = None
    n_tokens: np.ndarray | None = None
    meta: dict = field(default_factory=dict)  # the exported view's attributes

    @property
    def shape(self) -> tuple[int, int, int]:
        return next(iter(self.arrays.values())).shape


def features_view(source, labels_file=None, label_col="label", text_col="text") -> Path:
    """The store's view of the features file ``source`` (written on first use), labelled
    from ``labels_file`` or from the file itself; returns its path."""
    from probe.features.store.caches import features_dir, read_attrs
    from probe.features.store.views import sync_labels

    path = Path(source)
    if not path.is_file():
        raise ProbeError(f"features file not found: {source}")
    if path.suffix.lower() not in SUFFIXES:
        raise ProbeError(f"{source}: expected a {', '.join(SUFFIXES)} file of features")
    foreign = read_features(path)
    labels, hashes = foreign.labels, foreign.text_sha1
    if labels_file is not None:
        labels, texts = labels_in_order(foreign, labels_file, label_col, text_col)
        given = _text_keys(texts) if texts is not None else None
        if given is not None and hashes is not None and not np.array_equal(given, hashes):
            row = int(np.flatnonzero((given != hashes).any(axis=1))[0])
            raise ProbeError(
                f"{labels_file}: the text of row {row} is not that of {path.name}'s row "
                f"{row}; give the labels in the file's row order, or an id column"
            )
        hashes = given if hashes is None else hashes
    if labels is None:
        raise ProbeError(f"{path.name} holds no labels; give --labels FILE with a label column")
    key = _file_key(path)
    view = features_dir() / f"{key}.h5"
    attrs = read_attrs(view) if view.is_file() else None
    if attrs and attrs.get("complete"):
        sync_labels(view, labels, foreign.ids, labels_file or path)
        return view
    if hashes is None:  # rows of unknown text: each its own (no two grouped)
        hashes = _text_keys([f"{key}:{row}" for row in range(foreign.shape[1])])
    try:  # the arrays are read only now, layer by layer: a damaged block fails here
        write_view(view, foreign, path, hashes, labels, labels_file)
    except _unreadable() as error:
        raise ProbeError(f"{path}: not a readable features file ({short_reason(error)})") from None
    return view


def read_features(path: Path) -> ForeignFeatures:
    """Any of the ``SUFFIXES`` as ``ForeignFeatures`` (features not read yet); a bad file is
    one line."""
    readers = {".npy": _read_npy, ".npz": _read_npz, ".safetensors": _read_safetensors}
    try:
        foreign = readers.get(path.suffix.lower(), _read_parquet)(path)
    except ProbeError:
        raise
    except _unreadable() as error:  # numpy, zipfile, safetensors and pyarrow raise their own
        raise ProbeError(f"{path}: not a readable features file ({short_reason(error)})") from None
    for pool, array in foreign.arrays.items():
        if len(array.shape) != 3 or array.dtype.kind != "f":
            raise ProbeError(
                f"{path.name}: '{pool}' is {array.dtype} {list(array.shape)}; expected "
                "floats [N, D] or [layers, N, D]"
            )
    return foreign


def _unreadable() -> tuple:
    """What numpy, zipfile, safetensors and pyarrow raise for a damaged or foreign file."""
    import zipfile

    from pyarrow import ArrowException
    from safetensors import SafetensorError

    return (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        zipfile.BadZipFile,
        SafetensorError,
        ArrowException,
    )


def _bare(array: Layers) -> ForeignFeatures:
    """One array: layers 0..L-1, stored as the ``BARE_POOL``."""
    return ForeignFeatures({BARE_POOL: array}, list(range(array.shape[0])))


def _as_layers(shape, dtype, read) -> Layers:
    """``Layers`` of an array [N, D] (one layer) or [L, N, D]; other shapes stay as they are
    (``read_features`` names them)."""
    shape = tuple(int(x) for x in shape)
    if len(shape) == 2:
        return Layers((1, *shape), np.dtype(dtype), lambda index: read(slice(None)))
    return Layers(shape, np.dtype(dtype), read)


def _read_npy(path: Path) -> ForeignFeatures:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return _bare(_as_layers(array.shape, array.dtype, lambda index: np.asarray(array[index])))


def _read_npz(path: Path) -> ForeignFeatures:
    with np.load(path, allow_pickle=False) as archive:
        names = archive.files
        small = {name: archive[name] for name in EXPORT_ROWS if name in names}
    meta = _export_meta(str(small["meta"]) if "meta" in small else None)
    if meta is None:
        return _only_array(path, names, lambda name: _npz_member(path, name))
    return ForeignFeatures(
        {pool: _npz_member(path, pool) for pool in meta["pools"]},
        [int(x) for x in small["layers"]],
        small["text_sha1"],
        _strings(small["id"]) if "id" in small else None,
        _strings(small["label"]) if "label" in small else None,
        small.get("n_tokens"),
        meta["attrs"],
    )


def _npz_member(path: Path, name: str) -> Layers:
    """A member of an ``.npz`` read a layer at a time: its header, then a seek per layer."""
    import zipfile

    from numpy.lib import format as npy

    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
        version = npy.read_magic(member)
        reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran_order, dtype = reader(member)
        start = member.tell()
    if fortran_order or len(shape) not in (2, 3):  # rare: read whole, once
        with np.load(path, allow_pickle=False) as archive:
            whole = archive[name]
        return _as_layers(whole.shape, whole.dtype, lambda index: whole[index])
    layer_shape = shape[-2:]
    size = int(np.prod(layer_shape)) * dtype.itemsize

    def read(index):
        offset = 0 if isinstance(index, slice) else index * size
        with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
            member.seek(start + offset)
            return np.frombuffer(member.read(size), dtype=dtype).reshape(layer_shape)

    return _as_layers(shape, dtype, read)


SAFETENSORS_FLOATS = {"F16": np.float16, "F32": np.float32, "F64": np.float64}


def _read_safetensors(path: Path) -> ForeignFeatures:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        names = list(handle.keys())
        metadata = handle.metadata() or {}
        meta = _export_meta(metadata.get("probe"))
        small = {
            name: handle.get_tensor(name)
            for name in ("layers", "text_sha1", "n_tokens")
            if meta is not None and name in names
        }
        shapes = {name: handle.get_slice(name).get_shape() for name in names}
        kinds = {name: handle.get_slice(name).get_dtype() for name in names}

    def tensor(name):
        if kinds[name] not in SAFETENSORS_FLOATS:
            raise ProbeError(f"{path.name}: '{name}' is {kinds[name]}; expected F16, F32, F64")

        def read(index):
            with safe_open(str(path), framework="numpy") as handle:
                return handle.get_slice(name)[index]

        return _as_layers(shapes[name], SAFETENSORS_FLOATS[kinds[name]], read)

    if meta is None:
        return _only_array(path, names, tensor)
    return ForeignFeatures(
        {pool: tensor(pool) for pool in meta["pools"]},
        [int(x) for x in small["layers"]],
        small["text_sha1"],
        json.loads(metadata["id"]) if "id" in metadata else None,
        json.loads(metadata["label"]) if "label" in metadata else None,
        small.get("n_tokens"),
        meta["attrs"],
    )


def _read_parquet(path: Path) -> ForeignFeatures:
    """An export, or any table with ``layer_<L>_<pool>`` list columns of one length."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)
    names = table.schema_arrow.names
    metadata = table.schema_arrow.metadata or {}
    meta = _export_meta((metadata.get(b"probe") or b"").decode() or None) or {}
    found = [re.fullmatch(r"layer_(\d+)_(\w+)", name) for name in names]
    found = [(int(match[1]), match[2]) for match in found if match]
    if not found:
        raise ProbeError(f"{path.name}: no feature columns (named like layer_12_last)")
    layers = sorted({layer for layer, _ in found})
    pools = list(dict.fromkeys(pool for _, pool in found))
    if len(found) != len(layers) * len(pools):
        raise ProbeError(f"{path.name}: every layer needs a column per pool ({', '.join(pools)})")
    first = table.read_row_group(0, columns=[feature_column(*found[0])]) if _n_rows(table) else None
    dim = _list_column(first[0]).shape[1] if first is not None else 0
    value_type = table.schema_arrow.field(feature_column(*found[0])).type.value_type
    arrays = {}
    for pool in pools:

        def read(index, pool=pool):
            name = feature_column(layers[index], pool)
            return _list_column(pq.read_table(path, columns=[name])[name])

        shape = (len(layers), _n_rows(table), dim)
        arrays[pool] = Layers(shape, np.dtype(value_type.to_pandas_dtype()), read)
    wanted = [name for name in ("id", "text_sha1", "label", "n_tokens") if name in names]
    plain = table.read(columns=wanted).to_pydict()
    hashes = None
    if "text_sha1" in plain:
        hashes = np.frombuffer(bytes.fromhex("".join(plain["text_sha1"])), np.uint8)
        hashes = hashes.reshape(-1, 20)
    return ForeignFeatures(
        arrays,
        layers,
        hashes,
        _strings(plain["id"]) if "id" in plain else None,
        _strings(plain["label"]) if "label" in plain else None,
        np.asarray(plain["n_tokens"], np.int32) if "n_tokens" in plain else None,
        meta.get("attrs", {}),
    )


def _n_rows(table) -> int:
    return int(table.metadata.num_rows)


def _list_column(column) -> np.ndarray:
    """A column of lists of one length as [N, D]."""
    values = column.combine_chunks()
    flat = values.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(values), -1)


def _only_array(path: Path, names: list[str], layers_of) -> ForeignFeatures:
    if len(names) != 1:
        raise ProbeError(
            f"{path.name} holds {len(names)} arrays ({', '.join(names[:5])}); expected one, "
            "or an export of probe cache export"
        )
    return _bare(layers_of(names[0]))


def _export_meta(text: str | None) -> dict | None:
    try:
        meta = json.loads(text) if text else None
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        return None
    if meta.get("unit", "text") != "text":
        raise ProbeError(f"a {meta['unit']}-level export; --features reads text rows only")
    return meta


def _strings(values) -> list[str]:
    return [str(v) for v in values]


def _text_keys(texts) -> np.ndarray:
    from probe.data.readers import text_sha1

    return np.frombuffer(b"".join(text_sha1(t) for t in texts), np.uint8).reshape(-1, 20)


# --- labels in the file's row order -----------------------------------------------------------


def labels_in_order(foreign: ForeignFeatures, labels_file, label_col: str, text_col: str):
    """(a label per row of the features file, the texts in that order or None): by ``id``
    where both have ids, else row by row (the counts must agree)."""
    from probe.data.readers import read_table

    frame = read_table(str(labels_file))
    if label_col not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise ProbeError(
            f"{labels_file}: no label column '{label_col}' ({columns}); use --label-col"
        )
    if frame[label_col].isna().any():
        raise ProbeError(f"{labels_file}: {int(frame[label_col].isna().sum())} rows have no label")
    n = foreign.shape[1]
    if "id" in frame.columns and foreign.ids is not None:
        where = {str(v): i for i, v in enumerate(frame["id"])}
        missing = [i for i in foreign.ids if i not in where]
        if missing:
            raise ProbeError(
                f"{len(missing)} of {n} ids of the features file are not in {labels_file} "
                f"(e.g. {missing[0]!r})"
            )
        frame = frame.iloc[[where[i] for i in foreign.ids]]
    elif len(frame) != n:
        raise ProbeError(
            f"{labels_file} has {len(frame)} rows and the features file {n}: give one label "
            "per row, in the file's order (or an id column matching its ids)"
        )
    texts = [str(t) for t in frame[text_col]] if text_col in frame.columns else None
    return [str(v) for v in frame[label_col]], texts


# --- writing the view ---------------------------------------------------------------------


def _file_key(path: Path) -> str:
    """The view's name: a hash of the features file's bytes (the same file, the same view)."""
    digest = hashlib.blake2b(b"probe-foreign-features", digest_size=16)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_view(path: Path, foreign: ForeignFeatures, features, hashes, labels, labels_file):
    """The view layout of ``probe.features.store.caches``, complete or not at all, a layer at
    a time; the export's own attributes (model, tokenizer, prompt) are kept, so heads fitted
    on it record them and ``probe predict`` runs the right backbone."""
    import h5py

    from probe.features.store.views import ROWS_PER_CHUNK, h5_value, write_annotations
    from probe.files import atomic_path

    n_layers, n, dim = foreign.shape
    key, source = path.stem, labels_file or features  # texts, if anywhere: the label file
    if len(labels) != n:
        raise ProbeError(f"{source}: {len(labels)} labels for {n} rows of features")
    dtype = (
        np.float16 if all(a.dtype == np.float16 for a in foreign.arrays.values()) else np.float32
    )
    attrs = {
        "model": f"features:{Path(features).name}",
        "model_fingerprint": f"features:{key}",
        "tokenizer": "",
        "max_length": 0,
        "n_layers_model": max(foreign.layers),
        **{k: v for k, v in foreign.meta.items() if k not in DERIVED_ATTRS},
        "key": key,
        "features_file": str(features),
        "data_source": str(labels_file or foreign.meta.get("data_source", features)),
        "pools": list(foreign.arrays),
        "dtype": np.dtype(dtype).name,
    }
    n_tokens = foreign.n_tokens if foreign.n_tokens is not None else np.zeros(n, np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".h5") as staging, h5py.File(staging, "w") as handle:
        for pool, array in foreign.arrays.items():
            chunk = (1, max(1, min(n, ROWS_PER_CHUNK)), dim)
            node = handle.create_dataset(pool, (n_layers, n, dim), dtype=dtype, chunks=chunk)
            for index in range(n_layers):
                node[index] = np.asarray(array.read(index), dtype=dtype)  # (N, D)
        handle["layers"] = np.asarray(foreign.layers, np.int64)
        handle["n_tokens"] = np.asarray(n_tokens, np.int32)
        handle["text_sha1"] = np.ascontiguousarray(hashes, np.uint8)
        write_annotations(handle, labels, foreign.ids, source)
        for name, value in attrs.items():
            handle.attrs[name] = h5_value(value)
        handle.attrs["layers"] = np.asarray(foreign.layers, np.int64)
        handle.attrs["n"] = n
        handle.attrs["truncated"] = int(foreign.meta.get("truncated", 0))
        handle.attrs["complete"] = True


# what a view derives from its own contents: never copied from an export's attributes
DERIVED_ATTRS = ("key", "complete", "n", "layers", "pools", "dtype", "label_names", "labels_source")
