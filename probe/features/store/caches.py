"""The feature store: rows per text (``rowstore``), datasets as views (``views``), reading.

Layout of a view file (one per dataset and setting; the files fit/sweep/predict read)::

    /last      float16 [n_layers_stored, N, D]   chunk (1, rows, D): one layer reads contiguously
    /mean      float16 [n_layers_stored, N, D]
    /layers    int64   [n_layers_stored]         model layers stored, in order
    /n_tokens  int32   [N]                       tokens after truncation
    /text_sha1 uint8   [N, 20]                   identity of each example (joins new label sets)
    /labels    int64   [N] (optional)            codes; names in attrs["label_names"]
    /ids       str     [N] (optional)            the data's ``id`` column
    attrs: key, setting, model, model_fingerprint, tokenizer, max_length, truncation_side,
           truncated, pools, compute_dtype, dtype (of the stored values: float16),
           labels_source, probe/torch/transformers versions (not key parts),
           dataset_fingerprint, computed_rows, reused_rows, complete

Store folder (``probe.files.cache_root``: ``$PROBE_CACHE``, a project's, else the user cache)::

    README.md                         its layout, what may be deleted (written on first use)
    features/<view key>.h5            views; ``<view>.h5.partial/`` while one is being made
    rows/<setting key>/               shards + index (see ``probe.features.store.rowstore``)

Crash safety. Rows are committed as immutable shards (temp, fsync, ``os.replace``, then the
index under a lock), so a killed run keeps every committed block and a re-run computes only
the rest. A view is written whole under a temporary name and moved into place; until then a
``<view>.h5.partial/`` folder says a run is under way (``open_cache`` names it, ``probe
cache info`` counts the rows already stored). A reader sees no file or a complete one.

Row store API for other engines (e.g. the Ray driver), in ``probe.features.store.rowstore``::

    Setting(model_fingerprint, tokenizer, max_length, truncation_side, compute_dtype, pools)
    missing_rows(setting, text_sha1 [N,20] uint8, layers, root=None) -> int64 positions
    layers_to_compute(layers) -> list(range(max(layers) + 1))
    commit_block(setting, text_sha1 [n,20], n_tokens [n], {pool: float16 [k, n, D]}, layers,
                 root=None, *, truncated=None, prefer=False) -> shard path
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES, VIEW_POOLS
from probe.files import cache_root, write_atomic


def features_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "features"


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
            stored = [str(p) for p in attrs.get("pools", [])]  # --position pools too
            pools = tuple(dict.fromkeys(p for p in (*VIEW_POOLS, *stored) if p in handle))
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
            pending = PendingView(path)
            manifest = pending.manifest() or {}
            row = summarize(path, manifest)
            row.update(
                complete=False, progress=f"{pending.stored_rows()}/{manifest.get('n', '?')} rows"
            )
            rows.append(row)
    return rows


class PendingView:
    """``<view>.h5.partial/``: a view being made (its setting, texts and layers), so a
    killed run is reported as incomplete and ``probe cache info`` can count its stored rows."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def manifest(self) -> dict | None:
        try:
            return json.loads((self.folder / "manifest.json").read_text())
        except (OSError, ValueError):
            return None

    def start(self, manifest: dict, text_sha1: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "text_sha1.npy").is_file():
            staging = self.folder / ".text_sha1.tmp.npy"
            np.save(staging, np.ascontiguousarray(text_sha1, dtype=np.uint8))
            staging.replace(self.folder / "text_sha1.npy")
        write_atomic(self.folder / "manifest.json", json.dumps(manifest, sort_keys=True))

    def stored_rows(self) -> int:
        """Texts of this view whose rows (every layer it asks for) are in the store now."""
        from probe.features.store.rowstore import RowStore, Setting

        manifest = self.manifest()
        try:
            hashes = np.load(self.folder / "text_sha1.npy", allow_pickle=False)
            setting = Setting(
                **{**manifest["setting"], "pools": tuple(manifest["setting"]["pools"])}
            )
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        store = RowStore(setting, self.folder.parents[1])
        return len(hashes) - len(store.missing(hashes, manifest.get("layers", [0])))

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def store_report(root: Path | None = None) -> dict:
    """Where the store is and why, its rows, shards, views and bytes (``probe cache ls/info``).

    ``shard_bytes`` are the rows' (the only bytes that cost model time to remake), of which
    ``superseded_bytes`` are copies no lookup reads; ``view_bytes`` are the views', copies of
    rows that ``probe cache gc --views`` removes and the next extract rebuilds from them.
    """
    from probe.features.store.housekeeping import setting_report
    from probe.features.store.rowstore import rows_dir
    from probe.files import store_location

    location = store_location() if root is None else None
    settings = []
    folder = rows_dir(root)
    if folder.is_dir():
        settings = [setting_report(path) for path in sorted(folder.iterdir()) if path.is_dir()]
    views = [row for row in list_caches(root) if row["complete"]]
    return {
        "path": str((root or location.path).resolve()),
        "from": location.source if location else "given",
        "settings": settings,
        "rows": sum(s["rows"] for s in settings),
        "shards": sum(s["shards"] for s in settings),
        "shard_bytes": sum(s["bytes"] for s in settings),
        "superseded_bytes": sum(s["superseded_bytes"] for s in settings),
        "orphans": sum(s["orphans"] for s in settings),
        "views": len(views),
        "view_bytes": sum(Path(row["path"]).stat().st_size for row in views),
    }


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


load_cache = open_cache  # the name the design sketch uses
