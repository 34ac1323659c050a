"""Run a slice of a backbone's blocks, and cache the frozen prefix so an epoch skips it.

With the last N of L blocks unfrozen, blocks ``0..L-N-1`` never change, so their per-token
output (the input of the first trainable block) is computed once and every epoch runs only
the top N blocks, the final norm and the head: on SmolLM2-135M with N = 1 that is 1 block of
30 per epoch instead of 30 (see ``benchmarks/results/``).

Running blocks ``first..stop-1`` on stored hidden states is architecture-specific (GPT-2 adds
learned position embeddings to its inputs, Llama computes rotary embeddings and a causal +
padding mask). Rather than re-implement that per architecture, :func:`run_blocks` calls the
model's own forward with the block list cut to the slice, and a pre-hook on the first kept
block swaps its input for the stored one. Everything the blocks receive besides the hidden
states (mask, positions, rotary tables) is then exactly what a full forward gives them.

Stored per example, unpadded: ``hidden`` (total_tokens, D) and ``offsets`` (N + 1,). The
attention mask is rebuilt from the lengths, and positions are not stored because with right
padding they are ``0..n-1`` for every example, which the model's forward recomputes. With
right padding a causal model's real tokens never see the padding, so one stored row serves
any batch it later lands in.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from probe.features.batching import DEFAULT_TOKEN_BUDGET, collate, length_sorted_batches
from probe.features.models.architecture import (
    base_model,
    final_norm,
    only_blocks,
    transformer_blocks,
    without_final_norm,
    without_kv_cache,
)
from probe.files import atomic_path, cache_root
from probe.messages import say

PREFIX_FORMAT = 1
DTYPES = {"float16": torch.float16, "float32": torch.float32}


def run_blocks(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    first: int,
    stop: int,
    start_hidden: torch.Tensor | None = None,
    apply_final_norm: bool = False,
) -> torch.Tensor:
    """Hidden states after ``blocks[first:stop]`` (and the final norm if asked).

    ``start_hidden`` (B, T, D) is the input of ``blocks[first]``; without it ``first`` must be
    0 and the model embeds ``input_ids`` itself. ``input_ids`` are always passed: the model
    derives its mask and positions from them (the embedding lookup it also does is noise).

    (B, T) -> (B, T, D)
    """
    if start_hidden is None and first != 0:
        raise ValueError("start_hidden is needed to start above block 0")
    norm = final_norm(model) if apply_final_norm else None
    if first == stop and start_hidden is not None:
        return norm(start_hidden) if norm is not None else start_hidden
    handle = None
    if start_hidden is not None:
        handle = transformer_blocks(model)[first].register_forward_pre_hook(
            _replace_input(start_hidden), with_kwargs=True
        )
    try:
        with only_blocks(model, first, stop):
            if apply_final_norm:
                return _forward(model, input_ids, attention_mask)
            with without_final_norm(model):
                return _forward(model, input_ids, attention_mask)
    finally:
        if handle is not None:
            handle.remove()


def _forward(model, input_ids, attention_mask) -> torch.Tensor:
    base = base_model(model)
    kwargs = without_kv_cache(base)
    return base(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state


def _replace_input(hidden: torch.Tensor):
    """A forward pre-hook that feeds ``hidden`` to a block instead of what it was given."""

    def hook(module, args, kwargs):
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    return hook


# --- the stored prefix ----------------------------------------------------------------------


@dataclass
class Prefix:
    """Per-token input of block ``layer`` for every example, unpadded and concatenated."""

    hidden: torch.Tensor  # (total_tokens, D), float16 or float32
    offsets: torch.Tensor  # (N + 1,) int64: example i is hidden[offsets[i]:offsets[i + 1]]
    layer: int
    seconds: float = 0.0  # time spent computing it (0 on a cache hit)
    hit: bool = False
    computed_seconds: float | None = None  # what computing it cost, recorded with the file

    def batch(self, rows: Sequence[int], dtype, device) -> torch.Tensor:
        """Right-padded (B, T, D) for the examples ``rows``, as ``collate`` pads their ids."""
        starts = self.offsets[rows]
        lengths = self.offsets[np.asarray(rows) + 1] - starts
        width = max(int(lengths.max()), 1)
        out = torch.zeros((len(rows), width, self.hidden.shape[1]), dtype=dtype)
        for row, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            out[row, :length] = self.hidden[start : start + length]
        return out.to(device)


def prefix_key(fingerprint: str, tokenizer: str, max_length: int, text_hashes, layer: int, dtype):
    """The feature cache's key for these texts and settings, plus the layer and dtype."""
    from probe.features.extract import TRUNCATION_SIDE
    from probe.features.store.views import cache_key

    features_key = cache_key(fingerprint, tokenizer, max_length, TRUNCATION_SIDE, text_hashes)
    settings = f"{features_key}|prefix-format={PREFIX_FORMAT}|layer={layer}|dtype={dtype}"
    return hashlib.blake2b(settings.encode(), digest_size=16).hexdigest()


def prefix_dir() -> Path:
    return cache_root() / "prefix"


def compute_prefix(
    model,
    token_ids: Sequence[Sequence[int]],
    pad_id: int,
    layer: int,
    dtype: str = "float16",
    token_budget: int = DEFAULT_TOKEN_BUDGET,
) -> Prefix:
    """Run blocks ``0..layer-1`` once over every example, in length-sorted batches."""
    started = time.perf_counter()
    device = next(model.parameters()).device
    lengths = np.asarray([len(ids) for ids in token_ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    width = base_model(model).config.hidden_size
    hidden = torch.empty((int(offsets[-1]), width), dtype=DTYPES[dtype])
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for rows in length_sorted_batches(lengths, token_budget, max_batch_size=512):
            input_ids, mask = collate([token_ids[i] for i in rows], pad_id, device)
            out = run_blocks(model, input_ids, mask, 0, layer).to("cpu", DTYPES[dtype])
            for row, index in enumerate(rows):
                hidden[offsets[index] : offsets[index + 1]] = out[row, : lengths[index]]
    model.train(was_training)
    seconds = time.perf_counter() - started
    return Prefix(hidden, torch.from_numpy(offsets), layer, seconds, computed_seconds=seconds)


def load_or_compute_prefix(
    model, token_ids, pad_id: int, layer: int, key: str, dtype: str = "float16"
) -> Prefix:
    """The stored prefix for ``key``, computing and storing it (atomically) on a miss."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    path = prefix_dir() / f"{key}.safetensors"
    if path.is_file():
        try:
            tensors = load_file(path)
            if len(tensors["offsets"]) == len(token_ids) + 1:
                recorded = _recorded_seconds(path)
                return Prefix(tensors["hidden"], tensors["offsets"], layer, 0.0, True, recorded)
        except (SafetensorError, OSError, KeyError, ValueError):
            pass  # damaged, cut, no offsets or a bad recorded time: recomputed, never trusted
    prefix = compute_prefix(model, token_ids, pad_id, layer, dtype)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as staging:  # readers see no file or a whole one
            save_file(
                {"hidden": prefix.hidden.contiguous(), "offsets": prefix.offsets},
                str(staging),
                metadata={
                    "layer": str(layer),
                    "dtype": dtype,
                    "format": str(PREFIX_FORMAT),
                    "seconds": f"{prefix.seconds:.3f}",
                },
            )
    except OSError as exc:
        say(f"prefix cache not written ({exc.strerror}); it will be recomputed next time")
    return prefix


def _recorded_seconds(path: Path) -> float | None:
    """How long the stored prefix took to compute (files from before this was kept: None)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        seconds = (handle.metadata() or {}).get("seconds")
    return float(seconds) if seconds else None
