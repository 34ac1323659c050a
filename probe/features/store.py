"""The HDF5 feature cache: content-addressed files, crash-safe resume, listing.

Layout of a complete file (one per cache key)::

    /last      float16 [n_layers_stored, N, D]   chunk (1, rows, D): one layer reads contiguously
    /mean      float16 [n_layers_stored, N, D]
    /layers    int64   [n_layers_stored]         model layers stored, in order
    /n_tokens  int32   [N]                       tokens after truncation
    /text_sha1 uint8   [N, 20]                   identity of each example (joins new label sets)
    /labels    int64   [N] (optional)            codes; names in attrs["label_names"]
    /ids       str     [N] (optional)            the data's ``id`` column
    attrs: key, model, model_fingerprint, tokenizer, max_length, truncation_side, truncated,
           pools, dtype, probe/torch/transformers versions, dataset_fingerprint, complete

Crash safety. An HDF5 file written in place can be left unreadable by a SIGKILL, so a run in
progress never writes HDF5: each finished batch is committed as a directory of ``.npy`` files
under ``<final>.partial/``, renamed into place atomically. A killed run resumes by skipping the
committed batches. When all batches are in, the final file is assembled under a temporary
name and moved into place with ``os.replace``: a reader sees no file or a complete one, and
the ``complete`` attribute says so explicitly as well.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES
from probe.files import atomic_path, cache_root, write_atomic

FORMAT_VERSION = 1
ROWS_PER_CHUNK = 4096
ASSEMBLY_BYTES = 1 << 30  # layers are assembled in groups of about this many bytes


def features_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "features"


def cache_key(
    model_fingerprint: str,
    tokenizer: str,
    max_length: int,
    truncation_side: str,
    text_hashes: np.ndarray,
) -> str:
    """Hash of everything that determines the features, labels and layers excepted.

    Labels are left out so a new label set reuses the features; layers are left out so a
    file holding a superset of the requested layers is a hit.
    """
    settings = json.dumps(
        {
            "format": FORMAT_VERSION,
            "model": model_fingerprint,
            "tokenizer": tokenizer,
            "max_length": int(max_length),
            "truncation_side": truncation_side,
            "pools": list(POOL_NAMES),
        },
        sort_keys=True,
    )
    digest = hashlib.blake2b(settings.encode(), digest_size=16)
    digest.update(np.ascontiguousarray(text_hashes, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def dataset_fingerprint(text_hashes: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(text_hashes).tobytes(), digest_size=16).hexdigest()


# --- reading ------------------------------------------------------------------------------


@dataclass
class FeatureCache:
    """Read-only view of a complete cache file."""

    path: Path
    key: str
    layers: list[int]
    pools: tuple[str, ...]
    n: int
    dim: int
    meta: dict
    text_sha1: np.ndarray
    n_tokens: np.ndarray
    labels: list[str] | None
    ids: list[str] | None

    def features(self, layer: int, pool: str) -> np.ndarray:
        """float32 [N, D] for one stored layer and pool."""
        if pool not in self.pools:
            raise ProbeError(f"unknown pool '{pool}'; this cache has {', '.join(self.pools)}")
        if layer not in self.layers:
            raise ProbeError(
                f"layer {layer} is not in {self.path.name}; stored layers: "
                f"{_describe_layers(self.layers)}"
            )
        import h5py

        with h5py.File(self.path, "r") as handle:
            return handle[pool][self.layers.index(layer)].astype(np.float32)


def open_cache(path: str | Path) -> FeatureCache:
    """Open a complete cache file; anything else is a one-line ``ProbeError``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        if Path(f"{path}.partial").is_dir():
            raise ProbeError(f"{path} is incomplete: run the same probe extract command to resume")
        raise ProbeError(f"cache file not found: {path}")
    try:
        with h5py.File(path, "r") as handle:
            attrs = {k: _plain(v) for k, v in handle.attrs.items()}
            if not attrs.get("complete", False):
                raise ProbeError(f"{path} is marked incomplete; re-run probe extract")
            pools = tuple(p for p in POOL_NAMES if p in handle)
            n_layers, n, dim = handle[pools[0]].shape
            labels = None
            if "labels" in handle:
                names = list(attrs.get("label_names", []))
                labels = [names[code] for code in handle["labels"][()]]
            ids = list(handle["ids"].asstr()[()]) if "ids" in handle else None
            return FeatureCache(
                path=path,
                key=str(attrs.get("key", "")),
                layers=[int(x) for x in handle["layers"][()]],
                pools=pools,
                n=int(n),
                dim=int(dim),
                meta=attrs,
                text_sha1=handle["text_sha1"][()],
                n_tokens=handle["n_tokens"][()],
                labels=labels,
                ids=ids,
            )
    except ProbeError:
        raise
    except (OSError, KeyError, IndexError, ValueError) as exc:
        raise ProbeError(f"{path} is not a readable probe cache ({exc})") from None


def read_attrs(path: Path) -> dict | None:
    """The attributes of a cache file, or None when it is not one."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return {k: _plain(v) for k, v in handle.attrs.items()}
    except OSError:
        return None


def list_caches(root: Path | None = None) -> list[dict]:
    """One summary per cache file (and per unfinished run) in the store."""
    folder = features_dir(root)
    if not folder.is_dir():
        return []
    rows = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".h5" and path.is_file():
            attrs = read_attrs(path) or {}
            rows.append(summarize(path, attrs))
        elif path.name.endswith(".partial") and path.is_dir():
            manifest = PartialRun(path).manifest() or {}
            done = len(PartialRun(path).committed_batches())
            row = summarize(path, manifest)
            row.update(complete=False, progress=f"{done}/{manifest.get('n_batches', '?')} batches")
            rows.append(row)
    return rows


def summarize(path: Path, attrs: dict) -> dict:
    size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
    return {
        "path": str(path),
        "model": attrs.get("model"),
        "model_fingerprint": attrs.get("model_fingerprint"),
        "data": attrs.get("data_source"),
        "n": attrs.get("n"),
        "layers": _describe_layers(list(attrs.get("layers", []))),
        "pools": list(attrs.get("pools", POOL_NAMES)),
        "max_length": attrs.get("max_length"),
        "truncated": attrs.get("truncated"),
        "size_mb": round(size / 1e6, 1),
        "complete": bool(attrs.get("complete", False)),
    }


def _describe_layers(layers: list[int]) -> str:
    layers = [int(x) for x in layers]
    if layers and layers == list(range(layers[0], layers[-1] + 1)) and len(layers) > 2:
        return f"{layers[0]}..{layers[-1]}"
    return ",".join(map(str, layers))


def _plain(value):
    """HDF5 attribute -> JSON-able Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- writing ------------------------------------------------------------------------------


class PartialRun:
    """Batches committed so far by an unfinished extraction, one atomic directory each."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def manifest(self) -> dict | None:
        try:
            return json.loads((self.folder / "manifest.json").read_text())
        except (OSError, ValueError):
            return None

    def start(self, manifest: dict) -> None:
        """Resume when the manifest matches exactly; otherwise start from nothing."""
        if self.manifest() == manifest:
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        write_atomic(self.folder / "manifest.json", json.dumps(manifest, sort_keys=True))

    def committed_batches(self) -> set[int]:
        if not self.folder.is_dir():
            return set()
        return {
            int(p.name.split("-")[1])
            for p in self.folder.iterdir()
            if p.name.startswith("batch-") and p.is_dir()
        }

    def commit(self, batch_index: int, arrays: dict[str, np.ndarray]) -> None:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.folder))
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array)
        os.replace(staging, self.folder / f"batch-{batch_index:06d}")

    def load(self, batch_index: int, name: str, mmap: bool = True) -> np.ndarray:
        path = self.folder / f"batch-{batch_index:06d}" / f"{name}.npy"
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def assemble(
    run: PartialRun,
    final_path: Path,
    n_batches: int,
    n: int,
    dim: int,
    layers: list[int],
    text_sha1: np.ndarray,
    attrs: dict,
    labels: list[str] | None = None,
    ids: list[str] | None = None,
) -> None:
    """Write the committed batches, in the original example order, as one complete file."""
    import h5py

    rows = [run.load(b, "rows", mmap=False) for b in range(n_batches)]
    n_tokens = np.zeros(n, dtype=np.int32)
    for b, batch_rows in enumerate(rows):
        n_tokens[batch_rows] = run.load(b, "n_tokens", mmap=False)
    with atomic_path(final_path, suffix=".h5") as staging:
        with h5py.File(staging, "w") as handle:
            chunk = (1, min(n, ROWS_PER_CHUNK), dim)
            for pool in POOL_NAMES:
                dataset = handle.create_dataset(
                    pool, shape=(len(layers), n, dim), dtype=np.float16, chunks=chunk
                )
                group = max(1, ASSEMBLY_BYTES // max(n * dim * 2, 1))
                for first in range(0, len(layers), group):
                    block = np.empty((min(group, len(layers) - first), n, dim), np.float16)
                    for b, batch_rows in enumerate(rows):
                        block[:, batch_rows] = run.load(b, pool)[first : first + len(block)]
                    dataset[first : first + len(block)] = block
            handle["layers"] = np.asarray(layers, dtype=np.int64)
            handle["n_tokens"] = n_tokens
            handle["text_sha1"] = text_sha1
            if labels is not None:
                names = sorted(set(labels))
                code = {name: i for i, name in enumerate(names)}
                handle["labels"] = np.asarray([code[v] for v in labels], dtype=np.int64)
                handle.attrs["label_names"] = _h5_value(names)
            if ids is not None:
                handle.create_dataset("ids", data=list(ids), dtype=h5py.string_dtype())
            for name, value in attrs.items():
                handle.attrs[name] = _h5_value(value)
            handle.attrs["layers"] = np.asarray(layers, dtype=np.int64)
            handle.attrs["n"] = n
            handle.attrs["complete"] = True
    run.discard()


def _h5_value(value):
    """Lists of strings need h5py's variable-length string type."""
    import h5py

    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return np.asarray([str(v) for v in value], dtype=h5py.string_dtype())
    if isinstance(value, str):
        return str(value)  # str subclasses (torch's TorchVersion) have no HDF5 type
    return value


load_cache = open_cache  # the name the design sketch uses
