"""The change itself: a forward hook at the head's layer, and one pass over the rows with it.

Layer k follows ``output_hidden_states``: 0 is the input of block 0 (a pre-hook there), k < L
the output of block k-1, L the model's final output (the final norm's output where there is
one). The hook changes the head's token positions only, the ones its pool reads: the last
real token (pool ``last``), or every real token (pool ``mean``, so the pooled vector moves by
exactly the vector added). The pass is ``probe.features.forward.hidden_states_by_layer``, so
it stops at the deepest block a readout needs, as extraction does; the hook is registered
before that function's own, so the states it captures are the changed ones. Verbalizers need
the final output: the pass then runs every block, and only the last token's logits are made.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from probe.errors import ProbeError
from probe.features.batching import DEFAULT_TOKEN_BUDGET, collate, length_sorted_batches
from probe.features.forward import hidden_states_by_layer
from probe.features.models.architecture import final_norm, find_blocks
from probe.features.pooling import POOLS, last_token_index
from probe.interventions.directions import Eraser


@dataclass
class Edit:
    """What to change at ``layer``: add ``vector`` (raw units), or apply ``eraser``."""

    layer: int
    pool: str
    vector: np.ndarray | None = None
    eraser: Eraser | None = None


@dataclass
class Pass:
    """One pass over the rows, in the order asked: pooled states and verbalizer log-probs."""

    features: dict[int, np.ndarray]  # layer -> float32 (n, D)
    norms: np.ndarray | None = None  # L2 norms at the changed positions of ``norm_layer``
    log_probs: np.ndarray | None = None  # (n, V): log p(verbalizer v) at the last token
    notes: list[str] = field(default_factory=list)


def positions(attention_mask, pool: str):
    """bool (B, T): the positions a pool of ``pool`` reads (and an edit changes)."""
    if pool == "mean":
        return attention_mask.bool()
    chosen = torch.zeros_like(attention_mask, dtype=torch.bool)
    chosen[torch.arange(len(chosen), device=chosen.device), last_token_index(attention_mask)] = True
    return chosen


def _changed(hidden, where, edit: Edit):
    """``hidden`` (B, T, D) with ``edit`` applied at ``where`` (B, T), out of place."""
    if edit.vector is not None:
        vector = torch.as_tensor(edit.vector, dtype=hidden.dtype, device=hidden.device)
        return hidden + where.unsqueeze(-1).to(hidden.dtype) * vector
    matrix = torch.as_tensor(edit.eraser.matrix, dtype=torch.float32, device=hidden.device)
    bias = torch.as_tensor(edit.eraser.bias, dtype=torch.float32, device=hidden.device)
    removed = (hidden.float() - bias) @ matrix.T
    return hidden - (where.unsqueeze(-1) * removed).to(hidden.dtype)


@contextmanager
def editing(model, edit: Edit | None, batch: dict):
    """Hold ``edit`` on ``model`` for the passes inside; ``batch["mask"]`` is the attention
    mask of the batch running (the hook reads it to find the positions)."""
    if edit is None:
        yield
        return
    blocks = find_blocks(model)
    if blocks is None:
        raise ProbeError(
            f"{type(model).__name__} has no list of blocks to hook: its hidden states cannot "
            "be changed in place"
        )

    def replace(hidden):
        return _changed(hidden, positions(batch["mask"], edit.pool), edit)

    def before_first(module, args, kwargs):
        if args:
            return (replace(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": replace(kwargs["hidden_states"])}

    def after(module, args, output):
        if isinstance(output, tuple):
            return (replace(output[0]), *output[1:])
        return replace(output)

    norm = final_norm(model)
    if edit.layer == 0:
        handle = blocks[0].register_forward_pre_hook(before_first, with_kwargs=True)
    elif edit.layer >= len(blocks) and norm is not None:
        handle = norm.register_forward_hook(after)
    else:
        handle = blocks[edit.layer - 1].register_forward_hook(after)
    try:
        yield
    finally:
        handle.remove()


def run_rows(
    backbone,
    token_ids,
    layers,
    pool: str,
    edit: Edit | None = None,
    *,
    norm_layer: int | None = None,
    verbalizer_ids=None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
) -> Pass:
    """Run ``token_ids`` (a list of id lists) with ``edit`` held; pool ``layers`` by ``pool``.

    ``norm_layer``: also the norms of the hidden states at the positions ``pool`` reads there
    (the typical norm alpha is measured in). ``verbalizer_ids``: also the log-probability of
    each verbalizer token as the next token after the last one (causal LMs).
    """
    model = backbone.model
    device = next(model.parameters()).device
    wanted = sorted({*layers, *([norm_layer] if norm_layer is not None else [])})
    if verbalizer_ids is not None:
        wanted = sorted({*wanted, backbone.num_layers})
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is None:
            raise ProbeError("--verbalizers needs a causal language model with its LM head")
    n = len(token_ids)
    features = {layer: np.zeros((n, backbone.hidden_size), np.float32) for layer in layers}
    norms, log_probs = [], np.zeros((n, len(verbalizer_ids or ())), np.float64)
    batch: dict = {}
    lengths = [len(ids) for ids in token_ids]
    with editing(model, edit, batch), torch.inference_mode():
        for rows in length_sorted_batches(lengths, token_budget):
            input_ids, mask = collate([token_ids[i] for i in rows], backbone.tokenizer.pad_id)
            input_ids, mask = input_ids.to(device), mask.to(device)
            batch["mask"] = mask
            hidden = hidden_states_by_layer(model, input_ids, mask, wanted)
            for layer in layers:
                features[layer][rows] = POOLS[pool](hidden[layer], mask).float().cpu().numpy()
            if norm_layer is not None:
                states = hidden[norm_layer][positions(mask, pool)]  # (positions, D)
                norms.append(states.float().norm(dim=-1).cpu().numpy())
            if verbalizer_ids is not None:
                last = POOLS["last"](hidden[backbone.num_layers], mask)  # (B, D)
                logits = head(last).float().log_softmax(dim=-1)
                log_probs[rows] = logits[:, list(verbalizer_ids)].double().cpu().numpy()
    return Pass(
        features,
        np.concatenate(norms) if norms else None,
        log_probs if verbalizer_ids is not None else None,
    )


def verbalizer_token_ids(backbone, verbalizers: dict) -> tuple[dict, list[str]]:
    """{class: token id} of each verbalizer's first token, and notes for those cut short."""
    ids, notes = {}, []
    for name, word in verbalizers.items():
        tokens = backbone.tokenizer.encode([word], 64, special_tokens=False).token_ids[0]
        if not tokens:
            raise ProbeError(f"--verbalizers: {word!r} has no tokens")
        if len(tokens) > 1:
            notes.append(f"verbalizer {word!r} is {len(tokens)} tokens: its first is read")
        ids[name] = int(tokens[0])
    if len(set(ids.values())) < len(ids):
        raise ProbeError("--verbalizers: two classes begin with the same token")
    return ids, notes
