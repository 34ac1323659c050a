"""Serve a word head (``probe fit/sweep --task upos``): tag each word of new texts.

A text is split into words at whitespace (``"some words"`` -> ``some``, ``words``); each word
gets the feature it would get in a word view (same alignment, word pool, layer and fp16
rounding), and the head's label and probabilities.
"""

from __future__ import annotations

import re

import numpy as np

from probe.errors import ProbeError


def is_word_head(meta: dict) -> bool:
    return meta.get("unit") == "word"


def word_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def word_features(backbone, texts: list[str], layer: int, word_pool: str, max_length: int):
    """float32 [total words, D] of every whitespace word of ``texts``, and words per text."""
    import torch

    from probe.features.batching import collate
    from probe.features.forward import hidden_states_by_layer
    from probe.features.words import encode_words, pool_words

    spans = [word_spans(text) for text in texts]
    encoded = encode_words(backbone.tokenizer, texts, spans, max_length)
    device = next(backbone.model.parameters()).device
    blocks = []
    for ids, words in zip(encoded.token_ids, encoded.word_tokens, strict=True):
        input_ids, mask = collate([ids], backbone.tokenizer.pad_id, device)
        with torch.inference_mode():
            hidden = hidden_states_by_layer(backbone.model, input_ids, mask, [layer])
            blocks.append(pool_words(hidden, [layer], [words], word_pool)[0])  # (W, D)
    return np.concatenate(blocks).astype(np.float32), [len(s) for s in spans], encoded


def predict_words(predictor, texts: list[str]) -> list[dict]:
    """One dict per text: its words, each with its label and probabilities."""
    meta = predictor.meta
    if meta.get("task") == "deprel":
        raise ProbeError(
            "an edge head (deprel) needs each word's head word; predict tags "
            "single-word tasks (upos, xpos, ner_tags...)"
        )
    texts = [t for t in texts]
    if any(not t.strip() for t in texts):
        raise ProbeError("a text is empty")
    X, counts, encoded = word_features(
        predictor.backbone, texts, int(meta["layer"]), meta["word_pool"], int(meta["max_length"])
    )
    probabilities = predictor.classifier.predict_proba(X)
    names = predictor.label_names
    aligned = np.concatenate([w[:, 0] >= 0 for w in encoded.word_tokens])
    rows, start = [], 0
    for text, count in zip(texts, counts, strict=True):
        words = [text[a:b] for a, b in word_spans(text)]
        tagged = []
        for i, word in enumerate(words):
            p = probabilities[start + i]
            tagged.append(
                {
                    "word": word,
                    "label": names[int(np.argmax(p))] if aligned[start + i] else None,
                    "probability": float(p.max()) if aligned[start + i] else None,
                }
            )
        rows.append({"text": text, "words": tagged})
        start += count
    return rows


def format_tagged(rows: list[dict]) -> str:
    """``word/LABEL`` per word, one text a line (``word/?``: cut away by max length)."""
    return "\n".join(
        " ".join(f"{w['word']}/{w['label'] or '?'}" for w in row["words"]) for row in rows
    )
