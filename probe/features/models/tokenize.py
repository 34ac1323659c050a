"""Text -> token ids, with truncation counted rather than silent.

GPT-2-family models use tiktoken's ``gpt2`` encoding built from the BPE files shipped in
``probe/assets/gpt2-bpe`` (sha256-checked against tiktoken's expected hashes), so GPT-2
tokenization never touches the network. Every other model uses its own Hugging Face
tokenizer. Text is always encoded as ordinary text: a literal ``<|endoftext|>`` in the data
is not turned into the special token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Protocol

GPT2_BPE_DIR = resources.files("probe") / "assets" / "gpt2-bpe"
GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
GPT2_EOT_ID = 50256


@dataclass(frozen=True)
class Encoded:
    """Token ids per text (already truncated) and how many texts were cut."""

    token_ids: list[list[int]]
    truncated: int


class TextTokenizer(Protocol):
    name: str
    pad_id: int

    def encode(
        self, texts: Sequence[str], max_length: int, special_tokens: bool = True
    ) -> Encoded: ...


@cache
def gpt2_encoding():
    """tiktoken's ``gpt2`` encoding from the shipped files: no download, ever."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import gpt2

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(GPT2_BPE_DIR / "vocab.bpe"),
        encoder_json_file=str(GPT2_BPE_DIR / "encoder.json"),
        vocab_bpe_hash=GPT2_VOCAB_BPE_SHA256,
        encoder_json_hash=GPT2_ENCODER_JSON_SHA256,
    )
    pattern = gpt2.__globals__["r50k_pat_str"]
    return tiktoken.Encoding(
        name="gpt2",
        explicit_n_vocab=50257,
        pat_str=pattern,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": GPT2_EOT_ID},
    )


class TiktokenGPT2:
    """GPT-2 BPE via tiktoken: ~3-6x faster than the HF tokenizer, identical ids."""

    name = "tiktoken:gpt2"
    pad_id = GPT2_EOT_ID  # any id works: padded positions are masked and never pooled

    def encode(self, texts: Sequence[str], max_length: int, special_tokens: bool = True) -> Encoded:
        ids = gpt2_encoding().encode_ordinary_batch(list(texts))
        truncated = sum(len(row) > max_length for row in ids)
        return Encoded([row[:max_length] for row in ids], truncated)


class HFTokenizer:
    """A Hugging Face tokenizer; special tokens ([CLS] ... [SEP]) survive truncation."""

    def __init__(self, tokenizer, name: str):
        self.tokenizer = tokenizer
        self.name = name
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)

    def encode(self, texts: Sequence[str], max_length: int, special_tokens: bool = True) -> Encoded:
        """``special_tokens`` False: the text already holds them (a chat template's markup)."""
        tok = self.tokenizer
        added = tok.num_special_tokens_to_add(pair=False) if special_tokens else 0
        room = max(max_length - added, 1)
        bare = tok(list(texts), add_special_tokens=False)["input_ids"]
        truncated = sum(len(row) > room for row in bare)
        rows = tok(
            list(texts), truncation=True, max_length=max_length, add_special_tokens=special_tokens
        )["input_ids"]
        return Encoded([list(row) for row in rows], truncated)


def marker_token_ends(tokenizer, texts, token_ids, marker: str, special_tokens=True):
    """int64 [N]: the token holding the last character of the last occurrence of ``marker``
    in each text (-1 where it never occurs, or was cut by truncation), found through the
    tokenizer's character offsets of the very ids the model reads (``token_ids``)."""
    import numpy as np

    from probe.errors import ProbeError

    ends = np.full(len(texts), -1, np.int64)
    for row, (text, ids) in enumerate(zip(texts, token_ids, strict=True)):
        at = text.rfind(marker)
        if at < 0:
            continue
        spans = _token_spans(tokenizer, text, list(ids), special_tokens)
        if spans is None:
            raise ProbeError(f"marker: the tokenizer {tokenizer.name} gives no character offsets")
        char = at + len(marker) - 1
        held = [i for i, (start, end) in enumerate(spans) if start <= char < end]
        ends[row] = held[-1] if held else -1
    return ends


def _token_spans(tokenizer, text: str, ids: list[int], special_tokens: bool):
    """(start, end) characters of each of ``ids`` in ``text`` ((0, 0): a special token);
    None where the tokenizer gives no offsets."""
    if isinstance(tokenizer, TiktokenGPT2):
        full = gpt2_encoding().encode_ordinary(text)
        _, starts = gpt2_encoding().decode_with_offsets(full)
        ends = [*starts[1:], len(text)]
        return list(zip(starts, ends, strict=True))[: len(ids)]
    hf = getattr(tokenizer, "tokenizer", None)
    if hf is None or not getattr(hf, "is_fast", False):
        return None
    encoded = hf(
        text,
        truncation=True,
        max_length=max(len(ids), 1),
        add_special_tokens=special_tokens,
        return_offsets_mapping=True,
    )
    if list(encoded["input_ids"]) != ids:  # another truncation: read the ids given
        return None
    return [tuple(span) for span in encoded["offset_mapping"]]


def is_gpt2_vocab(config) -> bool:
    """True for models that use OpenAI's GPT-2 BPE (GPT-2 and its tiny test variants).

    ``config`` is a transformers config or its ``config.json`` as a dict.
    """
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    return get("model_type") == "gpt2" and get("vocab_size") in (50257, 50304)
