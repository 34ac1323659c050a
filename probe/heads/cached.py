"""Labelled rows of cache files: what a head fits and is scored on, and how a file is opened.

Cut from ``probe.heads.rows`` (which turns what the user hands over into these rows) because
research, fine-tuning and the tests build and read rows without preparing any: they need the
types and the memoised opener, not the input handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probe.errors import ProbeError


@dataclass
class CachedSplit:
    """Rows of one or more cache files and their labels: what a head fits or is scored on."""

    name: str
    parts: list[tuple[str, np.ndarray | None]]  # (cache file, rows; None = all, in order)
    labels: np.ndarray  # str (n,) classes; float (n, T) numbers; int8 (n, L) label sets
    groups: np.ndarray | None = None  # int64 (n,): rows no split may part; None: one each

    def __len__(self) -> int:
        return len(self.labels)

    def group_ids(self) -> np.ndarray | None:
        """The groups every fold and resample of these rows keeps whole (equal texts,
        ``--group-col``), or None when each row is its own (row-wise draws, as always)."""
        from probe.data.splits import has_shared_groups

        return self.groups if has_shared_groups(self.groups) else None

    def features(self, layer: int, pool: str, read: dict | None = None) -> np.ndarray:
        """float32 (n, D), the fp16 cache values widened. ``read`` (``file_layer``), shared by
        the splits of one file split here, reads that file's layer once, not per split."""
        blocks = []
        for path, rows in self.parts:
            layer_features = file_layer(path, layer, pool, read)  # (N_file, D)
            blocks.append(layer_features if rows is None else layer_features[rows])
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def text_sha1(self) -> np.ndarray:
        """uint8 (n, 20): each row's text identity (equal texts, equal rows; control tasks)."""
        blocks = []
        for path, rows in self.parts:
            keys = np.asarray(open_cached(path).text_sha1)
            blocks.append(keys if rows is None else keys[rows])
        return np.concatenate(blocks)

    def take(self, positions: np.ndarray, name: str) -> CachedSplit:
        """The sub-split at ``positions`` (indices into this split's rows), in their order."""
        positions = np.sort(np.asarray(positions, dtype=np.int64))
        parts, offset = [], 0
        for path, rows in self.parts:
            size = open_cached(path).n if rows is None else len(rows)
            mine = positions[(positions >= offset) & (positions < offset + size)] - offset
            if len(mine):
                parts.append((path, mine if rows is None else rows[mine]))
            offset += size
        groups = None if self.groups is None else self.groups[positions]
        return CachedSplit(name, parts, self.labels[positions], groups)


@dataclass
class CachedData:
    """Train (and optional val, test) rows, all from caches of one model and settings."""

    train: CachedSplit
    val: CachedSplit | None
    test: CachedSplit | None
    model: str  # spec for load_backbone, recorded in heads
    model_fingerprint: str
    max_length: int
    n_layers_model: int
    layers: list[int]  # stored in every cache used
    cache_keys: dict[str, str]  # split -> cache key (several files: joined with '+')
    sources: dict[str, str] = field(default_factory=dict)  # split -> where it came from
    text_format: dict = field(default_factory=dict)  # --prompt/--chat-template, where used
    grouping: dict = field(default_factory=dict)  # what the groups were (results record it)
    target: str = "classification"  # or regression, multi-label (``probe.data.targets``)
    target_names: list[str] | None = None  # regression columns, multi-label label names

    def splits(self) -> dict[str, CachedSplit]:
        return {s.name: s for s in (self.train, self.val, self.test) if s is not None}

    def layer(self, spec: int | str) -> int:
        """``11``, ``-1`` -> a stored model layer, or a one-line error listing them."""
        from probe.features.layers import resolve_layers

        (layer,) = resolve_layers(str(spec), self.n_layers_model)
        if layer not in self.layers:
            stored = ", ".join(map(str, self.layers))
            raise ProbeError(f"layer {spec} is not in the cache; stored layers: {stored}")
        return layer


OPEN_CACHES: dict = {}


def open_cached(path: str):
    """open_cache, memoised per process (a sweep reads each file once per layer x pool)."""
    from probe.features.store.caches import open_cache

    stat = Path(path).stat()
    memo_key = (str(path), stat.st_mtime_ns, stat.st_size)
    if memo_key not in OPEN_CACHES:
        OPEN_CACHES[memo_key] = open_cache(path)
    return OPEN_CACHES[memo_key]


def file_layer(path: str, layer: int, pool: str, read: dict | None = None) -> np.ndarray:
    """float32 (N_file, D) of one stored layer and pool; kept in ``read`` (path -> array)
    when given, so the splits of a row share one read of the file (0.4 s at 31k rows)."""
    if read is not None and path in read:
        return read[path]
    features = open_cached(path).features(layer, pool)
    if read is not None:
        read[path] = features
    return features


def is_cache_file(source: str | None) -> bool:
    return source is not None and Path(source).suffix.lower() in (".h5", ".hdf5")


def extraction_settings(cache, *keys: str) -> tuple:
    """What the caches of one head's splits must share: the model, tokenizer and max length
    they were extracted with, plus ``keys`` of their meta (the dtype, the word pool)."""
    return tuple(
        cache.meta.get(key) for key in ("model_fingerprint", "tokenizer", "max_length", *keys)
    )


def shared_layers(caches) -> list[int]:
    """The layers every one of ``caches`` stores: the ones a head on all its splits can use."""
    return sorted(set.intersection(*(set(cache.layers) for cache in caches)))


def check_cached_site(text_format: dict, site: str | None) -> None:
    """A one-line error when the rows were read at another site than ``--site`` asks (None:
    any site; the rows record theirs, and heads fitted on them too)."""
    held = text_format.get("site", "block")
    if site is not None and held != site:
        raise ProbeError(f"the cache holds site '{held}', not --site {site}; extract at {site}")
