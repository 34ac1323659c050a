"""The forward pass that extraction pools: every requested layer, and no block above them.

Batches in, pooled fp16 features out (``pooled_batches``), with no cache around it: what
``probe.features.extract`` stores, what ``embed_texts`` hands to ``probe predict``, what the
Ray workers run. Cut from the extraction because that one is about the store (what is
missing, shards, views); this one is about the model.

Blocks are found by shape (``probe.features.models.architecture``); a forward hook on the block
of the highest requested layer stops the pass there. A model without a block list is read
through its own ``output_hidden_states`` instead: every layer runs, the numbers agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from probe.errors import ProbeError
from probe.features.batching import DEFAULT_TOKEN_BUDGET, collate, length_sorted_batches
from probe.features.pooling import POOL_NAMES

if TYPE_CHECKING:
    from probe.features.models.loading import Backbone


@dataclass(frozen=True)
class Reading:
    """What a pass reads beyond the default (``--site``, ``--position``): the site, every
    pool, and the token each text's indexed positions read ({pool: int64 [N]})."""

    site: str = "block"
    pools: tuple[str, ...] = POOL_NAMES
    indices: dict = field(default_factory=dict)


def hidden_states_by_layer(
    model, input_ids, attention_mask, layers: Sequence[int], site: str = "block"
) -> dict:
    """Run ``model`` only as far as needed; return {layer: hidden (B, T, D)}.

    Numbering follows ``output_hidden_states``: layer 0 is the input of block 0 (the
    embeddings), layer i < L the output of block i-1, layer L the model's final output
    (after the final norm, where there is one). A model without a block list (ALBERT) is
    read through ``output_hidden_states``: every layer runs, the numbers are the same.
    Another ``site`` reads a part of blocks 1..L instead (``probe.features.models.sites``).
    """
    from probe.features.models.architecture import (
        StopForward,
        base_model,
        find_blocks,
        run_until_stopped,
    )

    if site != "block":
        from probe.features.models.sites import site_states

        return site_states(model, input_ids, attention_mask, layers, site)

    base = base_model(model)
    blocks = find_blocks(model)
    if blocks is None:
        return _all_hidden_states(base, input_ids, attention_mask, layers)
    top = max(layers)
    captured: dict[int, object] = {}
    handles = []

    def keep_input(layer):
        def hook(module, args, kwargs):
            captured[layer] = args[0] if args else kwargs["hidden_states"]
            if layer == top:
                raise StopForward

        return hook

    def keep_output(layer):
        def hook(module, args, output):
            captured[layer] = output[0] if isinstance(output, tuple) else output
            if layer == top:
                raise StopForward

        return hook

    if 0 in layers and len(blocks):
        handles.append(blocks[0].register_forward_pre_hook(keep_input(0), with_kwargs=True))
    for layer in layers:
        if 0 < layer < len(blocks):
            handles.append(blocks[layer - 1].register_forward_hook(keep_output(layer)))
    output = run_until_stopped(base, input_ids, attention_mask, handles)
    if output is not None:  # no hook stopped it: the last layer is the model's output
        captured[len(blocks)] = output.last_hidden_state
    return {layer: captured[layer] for layer in layers}


def _all_hidden_states(base, input_ids, attention_mask, layers: Sequence[int]) -> dict:
    """The generic path: the model's own ``output_hidden_states`` (no early stop)."""
    from probe.features.models.architecture import without_kv_cache

    output = base(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_hidden_states=True,
        **without_kv_cache(base),
    )
    states = list(output.hidden_states)
    states[-1] = output.last_hidden_state
    return {layer: states[layer] for layer in layers}


# --- pooled batches ---------------------------------------------------------------------


def pooled_batch(
    backbone: Backbone, token_ids, layers: Sequence[int], reading: Reading | None = None
) -> dict[str, np.ndarray]:
    """{pool: float16 [n_layers, B, D]} for one batch of token id lists."""
    return pool_on_device(backbone, host_batch(backbone, token_ids), layers, reading).result()


def pooled_batches(
    backbone: Backbone,
    token_ids: Sequence[Sequence[int]],
    batches: Sequence[np.ndarray],
    layers: Sequence[int],
    overlap: bool = True,
    reading: Reading | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Yield (rows, {pool: float16 [n_layers, B, D]}) for each batch of row indices, in order.

    With ``overlap`` the next batches are collated (and pinned, on CUDA) in a background
    thread while the model runs on this one, and a batch's pooled features are handed out
    only after the next batch's forward pass is queued: on a GPU the device-to-host copy
    of one batch runs behind the kernels of the next. The numbers are the same either way.
    """
    from probe.features.device import prefetched

    def prepare(rows):
        return rows, host_batch(backbone, [token_ids[i] for i in rows])

    staged = prefetched(batches, prepare) if overlap else map(prepare, batches)
    waiting = None  # (rows, HostCopy) of the batch before
    for rows, host in staged:
        copy = pool_on_device(backbone, host, layers, _batch_reading(reading, rows))
        if waiting is not None:
            yield waiting[0], waiting[1].result()
        waiting = (rows, copy) if overlap else None
        if not overlap:
            yield rows, copy.result()
    if waiting is not None:
        yield waiting[0], waiting[1].result()


def host_batch(backbone: Backbone, token_ids):
    """Padded (input_ids, attention_mask) on the host: pinned where a CUDA copy follows."""
    input_ids, attention_mask = collate(token_ids, backbone.tokenizer.pad_id, "cpu")
    if next(backbone.model.parameters()).device.type == "cuda":
        input_ids, attention_mask = input_ids.pin_memory(), attention_mask.pin_memory()
    return input_ids, attention_mask


def _batch_reading(reading: Reading | None, rows) -> Reading | None:
    """The reading of one batch: each indexed position's tokens for these rows."""
    if reading is None or not reading.indices:
        return reading
    indices = {name: np.asarray(index)[rows] for name, index in reading.indices.items()}
    return Reading(reading.site, reading.pools, indices)


def pool_on_device(
    backbone: Backbone, host_batch, layers: Sequence[int], reading: Reading | None = None
) -> dict:
    import torch

    from probe.features.device import HostCopy, to_device
    from probe.features.pooling import pool_any

    reading = reading or Reading()
    device = next(backbone.model.parameters()).device
    input_ids, attention_mask = (to_device(t, device) for t in host_batch)
    indices = {name: torch.as_tensor(index) for name, index in reading.indices.items()}
    with torch.inference_mode():
        hidden = hidden_states_by_layer(
            backbone.model, input_ids, attention_mask, layers, reading.site
        )
        return HostCopy(
            {
                name: torch.stack(
                    [pool_any(name, hidden[layer], attention_mask, indices) for layer in layers]
                ).to(torch.float16)
                for name in reading.pools
            }
        )  # (n_layers, B, D) per pool; the copy to the host may still be running


def reading_for(
    backbone: Backbone, texts, token_ids, site="block", pools=POOL_NAMES, prompt=None, chat=False
) -> Reading:
    """The ``Reading`` of these texts: each indexed position's token per text (a marker
    searched in the prompted text), or a one-line error naming how many texts lack one."""
    from probe.features.models.prompts import format_texts
    from probe.features.models.tokenize import marker_token_ends
    from probe.features.pooling import is_indexed, token_indices

    lengths = [len(ids) for ids in token_ids]
    indices = {}
    for name in (p for p in pools if is_indexed(p)):
        ends = None
        if name.startswith("marker:"):
            formatted = format_texts(texts, backbone.tokenizer, prompt, chat)
            ends = marker_token_ends(backbone.tokenizer, formatted, token_ids, name[7:], not chat)
        indices[name] = token_indices(name, lengths, ends)
    return Reading(site, tuple(pools), indices)


def embed_texts(
    backbone: Backbone,
    texts: Sequence[str],
    layers: Sequence[int],
    max_length: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    overlap: bool = True,
    prompt: str | None = None,
    chat_template: bool = False,
    site: str = "block",
    pools: Sequence[str] = POOL_NAMES,
) -> dict[str, np.ndarray]:
    """Features for a few texts without the cache: {pool: float32 [n_layers, N, D]}.

    Values are rounded through fp16 exactly as the cache stores them, so a head applied
    here gives the predictions it gives on cached features. ``site`` and ``pools`` (any
    position) read as ``probe extract --site/--position`` stored them.
    """
    encoded = encode_texts(
        backbone, texts, max_length or backbone.default_max_length, prompt, chat_template
    )
    lengths = [len(ids) for ids in encoded.token_ids]
    if min(lengths, default=1) == 0:
        raise ProbeError("a text is empty or whitespace-only after tokenization")
    pools = tuple(dict.fromkeys(pools))
    reading = reading_for(backbone, texts, encoded.token_ids, site, pools, prompt, chat_template)
    out = {
        pool: np.zeros((len(layers), len(texts), backbone.hidden_size), np.float32)
        for pool in pools
    }
    batches = length_sorted_batches(lengths, token_budget)
    tokens = encoded.token_ids
    for rows, batch in pooled_batches(backbone, tokens, batches, layers, overlap, reading):
        for pool in pools:
            out[pool][:, rows] = batch[pool]
    return out


def encode_texts(backbone: Backbone, texts, max_length: int, prompt=None, chat_template=False):
    """Token ids of ``texts`` after ``--prompt``/``--chat-template`` (whose markup already
    holds the special tokens, so the tokenizer adds none)."""
    from probe.features.models.prompts import format_texts

    formatted = format_texts(texts, backbone.tokenizer, prompt, chat_template)
    if chat_template:
        return backbone.tokenizer.encode(formatted, max_length, special_tokens=False)
    return backbone.tokenizer.encode(formatted, max_length)
