"""GPT-2 tokenization from the shipped BPE files equals Hugging Face's, with no network."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import SMS_CSV, VARIED_TEXTS
from probe.features.models.tokenize import GPT2_BPE_DIR, TiktokenGPT2

EDGE_TEXTS = VARIED_TEXTS + [
    "",  # empty
    "   ",  # whitespace only: empty after strip
    "\n\n\n",
    " ",
    "trailing space ",
    "    four leading spaces",
    "mixed\r\nline\rendings",
    "🤖" * 5,
    "Ünïcödé ÀÉÎÕÜ ß ø å æ",
    "中文 한국어 العربية עברית हिन्दी",
    "http://example.com/path?query=1&b=2#frag",
    "don't won't it's I'm you're they've",
    "\u200b zero width \u00a0 nbsp",
]


@pytest.fixture(scope="module")
def hf_gpt2():
    from transformers import GPT2TokenizerFast

    vocab = json.loads((GPT2_BPE_DIR / "encoder.json").read_text(encoding="utf-8"))
    lines = (GPT2_BPE_DIR / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
    merges = [tuple(line.split()) for line in lines if line]
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


def test_tiktoken_equals_hf_on_a_varied_corpus(hf_gpt2):
    texts = EDGE_TEXTS + pd.read_csv(SMS_CSV).text.head(500).tolist()
    ours = TiktokenGPT2().encode(texts, max_length=10**6)
    assert ours.truncated == 0
    theirs = hf_gpt2(texts, add_special_tokens=False)["input_ids"]
    for text, a, b in zip(texts, ours.token_ids, theirs, strict=True):
        assert a == b, text
    assert sum(map(len, ours.token_ids)) > 10_000  # the comparison covered real volume


def test_known_ids_and_roundtrip():
    from probe.features.models.tokenize import gpt2_encoding

    assert TiktokenGPT2().encode(["Hello world"], 10).token_ids == [[15496, 995]]
    for text in EDGE_TEXTS:
        assert gpt2_encoding().decode(gpt2_encoding().encode_ordinary(text)) == text


def test_truncation_is_counted_not_silent():
    encoded = TiktokenGPT2().encode(["one two three four five", "one"], max_length=3)
    assert encoded.truncated == 1
    assert [len(ids) for ids in encoded.token_ids] == [3, 1]


def test_special_token_text_stays_ordinary_text():
    ids = TiktokenGPT2().encode(["a <|endoftext|> b"], 100).token_ids[0]
    assert 50256 not in ids


def test_no_network_is_needed(monkeypatch):
    """The encoding is built from package files: a blocked socket changes nothing."""
    import socket

    from probe.features.models.tokenize import gpt2_encoding

    gpt2_encoding.cache_clear()

    def refuse(*args, **kwargs):
        raise OSError("network is disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert TiktokenGPT2().encode(["offline"], 10).token_ids[0] == gpt2_encoding().encode("offline")
