"""``probe extract --unit word|token``: every word's (or token's) hidden states, cached.

The same pass as sentence-level extraction (``probe.features.extract``): length-sorted
batches under a token budget, blocks above the highest layer never run, each batch pooled on
the device and moved to CPU as fp16 before the next. Rows the store holds are read, not
computed; shards are committed by a background writer every ``SHARD_ROWS`` sentences or
``SHARD_SECONDS``, so a killed run keeps what it committed and a re-run computes the rest.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np

from probe.data.conllu import WordDataset, segmentation_sha1
from probe.errors import ProbeError
from probe.features.batching import DEFAULT_TOKEN_BUDGET, length_sorted_batches
from probe.features.extract import (
    SHARD_ROWS,
    SHARD_SECONDS,
    TOKENIZE_CHUNK,
    resolve_request,
    row_setting,
    text_keys,
    view_attributes,
)
from probe.features.forward import hidden_states_by_layer, host_batch
from probe.features.pooling import TOKEN_POOL
from probe.features.store.rowstore import layers_to_compute
from probe.features.store.wordrows import RaggedRowStore, ragged_setting
from probe.features.words import check_word_pool, default_word_pool, encode_words, pool_words
from probe.messages import progress, say

SHARD_UNITS = 8192  # word vectors per shard at most: memory stays flat in the sentence count


def row_keys(data: WordDataset, unit: str) -> np.ndarray:
    """uint8 [N, 20]: text + segmentation per sentence (token rows: the text alone)."""
    if unit == "token":
        return text_keys(data.texts)
    digests = [segmentation_sha1(t, s) for t, s in zip(data.texts, data.spans, strict=True)]
    return np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 20)


def resolve_word_pool(model, word_pool: str | None) -> str:
    """The word pool asked for, or the model's default (said once)."""
    if word_pool is not None:
        return check_word_pool(word_pool)
    from probe.features.models.loading import Backbone

    causal = model.causal if isinstance(model, Backbone) else _config_is_causal(model)
    chosen = default_word_pool(causal)
    why = (
        "a causal model: only the last subword has seen the whole word"
        if causal
        else ("an encoder: its first subword sees both sides")
    )
    say(f"word pool: {chosen} ({why}; --word-pool to change)")
    return chosen


ENCODER_TYPES = (
    "bert",
    "roberta",
    "distilbert",
    "electra",
    "deberta",
    "deberta-v2",
    "albert",
    "xlm-roberta",
    "mpnet",
    "camembert",
    "modernbert",
)


def _config_is_causal(model: str) -> bool:
    """Read from config.json, without loading the weights (unknown: causal)."""
    import json

    from probe.features.models.loading import resolve_model_dir

    try:
        config = json.loads((resolve_model_dir(model) / "config.json").read_text())
    except (OSError, ValueError):
        return True
    return config.get("model_type") not in ENCODER_TYPES


def extract_words(
    model,
    data: WordDataset,
    layers="all",
    *,
    unit: str = "word",
    word_pool: str | None = None,
    max_length: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    token_budget: int | None = None,
    shard_rows: int = SHARD_ROWS,
    tasks: dict | None = None,
) -> Path:
    """Cache every word's (or token's) features of ``data``; return its word view.

    ``tasks`` (task -> labels per sentence) overrides ``data.columns`` as the view's labels.
    """
    from probe.features.models.loading import Backbone, load_backbone
    from probe.features.store.views import start_view, view_file, view_key
    from probe.features.store.wordviews import materialise_words, word_view_current

    if unit not in ("word", "token"):
        raise ProbeError(f"unknown --unit '{unit}'; choose word or token (sentence: the default)")
    info, wanted, max_length = resolve_request(model, layers, max_length)
    pool = TOKEN_POOL if unit == "token" else resolve_word_pool(model, word_pool)
    setting = ragged_setting(row_setting(model, info, max_length, device, dtype), unit, pool)
    keys = row_keys(data, unit)
    key = view_key(setting, keys)
    final_path = view_file(key, out)
    tasks = data.columns if tasks is None else tasks
    if not force and word_view_current(final_path, key, wanted, tasks):
        say(f"cache hit: {final_path} (no model run)")
        return final_path
    rows = RaggedRowStore(setting)
    pending, missing, todo = start_view(
        final_path, rows, key, wanted, info.name, data.source, keys, force
    )
    started = time.perf_counter()
    unaligned = 0
    if len(todo):
        if len(missing) < len(keys):
            say(f"{len(keys) - len(missing)} of {len(keys)} sentences already in the store")
        backbone = model if isinstance(model, Backbone) else load_backbone(model, device, dtype)
        unaligned = _compute(
            backbone,
            rows,
            data,
            keys,
            todo,
            wanted,
            unit,
            pool,
            force=force,
            token_budget=token_budget,
            shard_rows=shard_rows,
        )
    elapsed = time.perf_counter() - started
    reused = len(keys) - len(missing)
    attrs = {
        **view_attributes(info, setting, key, data.source, elapsed, len(todo), reused),
        "unit": unit,
        "word_pool": pool,
        "pools": [pool],
    }
    aligned = materialise_words(final_path, rows, keys, wanted, attrs, data, unit, tasks)
    pending.discard()
    if len(todo):
        say(f"extracted {len(todo)} sentences ({unit}s) in {elapsed:.1f} s")
    missing_words = int((~aligned).sum())
    if missing_words or unaligned:
        say(
            f"{missing_words} of {len(aligned)} words have no token (cut by --max-length "
            f"{max_length}): kept, flagged unaligned, left out of fits"
        )
    return final_path


def _compute(
    backbone,
    rows: RaggedRowStore,
    data: WordDataset,
    keys,
    todo,
    wanted,
    unit,
    pool,
    *,
    force,
    token_budget,
    shard_rows,
) -> int:
    """Run the backbone over the sentences at ``todo``; commit their unit vectors in shards.
    Returns the number of unaligned words."""
    import torch

    from probe.features.device import BackgroundWriter, auto_token_budget, to_device

    max_length = rows.setting.max_length
    if force:
        plan = [(todo, layers_to_compute(wanted))]
    else:  # each sentence gets the layers it lacks: a (row, layer) is stored once
        plan = [(todo[group], layers) for group, layers in rows.plan(keys[todo], wanted)]
    pending: list = []
    computed: list[int] = []
    last_flush = time.perf_counter()
    device = next(backbone.model.parameters()).device
    unaligned = truncated = 0

    def flush():
        if not pending:
            return
        positions = np.concatenate([p for p, _, _, _ in pending])
        lengths = np.concatenate([n for _, n, _, _ in pending])
        spans = [s for _, _, spans, _ in pending for s in spans]
        units = np.concatenate([u for _, _, _, u in pending], axis=1)
        pending.clear()
        aligned = np.concatenate([s[:, 0] >= 0 for s in spans])
        commit = partial(
            rows.commit,
            n_units=[len(s) for s in spans],
            aligned=aligned,
            truncated=lengths >= max_length,
            prefer=force,
        )
        writer.submit(commit, keys[positions], lengths, units, computed)

    work = [
        (group[i : i + TOKENIZE_CHUNK], layers)
        for group, layers in plan
        for i in range(0, len(group), TOKENIZE_CHUNK)
    ]
    with progress(len(todo), "extract", unit="sent") as bar:
        with BackgroundWriter(depth=1) as writer:
            for chunk, layers in work:
                if layers != computed:  # a shard holds one set of layers
                    flush()
                    computed = layers
                    budget = token_budget or auto_token_budget(
                        backbone, len(computed), max_length, DEFAULT_TOKEN_BUDGET
                    )
                texts, spans = [data.texts[i] for i in chunk], [data.spans[i] for i in chunk]
                encoded = encode_words(backbone.tokenizer, texts, spans, max_length, unit)
                unaligned += encoded.unaligned
                truncated += encoded.truncated
                lengths = np.asarray([len(ids) for ids in encoded.token_ids], np.int64)
                if len(lengths) and lengths.min() == 0:
                    raise ProbeError(f"{int((lengths == 0).sum())} sentences have no tokens")
                for batch in length_sorted_batches(lengths, budget):
                    host = host_batch(backbone, [encoded.token_ids[i] for i in batch])
                    input_ids, attention_mask = (to_device(t, device) for t in host)
                    spans = [encoded.word_tokens[i] for i in batch]
                    with torch.inference_mode():
                        hidden = hidden_states_by_layer(
                            backbone.model, input_ids, attention_mask, computed
                        )
                        units = pool_words(hidden, computed, spans, pool)  # (L, W, D)
                    pending.append((chunk[batch], lengths[batch], spans, units))
                    bar.update(len(batch))
                    held_rows = sum(len(p) for p, _, _, _ in pending)
                    held_units = sum(u.shape[1] for _, _, _, u in pending)
                    if (
                        held_rows >= shard_rows
                        or held_units >= SHARD_UNITS
                        or time.perf_counter() - last_flush > SHARD_SECONDS
                    ):
                        flush()
                        last_flush = time.perf_counter()
            flush()
    if truncated:
        say(f"truncated {truncated} of {len(todo)} sentences to {max_length} tokens")
    return unaligned
