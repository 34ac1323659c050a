"""Words -> subword tokens: encode texts with character offsets and find each word's tokens.

A word is the character span ``[start, end)`` in its text (``probe.data.conllu``). Its
tokens are those whose character range overlaps the span. Offsets come from a fast Hugging
Face tokenizer's ``offset_mapping`` or, on the tiktoken GPT-2 path, from the token bytes
(``decode_with_offsets``: each token starts where its first byte's character starts and ends
where the next token starts). A token may cover two words (GPT-2 reads ``don't`` as
``don`` + ``'t``, UD as ``do`` + ``n't``): it then belongs to both. Special tokens have empty
ranges and belong to no word. A word with no token (cut away by ``max_length``) is
*unaligned*: it gets the span (-1, -1), is counted, and never silently dropped.

Word pools over a word's tokens: ``first``, ``last`` (the natural choice for a causal model:
only the last subword has seen the whole word) and ``mean``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import WORD_POOLS

UNITS = ("word", "token")


@dataclass(frozen=True)
class EncodedWords:
    """Token ids per text, each word's token span [first, stop) (-1, -1: unaligned)."""

    token_ids: list[list[int]]
    word_tokens: list[np.ndarray]  # int64 [n_words, 2] per text
    truncated: int

    @property
    def unaligned(self) -> int:
        return int(sum((spans[:, 0] < 0).sum() for spans in self.word_tokens))


def default_word_pool(causal: bool) -> str:
    """``last`` for causal models (only it has seen the whole word), ``first`` otherwise
    (the usual choice for encoders, whose first subword sees both sides)."""
    return "last" if causal else "first"


def check_word_pool(pool: str) -> str:
    if pool not in WORD_POOLS:
        raise ProbeError(f"unknown --word-pool '{pool}'; choose {', '.join(WORD_POOLS)}")
    return pool


def encode_with_offsets(tokenizer, texts: Sequence[str], max_length: int):
    """(token ids per text, int64 [n_tokens, 2] character ranges per text, texts cut)."""
    from probe.features.models.tokenize import HFTokenizer, TiktokenGPT2, gpt2_encoding

    if isinstance(tokenizer, TiktokenGPT2):
        encoding = gpt2_encoding()
        ids, ranges, truncated = [], [], 0
        for text, row in zip(texts, encoding.encode_ordinary_batch(list(texts)), strict=True):
            truncated += len(row) > max_length
            row = row[:max_length]
            ids.append(list(row))
            ranges.append(_byte_token_ranges(text, encoding.decode_tokens_bytes(row)))
        return ids, ranges, truncated
    if isinstance(tokenizer, HFTokenizer):
        tok = tokenizer.tokenizer
        if not getattr(tok, "is_fast", False):
            raise ProbeError(
                f"word-level extraction needs a fast tokenizer (character offsets); "
                f"{tokenizer.name} is a slow one"
            )
        room = max(max_length - tok.num_special_tokens_to_add(pair=False), 1)
        bare = tok(list(texts), add_special_tokens=False)["input_ids"]
        truncated = sum(len(row) > room for row in bare)
        encoded = tok(
            list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True
        )
        ranges = [np.asarray(o, np.int64).reshape(-1, 2) for o in encoded["offset_mapping"]]
        return [list(r) for r in encoded["input_ids"]], ranges, truncated
    raise ProbeError(f"tokenizer {getattr(tokenizer, 'name', tokenizer)!r} gives no offsets")


def _byte_token_ranges(text: str, token_bytes: list[bytes]) -> np.ndarray:
    """int64 [n, 2] character ranges of byte-level tokens: a token covers every character
    one of its bytes belongs to (a character split across two tokens is in both)."""
    sizes = np.fromiter((len(ch.encode("utf-8")) for ch in text), np.int64, len(text))
    char_of_byte = np.repeat(np.arange(len(text), dtype=np.int64), sizes)
    ends = np.cumsum([len(b) for b in token_bytes], dtype=np.int64)
    starts = ends - [len(b) for b in token_bytes]
    if not len(ends):
        return np.zeros((0, 2), np.int64)
    first = char_of_byte[np.minimum(starts, len(char_of_byte) - 1)]
    last = char_of_byte[np.maximum(ends - 1, 0)] + 1
    empty = ends == starts
    first[empty], last[empty] = 0, 0
    return np.stack([first, last], axis=1)


def align_words(spans, token_ranges: np.ndarray) -> np.ndarray:
    """int64 [n_words, 2]: each word's token span [first, stop), or (-1, -1) when no token
    overlaps it. ``spans`` are the words' character ranges, ``token_ranges`` the tokens'."""
    words = np.asarray(spans, np.int64).reshape(-1, 2)
    out = np.full((len(words), 2), -1, np.int64)
    if not len(token_ranges) or not len(words):
        return out
    starts, ends = token_ranges[:, 0], token_ranges[:, 1]
    real = ends > starts  # special tokens have empty ranges
    overlap = (starts[None, :] < words[:, 1:2]) & (ends[None, :] > words[:, 0:1]) & real[None, :]
    has = overlap.any(axis=1)
    out[has, 0] = overlap[has].argmax(axis=1)
    out[has, 1] = overlap.shape[1] - overlap[has][:, ::-1].argmax(axis=1)
    return out


def encode_words(tokenizer, texts, spans, max_length: int, unit: str = "word") -> EncodedWords:
    """Encode ``texts`` and align their words (``unit='word'``) or make every token a unit
    (``unit='token'``: ``spans`` is ignored)."""
    ids, ranges, truncated = encode_with_offsets(tokenizer, texts, max_length)
    if unit == "token":
        word_tokens = [np.stack([np.arange(len(r)), np.arange(1, len(r) + 1)], 1) for r in ids]
        return EncodedWords(ids, [np.asarray(w, np.int64) for w in word_tokens], truncated)
    return EncodedWords(
        ids, [align_words(s, r) for s, r in zip(spans, ranges, strict=True)], truncated
    )


def pool_words(hidden_by_layer: dict, layers, word_tokens: list[np.ndarray], pool: str):
    """float16 [n_layers, n_units, D] of every unit of a batch (rows in order, units in
    order); unaligned words are zeros.

    ``hidden_by_layer`` maps layer -> (B, T, D); ``word_tokens[b]`` is row b's [n, 2] spans.
    """
    import torch

    stacked = torch.stack([hidden_by_layer[layer] for layer in layers])  # (L, B, T, D)
    n_layers, batch, width, dim = stacked.shape
    flat = stacked.reshape(n_layers, batch * width, dim)  # (L, B*T, D)
    spans = np.concatenate(word_tokens) if word_tokens else np.zeros((0, 2), np.int64)
    rows = np.repeat(np.arange(len(word_tokens)), [len(w) for w in word_tokens])
    aligned = spans[:, 0] >= 0
    device = flat.device
    if pool in ("first", "last"):
        position = np.where(aligned, spans[:, 0] if pool == "first" else spans[:, 1] - 1, 0)
        index = torch.as_tensor(rows * width + position, device=device)
        out = flat[:, index].to(torch.float32)  # (L, W, D)
    else:
        lengths = np.where(aligned, spans[:, 1] - spans[:, 0], 0)
        unit = np.repeat(np.arange(len(spans)), lengths)
        starts = np.repeat(np.where(aligned, spans[:, 0], 0), lengths)
        offsets = np.arange(len(unit)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        token = rows[unit] * width + starts + offsets
        out = torch.zeros((n_layers, len(spans), dim), dtype=torch.float32, device=device)
        out.index_add_(
            1,
            torch.as_tensor(unit, device=device),
            flat[:, torch.as_tensor(token, device=device)].to(torch.float32),
        )
        out /= torch.as_tensor(np.maximum(lengths, 1), dtype=torch.float32, device=device)[
            None, :, None
        ]
    out[:, torch.as_tensor(~aligned, device=device)] = 0.0
    return out.to(torch.float16).cpu().numpy()
