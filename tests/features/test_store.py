"""The row store: rows per text, views, extract once, labels never stale, key stability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import probe.features.models.loading
from conftest import SMS_CSV
from probe.cli import main
from probe.data.readers import TextDataset, read_dataset, text_sha1
from probe.features.extract import extract
from probe.features.models.loading import load_backbone
from probe.features.store.caches import open_cache
from probe.features.store.rowstore import (
    RowStore,
    Setting,
    commit_block,
    layers_to_compute,
    missing_rows,
)


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refuse_models(monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(probe.features.models.loading, "load_backbone", no_model)


def sms_texts(start, stop):
    return pd.read_csv(SMS_CSV).text.iloc[start:stop].tolist()


def hashes_of(texts):
    return np.frombuffer(b"".join(text_sha1(t) for t in texts), np.uint8).reshape(-1, 20)


SETTING = Setting("fp", "tok", 16, "right", "float32")


def block(n, layers, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return {p: rng.standard_normal((len(layers), n, dim)).astype(np.float16) for p in SETTING.pools}


# --- the API other engines call ------------------------------------------------------------


def test_commit_then_missing_and_the_earliest_row_wins(tmp_path):
    keys = hashes_of(["a", "b", "c"])
    assert missing_rows(SETTING, keys, [0, 1], tmp_path).tolist() == [0, 1, 2]
    first = block(2, [0, 1], seed=1)
    commit_block(SETTING, keys[:2], [3, 4], first, [0, 1], tmp_path)
    assert missing_rows(SETTING, keys, [0, 1], tmp_path).tolist() == [2]
    assert missing_rows(SETTING, keys, [2], tmp_path).tolist() == [0, 1, 2]
    # a second writer commits "b" again (other numbers) plus "c": "b" keeps its first row
    commit_block(SETTING, keys[1:], [4, 5], block(2, [0, 1], seed=2), [0, 1], tmp_path)
    store = RowStore(SETTING, tmp_path)
    located = store.locate(keys, [1])
    np.testing.assert_array_equal(store.read_layer(located[1], 1, "last")[:2], first["last"][1])
    assert store.n_tokens(keys, 0).tolist() == [3, 4, 5]
    # --force's commit wins over older copies
    forced = block(1, [1], seed=3)
    commit_block(SETTING, keys[:1], [3], forced, [1], tmp_path, prefer=True)
    located = RowStore(SETTING, tmp_path).locate(keys, [1])
    np.testing.assert_array_equal(store.read_layer(located[1], 1, "mean")[0], forced["mean"][0, 0])


def reference_locate(store: RowStore, keys: np.ndarray, layer: int):
    """The obvious computation: walk the index in order, first shard holding (text, layer)."""
    import h5py

    found = {}
    for index, entry in enumerate(store.entries()):
        if layer not in entry.layers:
            continue
        with h5py.File(store.folder / entry.name) as handle:
            for row, key in enumerate(handle["text_sha1"][()]):
                found.setdefault(key.tobytes(), (index, row))
    return [found.get(key.tobytes(), (-1, 0)) for key in keys]


def test_vectorised_lookup_equals_a_walk_through_the_index(tmp_path):
    """Many shards, repeated texts across shards, three layer sets, a forced shard first."""
    rng = np.random.default_rng(7)
    universe = rng.integers(0, 256, (300, 20), dtype=np.uint8)
    universe[:, :8] = universe[rng.integers(0, 40, 300), :8]  # many shared 8-byte prefixes
    universe = np.unique(universe, axis=0)
    for shard in range(12):
        rows = rng.choice(len(universe), rng.integers(1, 60), replace=False)
        layers = [[0, 1], [2], [0, 1, 2]][shard % 3]
        commit_block(
            SETTING,
            universe[rows],
            np.full(len(rows), 3),
            block(len(rows), layers),
            layers,
            tmp_path,
            prefer=shard == 7,
        )
    store = RowStore(SETTING, tmp_path)
    queries = np.concatenate([universe, rng.integers(0, 256, (50, 20), dtype=np.uint8)])
    queries[-10:, :8] = universe[:10, :8]  # absent texts whose prefix is stored
    located = store.locate(queries, [0, 1, 2])
    for layer in (0, 1, 2):
        expected = reference_locate(store, queries, layer)
        assert (
            list(zip(located[layer].shard.tolist(), located[layer].row.tolist(), strict=True))
            == expected
        )
    lacking = {
        i
        for layer in (0, 1, 2)
        for i, (s, _) in enumerate(reference_locate(store, queries, layer))
        if s < 0
    }
    assert store.missing(queries, [0, 1, 2]).tolist() == sorted(lacking)


def test_held_layers_of_texts_spread_over_shards(tmp_path):
    keys = hashes_of(["a", "b", "c"])
    commit_block(SETTING, keys, [1, 1, 1], block(3, [0, 1]), [0, 1], tmp_path)
    commit_block(SETTING, keys[:2], [1, 1], block(2, [2]), [2], tmp_path)
    store = RowStore(SETTING, tmp_path)
    assert store.held_layers(keys) == {0, 1}
    assert store.held_layers(keys[:2]) == {0, 1, 2}
    assert store.held_layers(hashes_of(["z"])) == set()
    assert store.held_layers(keys[:0]) == set()


def test_commit_rejects_a_block_of_the_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="expected"):
        commit_block(SETTING, hashes_of(["a"]), [1], block(2, [0]), [0], tmp_path)
    assert missing_rows(SETTING, hashes_of(["a"]), [0], tmp_path).tolist() == [0]


def test_setting_key_holds_dtype_and_no_versions():
    assert SETTING.key != Setting("fp", "tok", 16, "right", "bfloat16").key
    assert SETTING.key != Setting("fp", "tok", 17, "right", "float32").key
    assert SETTING.key == Setting("fp", "tok", 16, "right", "float32").key
    assert not any("version" in name for name in SETTING.as_dict())
    assert layers_to_compute([3, 7]) == list(range(8))


# --- extraction through the store ---------------------------------------------------------


def test_a_superset_computes_only_new_texts_and_shared_rows_are_bitwise(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir))
    first = open_cache(extract(backbone, TextDataset(sms_texts(0, 60), None, "a"), "all"))
    second = open_cache(extract(backbone, TextDataset(sms_texts(0, 72), None, "b"), "all"))
    assert first.path != second.path
    distinct_new = len(set(sms_texts(0, 72)) - set(sms_texts(0, 60)))
    assert second.meta["computed_rows"] == distinct_new and second.meta["reused_rows"] == 60
    for layer in first.layers:
        for pool in ("last", "mean"):
            np.testing.assert_array_equal(
                second.features(layer, pool)[:60], first.features(layer, pool)
            )
    np.testing.assert_array_equal(second.n_tokens[:60], first.n_tokens)


def test_more_layers_extend_the_rows_and_keep_the_stored_ones(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir))
    data = TextDataset(sms_texts(0, 30), None, "a")
    low = open_cache(extract(backbone, data, "1"))
    setting = Setting(backbone.fingerprint, backbone.tokenizer.name, 256, "right", "float32")
    store = RowStore(setting)
    assert [e.layers for e in store.entries()] == [[0, 1]]  # the pass computed 0 and 1
    high = open_cache(extract(backbone, data, "3"))
    assert [e.layers for e in store.entries()] == [[0, 1], [2, 3]]  # only the extra layers
    assert high.layers == [1, 3]
    np.testing.assert_array_equal(high.features(1, "last"), low.features(1, "last"))


def test_fit_on_layer_3_then_layer_2_runs_the_backbone_once(
    tiny_gpt2_dir, sms_labelled, monkeypatch, tmp_path
):
    args = ["fit", "--model", tiny_gpt2_dir, "--data", sms_labelled, "--max-length", 48, "-q"]
    first = run_cli(*args, "--layer", 3, "--out", tmp_path / "a.json")
    assert first.exit_code == 0, first.output
    refuse_models(monkeypatch)
    for layer in (2, 0, 1):
        again = run_cli(*args, "--layer", layer, "--out", tmp_path / f"l{layer}.json")
        assert again.exit_code == 0, again.output


def test_compute_dtype_is_part_of_the_key_and_versions_are_not(tiny_gpt2_dir, monkeypatch):
    import torch
    import transformers

    data = TextDataset(sms_texts(0, 12), None, "a")
    path = extract(str(tiny_gpt2_dir), data, "all")
    assert open_cache(path).meta["compute_dtype"] == "float32"
    with monkeypatch.context() as upgrade:  # undone on exit; the isolated store stays
        upgrade.setattr(transformers, "__version__", "99.0.0")
        upgrade.setattr(torch, "__version__", "9.9.9")
        refuse_models(upgrade)
        assert extract(str(tiny_gpt2_dir), data, "all") == path  # an upgrade is still a hit
    backbone = load_backbone(str(tiny_gpt2_dir))
    backbone.model.to(torch.bfloat16)
    other = extract(backbone, data, "all")
    assert other != path and open_cache(other).meta["compute_dtype"] == "bfloat16"
    assert open_cache(other).meta["computed_rows"] == 12  # no fp32 row answered for bf16


# --- labels are data ------------------------------------------------------------------------


@pytest.fixture
def relabelled(sms_labelled, tmp_path):
    frame = pd.read_csv(sms_labelled)
    frame["label"] = frame.label.map({"ham": "legit", "spam": "junk"})
    path = tmp_path / "B.csv"
    frame.to_csv(path, index=False)
    return path


def test_new_labels_update_the_view_and_fit_trains_on_them(
    tiny_gpt2_dir, sms_labelled, relabelled, monkeypatch
):
    a = run_cli("extract", "--model", tiny_gpt2_dir, "--data", sms_labelled, "--layers", 2)
    path = a.output.strip().splitlines()[-1]
    assert set(open_cache(path).labels) == {"ham", "spam"}
    refuse_models(monkeypatch)  # new labels for cached texts never need the backbone
    b = run_cli("extract", "--model", tiny_gpt2_dir, "--data", relabelled, "--layers", 2)
    assert b.exit_code == 0, b.output
    assert b.output.strip().splitlines()[-1] == path
    assert f"labels updated: ham/spam -> junk/legit from {relabelled}" in b.output
    cache = open_cache(path)
    assert set(cache.labels) == {"legit", "junk"} and cache.meta["labels_source"] == str(relabelled)
    expected = pd.read_csv(relabelled).label.tolist()
    assert cache.labels == expected
    fit = run_cli("fit", "--train", path, "--layer", 2, "--json")
    assert fit.exit_code == 0, fit.output
    assert f"labels junk/legit from {relabelled}" in fit.output
    assert "ham" not in fit.output.split("labels", 1)[1]
    unchanged = run_cli("extract", "--model", tiny_gpt2_dir, "--data", relabelled, "--layers", 2)
    assert "labels updated" not in unchanged.output


def test_unlabelled_rerun_keeps_the_labels(tiny_gpt2_dir, sms_labelled):
    path = extract(str(tiny_gpt2_dir), read_dataset(str(sms_labelled)), "1")
    extract(str(tiny_gpt2_dir), read_dataset(str(sms_labelled), label_col=None), "1")
    assert set(open_cache(path).labels) == {"ham", "spam"}
