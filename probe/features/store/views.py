"""A dataset's view of the row store: one HDF5 file in the layout ``probe.features.store.caches``
documents, so ``fit``, ``sweep``, ``predict`` and users' scripts read it as before.

A view is a *copy* of its rows, not an HDF5 virtual dataset over the shards: a fit reads a
layer [N, D] as one contiguous chunk from one file (a virtual dataset gathers it from every
shard through one mapping per run of rows, and breaks when the view is moved, as ``--out``
files are); benchmarks/results/store_views.md has the figures. The cost is that the store
holds the features twice: ``probe cache ls`` shows both, and ``probe cache gc --views``
removes the views (the next extract rebuilds one from its rows without the model).

Labels are data, not features: a view's key leaves them out, and re-extracting the same
texts with another label file rewrites the view's labels (atomically: the whole file is
rebuilt under a temporary name, raw chunks copied by HDF5) and says so.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.features.store.rowstore import RowStore, Setting
from probe.files import atomic_path, ensure_store_readme
from probe.messages import say

ROWS_PER_CHUNK = 4096
LABEL_NODES = ("labels", "ids")


def view_key(setting: Setting, text_sha1: np.ndarray) -> str:
    """The view's name: its setting plus its texts, in order (labels and layers left out)."""
    digest = hashlib.blake2b(setting.key.encode(), digest_size=16)
    digest.update(np.ascontiguousarray(text_sha1, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def cache_key(
    model_fingerprint: str,
    tokenizer: str,
    max_length: int,
    truncation_side: str,
    text_hashes: np.ndarray,
    compute_dtype: str = "float32",
) -> str:
    """A view's key: the row setting (labels and layers excepted) plus the ordered texts.

    Labels are left out so a new label set reuses the features; layers are left out so a
    file holding a superset of the requested layers is a hit.
    """
    setting = Setting(model_fingerprint, tokenizer, int(max_length), truncation_side, compute_dtype)
    return view_key(setting, text_hashes)


def dataset_fingerprint(text_hashes: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(text_hashes).tobytes(), digest_size=16).hexdigest()


# --- starting a view: the set-up sentence and word extraction share -------------------------


def view_file(key: str, out: str | Path | None = None) -> Path:
    """Where the view of ``key`` goes: ``out``, else the store's ``features/<key>.h5``. Its
    folder is checked writable first: a read-only store fails before any model loads."""
    from probe.features.store.caches import features_dir

    path = Path(out) if out else features_dir() / f"{key}.h5"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not out:
            ensure_store_readme(path.parent.parent)
        probe_file = path.parent / f".write-test-{time.time_ns()}"
        probe_file.touch()
        probe_file.unlink()
    except OSError as exc:
        message = f"cache directory {path.parent} is not writable ({exc.strerror})"
        raise ProbeError(message) from None
    return path


def start_view(path: Path, rows: RowStore, key: str, layers, model: str, source, keys, force):
    """Mark the view at ``path`` as being made (``<view>.partial``: a killed run is reported
    incomplete, and ``probe cache info`` counts its stored rows), then find what to compute.

    Returns (the pending view, positions whose rows the store lacks, the distinct ones of
    those: a text that repeats is computed once).
    """
    from probe.features.store.caches import PendingView

    pending = PendingView(Path(f"{path}.partial"))
    manifest = {
        "key": key,
        "layers": layers,
        "n": len(keys),
        "model": model,
        "setting": rows.setting.as_dict(),
        "data_source": str(source),
        "host": socket.gethostname(),  # while this process lives, gc leaves superseded rows
        "pid": os.getpid(),
    }
    pending.start(manifest, keys)
    missing = np.arange(len(keys)) if force else rows.missing(keys, layers)
    return pending, missing, distinct_positions(keys, missing)


def distinct_positions(keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``positions`` without repeated row keys (the first of each): a row is computed once."""
    seen: set[bytes] = set()
    keep = []
    for position in positions.tolist():
        digest = keys[position].tobytes()
        if digest not in seen:
            seen.add(digest)
            keep.append(position)
    return np.asarray(keep, dtype=np.int64)


def materialise(
    path: Path,
    rows: RowStore,
    text_sha1: np.ndarray,
    layers: Sequence[int],
    attrs: dict,
    labels: list[str] | None = None,
    ids: list[str] | None = None,
) -> None:
    """Write the view of ``text_sha1`` (in order) from the store, complete or not at all."""
    import h5py

    layers = [int(x) for x in layers]
    n = len(text_sha1)
    located = rows.locate(text_sha1, layers)
    n_tokens = rows.n_tokens(text_sha1, layers[0])
    truncated = rows.truncated(text_sha1, layers[0])
    with atomic_path(path, suffix=".h5") as staging:
        with h5py.File(staging, "w") as handle:
            for pool in rows.setting.pools:
                dataset = None
                for index, layer in enumerate(layers):
                    block = rows.read_layer(located[layer], layer, pool)  # (N, D) float16
                    if dataset is None:
                        chunk = (1, max(1, min(n, ROWS_PER_CHUNK)), block.shape[1])
                        dataset = handle.create_dataset(
                            pool,
                            shape=(len(layers), n, block.shape[1]),
                            dtype=np.float16,
                            chunks=chunk,
                        )
                    dataset[index] = block
            handle["layers"] = np.asarray(layers, dtype=np.int64)
            handle["n_tokens"] = n_tokens.astype(np.int32)
            handle["text_sha1"] = np.ascontiguousarray(text_sha1, dtype=np.uint8)
            write_annotations(handle, labels, ids, attrs.get("labels_source"))
            for name, value in attrs.items():
                handle.attrs[name] = h5_value(value)
            handle.attrs["truncated"] = int(truncated.sum())
            handle.attrs["layers"] = np.asarray(layers, dtype=np.int64)
            handle.attrs["n"] = n
            handle.attrs["complete"] = True


def write_annotations(handle, labels, ids, source) -> None:
    """Labels (codes + ``label_names``), ids, and where the labels came from."""
    import h5py

    for node in LABEL_NODES:
        if node in handle:
            del handle[node]
    for name in ("label_names", "labels_source"):
        if name in handle.attrs:
            del handle.attrs[name]
    if labels is not None:
        names = sorted(set(labels))
        code = {name: i for i, name in enumerate(names)}
        handle["labels"] = np.asarray([code[v] for v in labels], dtype=np.int64)
        handle.attrs["label_names"] = h5_value(names)
        handle.attrs["labels_source"] = str(source)
    if ids is not None:
        handle.create_dataset("ids", data=list(ids), dtype=h5py.string_dtype())


def read_annotations(path: Path) -> tuple[list[str] | None, list[str] | None]:
    import h5py

    with h5py.File(path, "r") as handle:
        labels = None
        if "labels" in handle:
            names = [
                v.decode() if isinstance(v, bytes) else str(v)
                for v in np.atleast_1d(handle.attrs.get("label_names", []))
            ]
            labels = [names[code] for code in handle["labels"][()]]
        ids = list(handle["ids"].asstr()[()]) if "ids" in handle else None
    return labels, ids


def sync_labels(path: Path, labels, ids, source) -> bool:
    """Give the view ``labels``/``ids`` if they differ from its own; True when rewritten.

    Data without labels leaves the view's labels alone (an unlabelled re-run is no
    correction). The rewrite is atomic: readers see the old labels or the new, never a mix.
    """
    import h5py

    if labels is None:
        return False
    old_labels, old_ids = read_annotations(path)
    if old_labels == list(labels) and (ids is None or old_ids == list(ids)):
        return False
    with atomic_path(path, suffix=".h5") as staging:
        with h5py.File(path, "r") as old, h5py.File(staging, "w") as new:
            for name in old:
                if name not in LABEL_NODES:
                    old.copy(old[name], new, name=name)
            for name, value in old.attrs.items():
                new.attrs[name] = value
            write_annotations(new, list(labels), ids if ids is not None else old_ids, source)
    before = "/".join(sorted(set(old_labels))) if old_labels else "(none)"
    after = "/".join(sorted(set(labels)))
    say(f"labels updated: {before} -> {after} from {source}")
    return True


def h5_value(value):
    """Lists of strings need h5py's variable-length string type."""
    import h5py

    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return np.asarray([str(v) for v in value], dtype=h5py.string_dtype())
    if isinstance(value, str):
        return str(value)  # str subclasses (torch's TorchVersion) have no HDF5 type
    return value
