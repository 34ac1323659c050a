"""Ragged rows: every word (or subword token) of a text, in the row store.

A word-level row is one sentence under one segmentation: its key is
``probe.data.conllu.segmentation_sha1`` (text + word spans), so the same sentence under two
segmentations is two rows. The unit and word pool are part of the :class:`Setting` (its
``pools`` holds ``("word:last",)``, ``("token",)``...), so they name another rows folder.
Everything else is the sentence-level row store's: the index, the lookups, immutable shards
committed atomically then added to the index under the lock, the earliest shard winning,
orphans collected by ``probe cache gc`` (this class only changes what a shard holds).

Shard layout (ragged: one concatenated array per shard plus per-row offsets)::

    /text_sha1 uint8 [n, 20]    row keys          /n_tokens int32 [n]   tokens after truncation
    /offsets   int64 [n + 1]    row i's units are [offsets[i], offsets[i+1])
    /aligned   bool  [units]    False: a word no token covers (cut by max_length); zeros stored
    /layers    int64 [k]        /units float16 [k, units, D]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import TOKEN_POOL
from probe.features.store.rowstore import SHA1_BYTES, Located, RowStore, Setting

UNITS_NODE = "units"


def unit_pool_name(unit: str, word_pool: str) -> str:
    """The ``Setting.pools`` entry that names ragged rows: ``word:last``, ``token``."""
    return TOKEN_POOL if unit == "token" else f"word:{word_pool}"


def ragged_setting(base: Setting, unit: str, word_pool: str) -> Setting:
    return Setting(
        base.model_fingerprint,
        base.tokenizer,
        base.max_length,
        base.truncation_side,
        base.compute_dtype,
        (unit_pool_name(unit, word_pool),),
    )


def is_ragged(setting: dict | Setting) -> bool:
    pools = setting.pools if isinstance(setting, Setting) else setting.get("pools", [])
    return any(p == TOKEN_POOL or str(p).startswith("word:") for p in pools)


class RaggedRowStore(RowStore):
    """The row store of one ragged setting: per-text blocks of unit vectors."""

    def commit(
        self,
        text_sha1,
        n_tokens,
        units: np.ndarray,
        layers: Sequence[int],
        *,
        n_units,
        aligned,
        truncated=None,
        prefer: bool = False,
    ):
        """One immutable shard of ``units`` float16 [k, sum(n_units), D], then the index."""
        text_sha1 = np.ascontiguousarray(text_sha1, dtype=np.uint8).reshape(-1, SHA1_BYTES)
        offsets = np.concatenate([[0], np.cumsum(np.asarray(n_units, np.int64))])
        layers = [int(x) for x in layers]
        if units.shape[:2] != (len(layers), offsets[-1]) or len(aligned) != offsets[-1]:
            raise ValueError(
                f"units {units.shape} do not match {len(layers)} layers and {offsets[-1]} units"
            )
        ragged = {
            "offsets": offsets,
            "aligned": np.asarray(aligned, dtype=bool),
            UNITS_NODE: np.asarray(units, dtype=np.float16),
        }
        return self.write_shard(text_sha1, n_tokens, layers, truncated, ragged, prefer)

    def n_units(self, text_sha1: np.ndarray, layer: int) -> np.ndarray:
        located = self.locate(text_sha1, [layer])[layer]
        return self._gather(located, lambda h, idx: np.diff(h["offsets"][()])[idx])

    def read_units(self, located: Located, layer: int, with_aligned: bool = False):
        """float16 [sum of the texts' units, D] of one layer, texts in query order (and the
        bool [units] aligned flags with ``with_aligned``)."""
        import h5py

        if located.lacking.any():
            raise ProbeError("the row store lacks some rows of this view; re-run probe extract")
        counts = np.zeros(len(located.shard), np.int64)
        pieces: dict[int, tuple] = {}
        by_shard = np.argsort(located.shard, kind="stable")
        cuts = np.flatnonzero(np.diff(located.shard[by_shard])) + 1
        for positions in np.split(by_shard, cuts) if len(by_shard) else []:
            name = located.names[located.shard[positions[0]]]
            with h5py.File(self.folder / name, "r") as handle:
                offsets = handle["offsets"][()]
                stored = [int(x) for x in handle["layers"][()]]
                block = handle[UNITS_NODE][stored.index(layer)]  # the shard's layer: contiguous
                flags = handle["aligned"][()] if with_aligned else None
            for position in positions:
                row = located.row[position]
                a, b = offsets[row], offsets[row + 1]
                counts[position] = b - a
                pieces[position] = (block[a:b], None if flags is None else flags[a:b])
        starts = np.concatenate([[0], np.cumsum(counts)])
        dim = next(iter(pieces.values()))[0].shape[1] if pieces else 0
        out = np.empty((int(starts[-1]), dim), np.float16)
        aligned = np.empty(int(starts[-1]), bool)
        for position, (values, flags) in pieces.items():
            out[starts[position] : starts[position + 1]] = values
            if flags is not None:
                aligned[starts[position] : starts[position + 1]] = flags
        return (out, aligned) if with_aligned else out
