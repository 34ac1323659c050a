"""Word alignment, word pools and ragged word rows against independent references."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from probe.data.conllu import WordDataset, parse_conllu
from probe.features.models.loading import load_backbone
from probe.features.models.tokenize import gpt2_encoding
from probe.features.store.caches import open_cache, store_report
from probe.features.wordextract import extract_words
from probe.features.words import _byte_token_ranges, align_words, encode_words, pool_words

SENTENCES = [
    "The naïve café served 日本語 food, didn't it?",
    "Short one.",
    "A much longer sentence about nothing in particular that goes on for a while.",
    "Emoji 😀 here",
]


def _dataset(sentences=SENTENCES) -> WordDataset:
    words, spans = [], []
    for text in sentences:
        position, ws, ss = 0, [], []
        for word in text.split(" "):
            ws.append(word)
            ss.append((position, position + len(word)))
            position += len(word) + 1
        words.append(ws)
        spans.append(ss)
    tags = [["A" if i % 2 else "B" for i in range(len(w))] for w in words]
    return WordDataset(list(sentences), words, spans, {"tag": tags}, None, "handmade")


def test_byte_ranges_cover_multibyte_characters():
    # "é" is two bytes: a token ending inside it still covers it, and so does the next
    ranges = _byte_token_ranges("aé b", [b"a\xc3", b"\xa9", b" b"])
    assert ranges.tolist() == [[0, 2], [1, 2], [2, 4]]


def test_align_words_overlap_rule_and_special_tokens():
    tokens = np.array([[0, 0], [0, 3], [3, 5], [5, 9], [0, 0]])  # [CLS] abc de fgh. [SEP]
    spans = [(0, 3), (3, 5), (6, 9), (20, 22)]
    assert align_words(spans, tokens).tolist() == [[1, 2], [2, 3], [3, 4], [-1, -1]]


@pytest.mark.parametrize("fixture_name", ["tiny_gpt2_dir", "tiny_bert_dir"])
def test_each_words_tokens_spell_a_text_covering_it(fixture_name, request):
    """Independent check: decode the tokens aligned to a word; the word is inside them."""
    backbone = load_backbone(str(request.getfixturevalue(fixture_name)))
    data = _dataset()
    encoded = encode_words(backbone.tokenizer, data.texts, data.spans, 256)
    assert encoded.unaligned == 0
    if hasattr(backbone.tokenizer, "tokenizer"):
        decode = backbone.tokenizer.tokenizer.decode
    else:
        decode = gpt2_encoding().decode
    for ids, words, spans in zip(encoded.token_ids, data.words, encoded.word_tokens, strict=True):
        for word, (first, stop) in zip(words, spans, strict=True):
            piece = decode(ids[first:stop]).replace(" ", "").replace("##", "")
            assert word.lower().replace("😀", "") in piece.lower().replace("[unk]", "") or (
                "[UNK]" in decode(ids[first:stop])
            ), (word, piece)


def test_truncated_words_are_counted_not_dropped(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir))
    data = _dataset()
    encoded = encode_words(backbone.tokenizer, data.texts, data.spans, 4)
    assert encoded.truncated == 3
    assert [len(w) for w in encoded.word_tokens] == [len(w) for w in data.words]
    assert encoded.unaligned > 0


@pytest.mark.parametrize("pool", ["first", "last", "mean"])
def test_pool_words_equals_a_loop(pool):
    generator = torch.Generator().manual_seed(0)
    hidden = {layer: torch.randn(2, 6, 4, generator=generator) for layer in (0, 1)}
    spans = [np.array([[0, 2], [2, 3], [-1, -1]]), np.array([[1, 5]])]
    out = pool_words(hidden, [0, 1], spans, pool)
    for layer_index, layer in enumerate((0, 1)):
        unit = 0
        for row, row_spans in enumerate(spans):
            for first, stop in row_spans:
                got = out[layer_index, unit].astype(np.float32)
                if first < 0:
                    expected = np.zeros(4)
                else:
                    tokens = hidden[layer][row, first:stop]
                    expected = {"first": tokens[0], "last": tokens[-1], "mean": tokens.mean(0)}[
                        pool
                    ].numpy()
                np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-3)
                unit += 1


def test_word_rows_equal_the_unpadded_forward_pass(tiny_gpt2_dir):
    """Reference: transformers' own hidden states, one sentence at a time, no padding."""
    backbone = load_backbone(str(tiny_gpt2_dir))
    data = _dataset()
    path = extract_words(backbone, data, "all", word_pool="last", token_budget=40)
    cache = open_cache(path)
    assert cache.n == sum(len(w) for w in data.words) and cache.pools == ("last",)
    encoded = encode_words(backbone.tokenizer, data.texts, data.spans, 256)
    for layer in cache.layers:
        stored, unit = cache.features(layer, "last"), 0
        for ids, spans in zip(encoded.token_ids, encoded.word_tokens, strict=True):
            with torch.inference_mode():
                states = backbone.model(torch.tensor([ids]), output_hidden_states=True)
            hidden = states.hidden_states[layer][0]
            for _, stop in spans:
                np.testing.assert_allclose(
                    stored[unit], hidden[stop - 1].numpy(), atol=5e-3, rtol=5e-3
                )  # fp16 storage
                unit += 1


def test_reuse_resume_and_segmentations(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir))
    data = _dataset()
    first = extract_words(backbone, data.subset([0, 1]), "all", word_pool="mean")
    assert h5py.File(first)["layers"].shape == (4,)
    whole = extract_words(backbone, data, "all", word_pool="mean")  # resumes: 2 of 4 stored
    with h5py.File(whole) as handle:
        assert handle.attrs["computed_rows"] == 2 and handle.attrs["reused_rows"] == 2
        offsets = handle["sentence_offsets"][()]
    assert np.diff(offsets).tolist() == [len(w) for w in data.words]
    np.testing.assert_array_equal(
        open_cache(first).features(2, "mean"), open_cache(whole).features(2, "mean")[: offsets[2]]
    )
    # the same first sentence under another segmentation is another row
    other = WordDataset(
        data.texts[:1],
        [["The", "rest"]],
        [[(0, 3), (4, len(data.texts[0]))]],
        {"tag": [["A", "B"]]},
        None,
        "resegmented",
    )
    again = extract_words(backbone, other, "all", word_pool="mean")
    assert h5py.File(again).attrs["computed_rows"] == 1
    settings = [s for s in store_report()["settings"] if s["unit"] == "word:mean"]
    assert settings[0]["rows"] == 5 and settings[0]["units"] == 2 + sum(map(len, data.words))
    assert settings[0]["bytes_per_unit_layer"] > 32 * 2  # fp16 x D=32, plus the shard overhead


def test_token_unit_stores_every_subword(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir))
    data = _dataset()
    path = extract_words(backbone, data, "1", unit="token")
    encoded = encode_words(backbone.tokenizer, data.texts, data.spans, 256)
    cache = open_cache(path)
    assert cache.pools == ("token",) and cache.n == sum(len(ids) for ids in encoded.token_ids)


def test_conllu_multiword_tokens_align(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir))
    data = parse_conllu(
        "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tdo\tdo\tAUX\tVBP\t_\t0\troot\t_\t_\n"
        "2\tn't\tnot\tPART\tRB\t_\t1\tadvmod\t_\t_\n"
    )
    encoded = encode_words(backbone.tokenizer, data.texts, data.spans, 64)
    # GPT-2 reads "don't" as "don" + "'t": "do" is in "don", "n't" spans both tokens
    assert encoded.word_tokens[0].tolist() == [[0, 1], [0, 2]]


def test_small_shards_give_the_same_view(tiny_gpt2_dir, monkeypatch):
    """Shards cut every few word vectors (memory flat in the sentence count) change nothing."""
    import probe.features.wordextract as wordextract

    backbone = load_backbone(str(tiny_gpt2_dir))
    data = _dataset()
    whole = open_cache(extract_words(backbone, data, "all", word_pool="first")).features(3, "first")
    monkeypatch.setattr(wordextract, "SHARD_UNITS", 5)
    monkeypatch.setenv("PROBE_CACHE", str(Path(os.environ["PROBE_CACHE"]) / "small-shards"))
    path = extract_words(backbone, data, "all", word_pool="first", token_budget=20)
    settings = [s for s in store_report()["settings"] if s["unit"] == "word:first"]
    assert settings[0]["shards"] >= 3
    np.testing.assert_allclose(open_cache(path).features(3, "first"), whole, atol=2e-3)


def test_cli_extract_word_and_token_units(tiny_gpt2_dir, tmp_path):
    from click.testing import CliRunner

    from probe.cli import main

    conllu = tmp_path / "two.conllu"
    conllu.write_text(
        "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n\n"
        "1\tGo\tgo\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No\n"
        "2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_\n\n"
    )
    runner = CliRunner()
    words = runner.invoke(
        main,
        [
            "extract",
            "--model",
            str(tiny_gpt2_dir),
            "--data",
            str(conllu),
            "--layers",
            "1",
            "--word-pool",
            "mean",
            "-q",
        ],
    )
    assert words.exit_code == 0, words.output
    view = open_cache(words.output.strip().splitlines()[-1])
    assert view.n == 3 and view.pools == ("mean",) and view.meta["unit"] == "word"
    csv = tmp_path / "t.csv"
    csv.write_text("text\nHello there\n")
    tokens = runner.invoke(
        main,
        [
            "extract",
            "--model",
            str(tiny_gpt2_dir),
            "--data",
            str(csv),
            "--unit",
            "token",
            "--layers",
            "1",
            "-q",
        ],
    )
    assert tokens.exit_code == 0, tokens.output
    assert open_cache(tokens.output.strip().splitlines()[-1]).n == 2  # "Hello", " there"
    refused = runner.invoke(
        main, ["extract", "--model", str(tiny_gpt2_dir), "--data", str(csv), "--unit", "word"]
    )
    assert refused.exit_code == 1 and "needs words" in refused.output
    listing = runner.invoke(main, ["cache", "ls"])
    assert "bytes per unit per layer" in listing.output and "word:mean" in listing.output
