"""The row store: features of one text under one extraction setting, content-addressed.

A **row** is the pooled features of one text (every pool, some layers) under one
:class:`Setting` (model fingerprint, tokenizer, max length, truncation side, compute dtype,
pools). Versions of probe/torch/transformers are not part of it: an upgrade that does not
change the numbers keeps every row. Rows live under the store's ``rows/<setting.key>/``:

    setting.json           the setting, for humans and ``probe cache info``
    index.json             the index: committed shards in resolution order, each with its
                           row count and layers; rewritten atomically under ``index.lock``
    shard-*.h5             immutable, written once (temp, fsync, ``os.replace``):
                           /text_sha1 uint8 [n, 20], /n_tokens int32 [n], /layers int64 [k],
                           /<pool> float16 [k, n, D] for each pool

A row key is (setting, text sha1); the index maps it to (shard, row) through the shards'
``text_sha1`` columns, read once per process per shard (shards never change). A text may sit
in several shards: a later request for more layers adds a shard with only the layers its
texts lack (``RowStore.plan``), so each (text, layer) is stored once. Two concurrent
writers may both compute a row, and ``commit_block(..., prefer=True)`` (``--force``) puts
its shard first: each (text, layer) resolves to the *earliest* shard in the index holding
it, so what was stored first is never replaced and concurrent writers agree bitwise on
shared rows; the later copies are *superseded*, counted by ``probe cache ls`` and removed
by ``probe cache gc`` (``probe.features.store.housekeeping``).

A writer killed at any point leaves a temporary ``.shard-*`` file (before the rename) or a
shard the index does not name (between the rename and the index update): neither is ever
read, and ``probe cache gc`` removes both once their writer process is gone
(``probe.features.store.housekeeping``).

API for other engines (the Ray driver): ``missing_rows`` says which texts need the backbone,
``layers_to_compute`` which layers to compute for them, ``commit_block`` stores a finished
block. ``probe.features.store.caches``'s docstring lists their signatures.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES
from probe.files import atomic_path, cache_root, ensure_store_readme, write_atomic

FORMAT_VERSION = 2
SHA1_BYTES = 20


@dataclass(frozen=True)
class Setting:
    """Everything that determines a row's numbers; its hash names the rows' folder."""

    model_fingerprint: str
    tokenizer: str
    max_length: int
    truncation_side: str
    compute_dtype: str  # "float32", "float16", "bfloat16": what the forward pass ran in
    pools: tuple[str, ...] = field(default=POOL_NAMES)
    prompt: str | None = None  # --prompt: each text was wrapped in it before tokenization
    chat_template: bool = False  # --chat-template: ...then made the user turn of a chat
    trust_remote_code: bool = False  # the model ran code shipped with it
    site: str = "block"  # --site: which part of a block (probe.features.models.sites)

    @property
    def key(self) -> str:
        canonical = json.dumps({"format": FORMAT_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()

    def as_dict(self) -> dict:
        values = asdict(self)
        values["max_length"] = int(values["max_length"])
        values["pools"] = list(self.pools)
        for name, default in OPTIONAL_DEFAULTS.items():  # absent when unused: older keys hold
            if values[name] == default:
                del values[name]
        return values


OPTIONAL_DEFAULTS = {
    "prompt": None,
    "chat_template": False,
    "trust_remote_code": False,
    "site": "block",
}


def rows_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "rows"


def layers_to_compute(layers: Sequence[int], site: str = "block") -> list[int]:
    """Extract once: a pass up to layer L computes 0..L anyway, so all of them are stored
    (1..L at a site inside the blocks: the embeddings have no sublayers)."""
    return list(range(0 if site == "block" else 1, max(int(x) for x in layers) + 1))


KEY = np.dtype([("prefix", "<u8"), ("middle", "<u8"), ("tail", "<u4")])  # a sha1's 20 bytes


def as_keys(text_sha1: np.ndarray) -> np.ndarray:
    """sha1 rows uint8 [n, 20] -> one 20-byte record each (``KEY``): compared whole, sorted
    by their first 8 bytes as an integer (fast), with no Python object per text."""
    array = np.ascontiguousarray(text_sha1, dtype=np.uint8).reshape(-1, SHA1_BYTES)
    return array.view(KEY).reshape(-1)


@dataclass
class ShardEntry:
    name: str
    n: int
    layers: list[int]


class Located(NamedTuple):
    """Where each text's row of one layer is: ``shard`` indexes ``names`` (-1: missing)."""

    shard: np.ndarray  # int64 [N]
    row: np.ndarray  # int64 [N]
    names: list[str]  # the index's shard names when it was read

    @property
    def lacking(self) -> np.ndarray:
        return self.shard < 0


class RowStore:
    """The rows of one setting: lookups, commits, and reads for views.

    Lookups are vectorised (a sort of the shards' keys and a binary search per text), so
    finding what a 10M-text dataset lacks costs ~20 bytes of memory per stored row rather
    than a Python dict entry per text and layer.
    """

    def __init__(self, setting: Setting, root: Path | None = None):
        self.setting = setting
        self.folder = rows_dir(root) / setting.key
        self._keys: dict[str, np.ndarray] = {}  # shard name -> its keys (shards are immutable)
        self._sorted: dict[tuple, tuple] = {}  # per group of shards, sorted (_sorted_keys)

    # --- the index ------------------------------------------------------------------------

    def entries(self) -> list[ShardEntry]:
        """Committed shards in resolution order (earliest first)."""
        try:
            raw = json.loads((self.folder / "index.json").read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ProbeError(
                f"the row index {self.folder}/index.json is unreadable ({exc})"
            ) from None
        return [
            ShardEntry(e["name"], int(e["n"]), [int(x) for x in e["layers"]]) for e in raw["shards"]
        ]

    def shard_keys(self, name: str) -> np.ndarray:
        if name not in self._keys:
            import h5py

            with h5py.File(self.folder / name, "r") as handle:
                self._keys[name] = as_keys(handle["text_sha1"][()]).copy()
        return self._keys[name]

    def _lookup(self, text_sha1: np.ndarray) -> tuple[list[str], list[tuple]]:
        """Shard names, and per group of shards holding the same layers: (layers, earliest
        shard index per text or -1, its row)."""
        query = as_keys(text_sha1)
        entries = self.entries()
        groups: dict[tuple, list[int]] = {}
        for index, entry in enumerate(entries):
            groups.setdefault(tuple(entry.layers), []).append(index)
        found = []
        for layers, members in groups.items():
            shard, row = self._search(query, [entries[i].name for i in members], members)
            found.append((set(layers), shard, row))
        return [e.name for e in entries], found

    def _sorted_keys(self, names: list[str], indices: list[int]) -> tuple:
        """The keys of these shards, with shard index and row, sorted by prefix then shard:
        built once per set of shards (a view's lookups ask several times per extract)."""
        cache_key = tuple(zip(indices, names, strict=True))
        if cache_key not in self._sorted:
            keys = [self.shard_keys(name) for name in names]
            stored = np.concatenate(keys) if keys else np.empty(0, KEY)
            shard_of = np.repeat(np.asarray(indices, np.int64), [len(k) for k in keys])
            row_of = np.concatenate([np.arange(len(k), dtype=np.int64) for k in keys] or [[]])
            order = np.lexsort((shard_of, stored["prefix"]))  # by prefix, then earliest shard
            superseded = [k for k in self._sorted if {n for _, n in k} & set(names)]
            for old in superseded:  # the same shards before a commit joined them
                del self._sorted[old]
            sorted_prefix = stored["prefix"][order]
            self._sorted[cache_key] = (
                stored,
                shard_of,
                row_of.astype(np.int64),
                order,
                sorted_prefix,
            )
        return self._sorted[cache_key]

    def _search(self, query: np.ndarray, names: list[str], indices: list[int]):
        """For each query key: the smallest shard index among ``names`` holding it (-1 if
        none) and its row there."""
        shard = np.full(len(query), -1, np.int64)
        row = np.zeros(len(query), np.int64)
        stored, shard_of, row_of, order, prefix = self._sorted_keys(names, indices)
        if not len(stored) or not len(query):
            return shard, row
        at = np.searchsorted(prefix, query["prefix"])
        inside = at < len(order)
        candidate = order[np.minimum(at, len(order) - 1)]
        hit = inside & (stored[candidate] == query)
        # Two different texts sharing their first 8 bytes (p ~ 1e-8 at 10M texts) sort by
        # shard, not by key: look through that run of equal prefixes for the exact key.
        same_prefix = prefix[np.minimum(at, len(order) - 1)] == query["prefix"]
        for position in np.flatnonzero(inside & ~hit & same_prefix):
            for j in range(at[position], len(order)):
                if prefix[j] != query["prefix"][position]:
                    break
                if stored[order[j]] == query[position]:
                    hit[position], candidate[position] = True, order[j]
                    break
        shard[hit], row[hit] = shard_of[candidate[hit]], row_of[candidate[hit]]
        return shard, row

    def locate(self, text_sha1: np.ndarray, layers: Sequence[int]) -> dict[int, Located]:
        """{layer: where each text's row is}, by the earliest shard holding that layer."""
        names, found = self._lookup(text_sha1)
        n = len(as_keys(text_sha1))
        located, by_groups = {}, {}  # layers held by the same shard groups share one answer
        for layer in [int(x) for x in layers]:
            groups = tuple(i for i, (held, _, _) in enumerate(found) if layer in held)
            if groups not in by_groups:
                shard, row = np.full(n, -1, np.int64), np.zeros(n, np.int64)
                for _, group_shard, group_row in (found[i] for i in groups):
                    better = (group_shard >= 0) & ((shard < 0) | (group_shard < shard))
                    shard[better], row[better] = group_shard[better], group_row[better]
                by_groups[groups] = Located(shard, row, names)
            located[layer] = by_groups[groups]
        return located

    def missing(self, text_sha1: np.ndarray, layers: Sequence[int]) -> np.ndarray:
        """Positions (ascending) of texts lacking any of ``layers``."""
        lacking = np.zeros(len(as_keys(text_sha1)), dtype=bool)
        for located in self.locate(text_sha1, layers).values():
            lacking |= located.lacking
        return np.flatnonzero(lacking).astype(np.int64)

    def held_layers(self, text_sha1: np.ndarray) -> set[int]:
        """Layers every one of these texts has (the empty set if one has none)."""
        n = len(as_keys(text_sha1))
        if n == 0:
            return set()
        _, found = self._lookup(text_sha1)
        every = set().union(*(group_layers for group_layers, _, _ in found))
        held = set()
        for layer in every:
            has = np.zeros(n, dtype=bool)
            for group_layers, group_shard, _ in found:
                if layer in group_layers:
                    has |= group_shard >= 0
            if has.all():
                held.add(layer)
        return held

    def plan(self, text_sha1: np.ndarray, layers: Sequence[int]) -> list[tuple[np.ndarray, list]]:
        """What a pass must store for these texts: (positions, the layers of 0..max(layers)
        they lack), one group per pattern of stored layers. The pass to layer L computes
        0..L for every text anyway, but a (text, layer) the store holds is never written
        again: texts whose shallow layers are stored get only the deeper ones, beside new
        texts that get all of them."""
        wanted = layers_to_compute(layers, self.setting.site)
        if not len(as_keys(text_sha1)):
            return []
        located = self.locate(text_sha1, wanted)
        lacking = np.stack([located[layer].lacking for layer in wanted], axis=1)  # (N, L)
        patterns, group = np.unique(lacking, axis=0, return_inverse=True)
        group = group.reshape(-1)
        wanted = np.asarray(wanted)
        return [
            (np.flatnonzero(group == index), wanted[row].tolist())
            for index, row in enumerate(patterns)
            if row.any()
        ]

    # --- writing --------------------------------------------------------------------------

    def new_shard_path(self) -> Path:
        """A fresh shard name in this setting's folder (written once, never reused), the
        folder's ``setting.json`` (and a new store's README) written first: what every kind of
        row commits through."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "setting.json").is_file():
            ensure_store_readme(self.folder.parents[1])
            write_atomic(self.folder / "setting.json", json.dumps(self.setting.as_dict(), indent=1))
        unique = f"{time.time_ns()}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self.folder / f"shard-{unique}.h5"

    def register_shard(self, shard: Path, n: int, layers: list[int], prefer: bool) -> Path:
        """Add a committed shard to the index under the lock (first when ``prefer``: a forced
        recompute wins lookups); until then readers do not see it."""
        from filelock import FileLock

        entry = {"name": shard.name, "n": n, "layers": layers}
        with FileLock(str(self.folder / "index.lock")):
            shards = [asdict(e) for e in self.entries()]
            shards = [entry, *shards] if prefer else [*shards, entry]
            write_atomic(self.folder / "index.json", json.dumps({"shards": shards}))
        return shard

    def commit(
        self,
        text_sha1,
        n_tokens,
        pooled: dict,
        layers: Sequence[int],
        *,
        truncated=None,
        prefer: bool = False,
    ) -> Path:
        """Write one immutable shard, then add it to the index under the lock."""
        text_sha1 = np.ascontiguousarray(text_sha1, dtype=np.uint8).reshape(-1, SHA1_BYTES)
        n = len(text_sha1)
        layers = [int(x) for x in layers]
        for pool in self.setting.pools:
            shape = np.shape(pooled[pool])
            if shape[:2] != (len(layers), n):
                raise ValueError(
                    f"pooled['{pool}'] has shape {shape}, expected ({len(layers)}, {n}, D)"
                )
        vectors = {pool: np.asarray(pooled[pool], dtype=np.float16) for pool in self.setting.pools}
        return self.write_shard(text_sha1, n_tokens, layers, truncated, vectors, prefer)

    def write_shard(self, text_sha1, n_tokens, layers, truncated, arrays: dict, prefer) -> Path:
        """One immutable shard: the columns every row has, then ``arrays`` (the pools, or a
        ragged store's units and offsets), written atomically; then its index entry."""
        shard = self.write_shard_file(text_sha1, n_tokens, layers, truncated, arrays)
        return self.register_shard(shard, len(text_sha1), layers, prefer)

    def write_shard_file(self, text_sha1, n_tokens, layers, truncated, arrays: dict) -> Path:
        """``write_shard`` without the index entry (``probe cache gc`` places it itself)."""
        import h5py

        shard = self.new_shard_path()
        with atomic_path(shard, suffix=".h5") as staging:
            with h5py.File(staging, "w") as handle:
                handle["text_sha1"] = text_sha1
                handle["n_tokens"] = np.asarray(n_tokens, dtype=np.int32)
                handle["layers"] = np.asarray(layers, dtype=np.int64)
                if truncated is not None:
                    handle["truncated"] = np.asarray(truncated, dtype=bool)
                for name, array in arrays.items():
                    handle.create_dataset(name, data=array)
                handle.attrs["setting"] = self.setting.key
        return shard

    # --- reading for views ----------------------------------------------------------------

    def n_tokens(self, text_sha1: np.ndarray, layer: int) -> np.ndarray:
        located = self.locate(text_sha1, [layer])[layer]
        return self._gather(located, lambda handle, idx: handle["n_tokens"][()][idx])

    def truncated(self, text_sha1: np.ndarray, layer: int) -> np.ndarray:
        """bool [N]: was each text cut at max_length (shards without the column: n >= max)."""
        located = self.locate(text_sha1, [layer])[layer]

        def take(handle, idx):
            if "truncated" in handle:
                return handle["truncated"][()][idx]
            return handle["n_tokens"][()][idx] >= self.setting.max_length

        return self._gather(located, take)

    def read_layer(self, located: Located, layer: int, pool: str) -> np.ndarray:
        """float16 [N, D] of one layer and pool for the texts ``located`` resolved."""

        def take(handle, idx):
            stored = [int(x) for x in handle["layers"][()]]
            block = handle[pool][stored.index(layer)]  # the shard's whole layer: contiguous
            return block[idx]

        return self._gather(located, take)

    def _gather(self, located: Located, take) -> np.ndarray:
        """``take(shard file, rows)`` for each shard the texts resolve to, put in text order."""
        import h5py

        if located.lacking.any():
            raise ProbeError("the row store lacks some rows of this view; re-run probe extract")
        out = None
        by_shard = np.argsort(located.shard, kind="stable")
        cuts = np.flatnonzero(np.diff(located.shard[by_shard])) + 1
        for positions in np.split(by_shard, cuts) if len(by_shard) else []:
            name = located.names[located.shard[positions[0]]]
            with h5py.File(self.folder / name, "r") as handle:
                values = take(handle, located.row[positions])
            if out is None:
                out = np.empty((len(located.shard), *values.shape[1:]), dtype=values.dtype)
            out[positions] = values
        return out


# --- the API other engines call --------------------------------------------------------------


def missing_rows(
    setting: Setting, text_sha1: np.ndarray, layers: Sequence[int], root: Path | None = None
) -> np.ndarray:
    """int64 positions into ``text_sha1`` [N, 20] of texts lacking any of ``layers``."""
    return RowStore(setting, root).missing(text_sha1, layers)


def commit_block(
    setting: Setting,
    text_sha1: np.ndarray,
    n_tokens: np.ndarray,
    pooled: dict,
    layers: Sequence[int],
    root: Path | None = None,
    *,
    truncated=None,
    prefer: bool = False,
) -> Path:
    """Store a computed block ({pool: float16 [len(layers), n, D]}) as one shard + index entry.

    ``truncated`` (bool [n], optional): which texts were cut at max_length.
    """
    return RowStore(setting, root).commit(
        text_sha1, n_tokens, pooled, layers, truncated=truncated, prefer=prefer
    )
