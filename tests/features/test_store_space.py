"""Each (text, layer) is stored once; copies stored twice are counted and reclaimed by gc.

Issue 28: asking for a deeper layer after shallow ones, for a dataset whose texts were
partly stored, used to recompute every layer of every text it lacked anything of, so the
shallow layers of the stored texts were written a second time, and ``probe cache ls``
counted a text once per shard holding it ("592 units" beside "296 rows").
"""

from __future__ import annotations

import socket
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import SMS_CSV
from probe.data.conllu import WordDataset
from probe.data.readers import TextDataset, text_sha1
from probe.features.extract import extract
from probe.features.models.loading import load_backbone
from probe.features.store.caches import open_cache
from probe.features.store.housekeeping import (
    collect_garbage,
    reclaim_superseded,
    setting_report,
    shard_uses,
)
from probe.features.store.rowstore import RowStore, Setting, commit_block
from probe.features.store.views import start_view
from probe.features.store.wordrows import RaggedRowStore, ragged_setting
from probe.features.wordextract import extract_words

SETTING = Setting("fp", "tok", 16, "right", "float32")
DIM = 1024  # so that a shard's bytes are mostly its vectors, as with a real model's


def keys_of(texts):
    return np.frombuffer(b"".join(text_sha1(t) for t in texts), np.uint8).reshape(-1, 20)


def block(n, layers, seed):
    rng = np.random.default_rng(seed)
    return {p: rng.standard_normal((len(layers), n, DIM)).astype(np.float16) for p in SETTING.pools}


def payload_vectors(store: RowStore) -> int:
    """Vectors of every pool the shards hold: what the store spends its bytes on."""
    total = 0
    for entry in store.entries():
        with h5py.File(store.folder / entry.name) as handle:
            for pool in store.setting.pools:
                total += int(np.prod(handle[pool].shape[:2]))
    return total


def everything(store: RowStore, keys, layers):
    """Every value a view could read: both pools of every layer, tokens, truncation."""
    located = store.locate(keys, layers)
    values = [store.read_layer(located[x], x, p) for x in layers for p in store.setting.pools]
    return values + [store.n_tokens(keys, layers[0]), store.truncated(keys, layers[0])]


def test_plan_gives_each_text_the_layers_it_lacks(tmp_path):
    keys = keys_of(["a", "b", "c", "d"])
    commit_block(SETTING, keys[:2], [1, 1], block(2, [0, 1], 0), [0, 1], tmp_path)
    commit_block(SETTING, keys[1:2], [1], block(1, [2], 1), [2], tmp_path)
    store = RowStore(SETTING, tmp_path)
    plan = {tuple(layers): positions.tolist() for positions, layers in store.plan(keys, [3])}
    assert plan == {(0, 1, 2, 3): [2, 3], (2, 3): [0], (3,): [1]}
    assert store.plan(keys[1:2], [2]) == []  # nothing lacking, nothing to compute
    assert store.plan(keys[:0], [2]) == []


def test_a_deeper_layer_for_partly_stored_texts_stores_each_text_and_layer_once(
    tiny_gpt2_dir, tmp_path, monkeypatch
):
    backbone = load_backbone(str(tiny_gpt2_dir))
    texts = pd.read_csv(SMS_CSV).text.drop_duplicates().iloc[:80].tolist()
    extract(backbone, TextDataset(texts[:40], None, "first"), "0:2")  # layers 0, 1 of 40
    mixed = open_cache(extract(backbone, TextDataset(texts, None, "all"), "1,3"))
    store = RowStore(
        Setting(backbone.fingerprint, backbone.tokenizer.name, 256, "right", "float32")
    )
    # the old texts got layers 2 and 3 only, the new ones 0..3: 80 x 4 (text, layer) pairs
    assert sorted(e.layers for e in store.entries()) == [[0, 1], [0, 1, 2, 3], [2, 3]]
    assert payload_vectors(store) == 2 * 80 * 4  # before the fix: 2 x (40 x 2 + 80 x 4)
    report = setting_report(store.folder)
    assert report["rows"] == report["units"] == 80  # each text once, not once per shard
    assert report["unit_layers"] == report["stored_unit_layers"] == 80 * 4
    assert report["superseded_bytes"] == 0
    # and the view equals one made in a fresh store in one pass
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "fresh"))
    fresh = open_cache(extract(backbone, TextDataset(texts, None, "all"), "1,3"))
    for layer in (1, 3):
        for pool in ("last", "mean"):
            np.testing.assert_allclose(
                mixed.features(layer, pool), fresh.features(layer, pool), rtol=2**-9, atol=1e-5
            )


def test_word_rows_too_store_a_deeper_layer_only_for_the_sentences_holding_the_shallow(
    tiny_gpt2_dir,
):
    backbone = load_backbone(str(tiny_gpt2_dir))
    texts = ["The cat sat on the mat .", "A dog barked !", "Birds sing at dawn ."]
    words = [t.split() for t in texts]
    spans = []
    for text, sentence in zip(texts, words, strict=True):
        at, mine = 0, []
        for word in sentence:
            start = text.index(word, at)
            mine.append((start, start + len(word)))
            at = start + len(word)
        spans.append(mine)
    data = WordDataset(texts, words, spans, {"tag": [["x"] * len(w) for w in words]}, None, "w")
    extract_words(backbone, data.subset([0, 1]), "1", word_pool="last")
    extract_words(backbone, data, "3", word_pool="last")
    setting = Setting(backbone.fingerprint, backbone.tokenizer.name, 256, "right", "float32")
    store = RaggedRowStore(ragged_setting(setting, "word", "last"))
    assert sorted(e.layers for e in store.entries()) == [[0, 1], [0, 1, 2, 3], [2, 3]]
    report = setting_report(store.folder)
    n_words = sum(map(len, words))
    assert report["units"] == n_words and report["stored_unit_layers"] == n_words * 4


def superseded_sentence_store(root):
    """Shards A (a, b, c: layers 0, 1), B (b..e: 0..3, so b and c's 0, 1 are copies) and a
    forced C first (e: 0..3, so B's e is a copy throughout)."""
    keys = keys_of(list("abcde"))
    commit_block(SETTING, keys[:3], [1, 2, 3], block(3, [0, 1], 0), [0, 1], root)
    commit_block(SETTING, keys[1:], [2, 3, 4, 5], block(4, [0, 1, 2, 3], 1), [0, 1, 2, 3], root)
    commit_block(SETTING, keys[4:], [5], block(1, [0, 1, 2, 3], 2), [0, 1, 2, 3], root, prefer=True)
    return RowStore(SETTING, root), keys


def test_gc_rewrites_shards_without_superseded_rows_and_every_lookup_reads_the_same(tmp_path):
    store, keys = superseded_sentence_store(tmp_path)
    before = everything(store, keys[:3], [0, 1]) + everything(store, keys[1:], [2, 3])
    report = setting_report(store.folder)
    assert report["rows"] == report["units"] == 5
    # used: A's 3 x 2, B's b and c at 2, 3 and d at 0..3, C's e at 0..3; stored: 6 + 16 + 4
    assert report["unit_layers"] == 6 + 4 + 4 + 4 and report["stored_unit_layers"] == 26
    assert report["superseded_bytes"] > 0
    size = sum(p.stat().st_size for p in store.folder.glob("shard-*.h5"))
    freed = sum(bytes_ for _, bytes_ in reclaim_superseded(store))
    store = RowStore(SETTING, tmp_path)  # a new process: no memory of the old shards
    after = everything(store, keys[:3], [0, 1]) + everything(store, keys[1:], [2, 3])
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)
    assert all(use.live.all() for use in shard_uses(store))  # nothing left unread
    # B became b, c with layers 2, 3 and d with 0..3 (its e went: C holds e)
    assert [e.layers for e in store.entries()] == [[0, 1, 2, 3], [0, 1], [2, 3], [0, 1, 2, 3]]
    assert payload_vectors(store) == 2 * (4 + 6 + 4 + 4)
    report = setting_report(store.folder)
    assert report["unit_layers"] == report["stored_unit_layers"] == 18
    assert report["superseded_bytes"] == 0 and report["orphans"] == 0
    remaining = sum(p.stat().st_size for p in store.folder.glob("shard-*.h5"))
    assert freed == size - remaining > 0


def test_gc_reclaims_superseded_word_rows_unit_by_unit(tmp_path):
    setting = ragged_setting(SETTING, "word", "last")
    store, keys = RaggedRowStore(setting, tmp_path), keys_of(["a b", "c d e f g h", "i j k"])
    rng = np.random.default_rng(0)

    def commit(rows, counts, layers, prefer=False):
        units = rng.standard_normal((len(layers), sum(counts), DIM)).astype(np.float16)
        aligned = rng.random(sum(counts)) > 0.2
        store.commit(keys[rows], [5] * len(rows), units, layers, n_units=counts, aligned=aligned)

    commit([0, 1], [2, 6], [0, 1])
    commit([1, 2], [6, 3], [0, 1, 2])  # the second row's layers 0, 1 are copies

    def read():
        located = store.locate(keys, [0, 1])
        return [store.read_units(located[x], x, with_aligned=True) for x in (0, 1)]

    before, deep = read(), store.read_units(store.locate(keys[1:], [2])[2], 2)
    assert setting_report(store.folder)["units"] == 2 + 6 + 3  # each row's words once
    assert len(reclaim_superseded(store)) == 1
    store = RaggedRowStore(setting, tmp_path)
    for (old, old_flags), (new, new_flags) in zip(before, read(), strict=True):
        np.testing.assert_array_equal(old, new)
        np.testing.assert_array_equal(old_flags, new_flags)
    np.testing.assert_array_equal(deep, store.read_units(store.locate(keys[1:], [2])[2], 2))
    report = setting_report(store.folder)
    assert report["unit_layers"] == report["stored_unit_layers"] == (2 + 6) * 2 + 6 + 3 * 3


def test_gc_leaves_superseded_rows_while_a_view_is_being_made(tmp_path):
    store, keys = superseded_sentence_store(tmp_path)
    pending, _, _ = start_view(tmp_path / "features" / "v.h5", store, "v", [0], "m", "d", keys, 0)
    done = collect_garbage(tmp_path)
    assert done.running and not done.superseded  # this process is making that view
    assert setting_report(store.folder)["superseded_bytes"] > 0
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    manifest = pending.manifest()
    pending.start({**manifest, "pid": int(gone.stdout), "host": socket.gethostname()}, keys)
    done = collect_garbage(tmp_path)  # its writer has exited: a killed run, not a reader
    assert not done.running and len(done.superseded) == 1  # shard B rewritten
    assert setting_report(store.folder)["superseded_bytes"] == 0


@pytest.mark.parametrize("views", [False, True])
def test_gc_removes_views_only_when_asked(tiny_gpt2_dir, isolated_cache, views):
    texts = pd.read_csv(SMS_CSV).text.iloc[:12].tolist()
    view = extract(str(tiny_gpt2_dir), TextDataset(texts, None, "a"), "1")
    done = collect_garbage(views=views)
    assert view.exists() is not views and [p for p, _ in done.views] == ([view] if views else [])
    assert not done.orphans and not done.superseded and (isolated_cache / "rows").is_dir()
