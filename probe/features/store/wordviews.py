"""A word-level dataset's view of the ragged row store: one HDF5 file, one row per word.

It keeps the sentence-level view's layout (``probe.features.store.caches``), so ``open_cache`` and
every head read it as before, with the word as the row::

    /<pool>            float16 [n_layers, n_words, D]  pool = the word pool (or "token")
    /layers            int64   [n_layers]
    /text_sha1         uint8   [n_words, 20]  sha1 of the word's form: its *type* (control
                                              tasks give equal types equal labels)
    /n_tokens          int32   [n_words]      1 per aligned word, 0 unaligned (rows are words)
    /aligned           bool    [n_words]      False: no token covers the word (cut away)
    /words             str     [n_words]
    /sentence_sha1     uint8   [n_sentences, 20]  row keys (text + segmentation)
    /sentence_offsets  int64   [n_sentences + 1]  sentence s is words [o[s], o[s+1])
    /heads             int32   [n_words]      CoNLL-U HEAD as a word index in its sentence
                                              (-1: the root); only when the data has trees
    /tasks/<task>      int64   [n_words]      label codes; names in the node's attrs["names"]
    attrs: unit, word_pool, n (words), n_sentences, unaligned, tasks, the sentence view's.

A layer is read whole ([n_words, D], one chunk per 4,096 words), never all layers at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from probe.features.store.views import ROWS_PER_CHUNK, h5_value
from probe.files import atomic_path


def word_view_current(path: Path, key: str, layers, tasks: dict) -> bool:
    """Whether the view at ``path`` is complete, of ``key``, holds ``layers`` and ``tasks``."""
    from probe.features.store.caches import read_attrs

    attrs = read_attrs(path) if path.is_file() else None
    if not attrs or attrs.get("key") != key or not attrs.get("complete"):
        return False
    if not set(int(x) for x in layers) <= set(int(x) for x in attrs.get("layers", [])):
        return False
    return read_tasks(path) == {
        name: [v for s in values for v in s] for name, values in tasks.items()
    }


def type_sha1(words) -> np.ndarray:
    """uint8 [n, 20]: each word form's sha1 (the word type)."""
    digests = b"".join(hashlib.sha1(w.encode("utf-8")).digest() for w in words)
    return np.frombuffer(digests, np.uint8).reshape(-1, 20)


def materialise_words(
    path: Path, rows, keys: np.ndarray, layers, attrs: dict, data, unit: str, tasks: dict
) -> np.ndarray:
    """Write the word view of ``keys`` (sentences in order), complete or not at all; return
    the aligned flags (bool [n_words])."""
    import h5py

    layers = [int(x) for x in layers]
    located = rows.locate(keys, layers)
    n_units = rows.n_units(keys, layers[0])
    offsets = np.concatenate([[0], np.cumsum(n_units)]).astype(np.int64)
    n = int(offsets[-1])
    pool = attrs["word_pool"]
    with atomic_path(path, suffix=".h5") as staging:
        with h5py.File(staging, "w") as handle:
            dataset, aligned = None, None
            for index, layer in enumerate(layers):
                if aligned is None:
                    block, aligned = rows.read_units(located[layer], layer, with_aligned=True)
                else:
                    block = rows.read_units(located[layer], layer)  # (n_words, D) float16
                if dataset is None:
                    chunk = (1, max(1, min(n, ROWS_PER_CHUNK)), block.shape[1])
                    dataset = handle.create_dataset(
                        pool, shape=(len(layers), n, block.shape[1]), dtype=np.float16, chunks=chunk
                    )
                dataset[index] = block
            handle["layers"] = np.asarray(layers, dtype=np.int64)
            handle["sentence_sha1"] = np.ascontiguousarray(keys, dtype=np.uint8)
            handle["sentence_offsets"] = offsets
            handle["aligned"] = aligned
            if unit == "word":
                words = [w for sentence in data.words for w in sentence]
                handle["text_sha1"] = type_sha1(words)
                handle.create_dataset("words", data=words, dtype=h5py.string_dtype())
                handle["n_tokens"] = aligned.astype(np.int32)
                if data.heads is not None:
                    handle["heads"] = np.asarray([h for s in data.heads for h in s], np.int32)
                _write_tasks(handle, tasks)
            else:
                handle["text_sha1"] = np.zeros((n, 20), np.uint8)
                handle["n_tokens"] = np.ones(n, np.int32)
            for name, value in attrs.items():
                handle.attrs[name] = h5_value(value)
            handle.attrs["layers"] = np.asarray(layers, dtype=np.int64)
            handle.attrs["n"] = n
            handle.attrs["n_sentences"] = len(keys)
            handle.attrs["unaligned"] = int((~aligned).sum())
            handle.attrs["truncated"] = int(rows.truncated(keys, layers[0]).sum())
            handle.attrs["tasks"] = h5_value(sorted(tasks)) if tasks else "[]"
            handle.attrs["complete"] = True
    return aligned


def _write_tasks(handle, tasks: dict) -> None:
    group = handle.create_group("tasks")
    for name, values in tasks.items():
        flat = [str(v) for sentence in values for v in sentence]
        names = sorted(set(flat))
        code = {label: i for i, label in enumerate(names)}
        node = group.create_dataset(name, data=np.asarray([code[v] for v in flat], np.int64))
        node.attrs["names"] = h5_value(names) if names else "[]"


def read_tasks(path: Path) -> dict[str, list[str]]:
    """{task: one label per word} stored in a word view."""
    import h5py

    out = {}
    with h5py.File(path, "r") as handle:
        for name, node in handle.get("tasks", {}).items():
            names = [
                v.decode() if isinstance(v, bytes) else str(v)
                for v in np.atleast_1d(node.attrs["names"])
            ]
            out[name] = [names[c] for c in node[()]]
    return out


def read_word_layout(path: Path) -> dict:
    """The word view's structure (no features): offsets, aligned, heads, words, attrs."""
    import h5py

    from probe.features.store.caches import _plain

    with h5py.File(path, "r") as handle:
        return {
            "sentence_offsets": handle["sentence_offsets"][()],
            "aligned": handle["aligned"][()],
            "heads": handle["heads"][()] if "heads" in handle else None,
            "words": list(handle["words"].asstr()[()]) if "words" in handle else None,
            "attrs": {k: _plain(v) for k, v in handle.attrs.items()},
        }
