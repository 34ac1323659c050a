"""Shared fixtures: an isolated cache store, and tiny real models built in-process.

The tiny models run the real GPT-2 / BERT code paths of transformers in milliseconds, with
random weights: the same code a user's model runs, nothing mocked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SMS_CSV = REPO / "data" / "sms_spam.csv"

VARIED_TEXTS = [
    "Hello world",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\nand   runs    of spaces",
    "unicode: naïve café, Straße, 日本語のテキスト, Ελληνικά, русский",
    "emoji 😀🎉👍🏽 and a ZWJ family 👨‍👩‍👧",
    "x",
    "a much longer text that goes on and on " * 12,
    "numbers 1234567890 3.14159 -42 1e10 and symbols !@#$%^&*()_+{}|:<>?",
    "'quotes' \"double\" `back` and ellipsis…",
]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own feature store: no test touches ./cache."""
    store = tmp_path / "store"
    monkeypatch.setenv("PROBE_CACHE", str(store))
    return store


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A random 3-block GPT-2 with the real 50257-token vocabulary, saved to disk."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=50257, n_positions=256)
    model = GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A random 2-layer BERT encoder with a WordPiece tokenizer trained on varied text."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    corpus = VARIED_TEXTS + SMS_CSV.read_text(encoding="utf-8").splitlines()[:500]
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus, vocab_size=600, min_frequency=1)
    folder = tmp_path_factory.mktemp("tiny-bert")
    wordpiece.save_model(str(folder))
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256,
    )  # fmt: skip
    BertModel(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture
def sms_subset(tmp_path):
    """The first 40 SMS messages as a CSV: real text, real labels, fast."""
    import pandas as pd

    path = tmp_path / "sms40.csv"
    pd.read_csv(SMS_CSV).head(40).to_csv(path, index=False)
    return path


def probe_env(store: Path) -> dict:
    """Environment for a real ``python -m probe`` subprocess."""
    env = dict(os.environ)
    env["PROBE_CACHE"] = str(store)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


@pytest.fixture
def sms_labelled(tmp_path):
    """90 SMS messages (30 spam, 60 ham, shuffled) with an ``id`` column: enough for a
    stratified split and cross-validation, small enough to extract in a second."""
    import pandas as pd

    frame = pd.read_csv(SMS_CSV)
    frame = pd.concat([frame[frame.label == "spam"].head(30), frame[frame.label == "ham"].head(60)])
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.insert(0, "id", [f"m{i:03d}" for i in range(len(frame))])
    path = tmp_path / "sms90.csv"
    frame.to_csv(path, index=False)
    return path
