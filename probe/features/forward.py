"""The forward pass that extraction pools: every requested layer, and no block above them.

Blocks are found by shape (``probe.features.models.architecture``); a forward hook on the block
of the highest requested layer stops the pass there. A model without a block list is read
through its own ``output_hidden_states`` instead: every layer runs, the numbers agree.
"""

from __future__ import annotations

from collections.abc import Sequence


class _StopForward(Exception):
    """Raised by a hook once the highest requested layer has been computed."""


def hidden_states_by_layer(model, input_ids, attention_mask, layers: Sequence[int]) -> dict:
    """Run ``model`` only as far as needed; return {layer: hidden (B, T, D)}.

    Numbering follows ``output_hidden_states``: layer 0 is the input of block 0 (the
    embeddings), layer i < L the output of block i-1, layer L the model's final output
    (after the final norm, where there is one). A model without a block list (ALBERT) is
    read through ``output_hidden_states``: every layer runs, the numbers are the same.
    """
    from probe.features.models.architecture import base_model, find_blocks, without_kv_cache

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
                raise _StopForward

        return hook

    def keep_output(layer):
        def hook(module, args, output):
            captured[layer] = output[0] if isinstance(output, tuple) else output
            if layer == top:
                raise _StopForward

        return hook

    if 0 in layers and len(blocks):
        handles.append(blocks[0].register_forward_pre_hook(keep_input(0), with_kwargs=True))
    for layer in layers:
        if 0 < layer < len(blocks):
            handles.append(blocks[layer - 1].register_forward_hook(keep_output(layer)))
    try:
        output = base(input_ids=input_ids, attention_mask=attention_mask, **without_kv_cache(base))
        captured[len(blocks)] = output.last_hidden_state
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return {layer: captured[layer] for layer in layers}


def _all_hidden_states(base, input_ids, attention_mask, layers: Sequence[int]) -> dict:
    """The generic path: the model's own ``output_hidden_states`` (no early stop)."""
    from probe.features.models.architecture import without_kv_cache

    output = base(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
        **without_kv_cache(base),
    )  # fmt: skip
    states = list(output.hidden_states)
    states[-1] = output.last_hidden_state
    return {layer: states[layer] for layer in layers}
