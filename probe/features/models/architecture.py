"""Find the parts of a Hugging Face backbone that probe needs, for any architecture.

Extraction, early stopping and partial unfreezing all need the same three things: the base
model (no LM head: its vocabulary projection would be ~20% of SmolLM2's FLOPs for nothing),
the ModuleList of transformer blocks, and the final norm (None for post-norm encoders).
Finding them by shape rather than by class keeps GPT-2, Llama-style and BERT-style models on
one code path; a model without such a list (ALBERT's shared layer) is read through
``output_hidden_states`` instead (``probe.features.extract``).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from probe.errors import ProbeError

FINAL_NORM_NAMES = ("ln_f", "norm", "final_layer_norm", "final_layernorm", "final_norm")


def base_model(model: nn.Module) -> nn.Module:
    """The transformer without any task head (``GPT2LMHeadModel`` -> ``GPT2Model``)."""
    inner = getattr(model, "base_model", None)
    return inner if isinstance(inner, nn.Module) else model


def without_kv_cache(base: nn.Module) -> dict:
    """``{"use_cache": False}`` where the forward takes it: a one-pass feature read never
    decodes, and the key/value cache would copy every block's keys and values for nothing."""
    import inspect

    return {"use_cache": False} if "use_cache" in inspect.signature(base.forward).parameters else {}


class StopForward(Exception):
    """Raised by a hook once the deepest part a pass needs has run: the pass ends there."""


def run_until_stopped(base: nn.Module, input_ids, attention_mask, handles: list):
    """Run ``base`` on a batch with ``handles`` (hooks) in place: its output, or None where a
    hook ended the pass early (``StopForward``); the hooks are removed either way."""
    try:
        return base(input_ids=input_ids, attention_mask=attention_mask, **without_kv_cache(base))
    except StopForward:
        return None
    finally:
        for handle in handles:
            handle.remove()


def num_blocks(model: nn.Module) -> int:
    return len(transformer_blocks(model))


def num_layers(model: nn.Module) -> int:
    """The config's layer count (the encoder's, for an encoder-decoder): hidden-state layers
    are 0..num_layers whether or not the blocks can be found."""
    config = base_model(model).config
    return int(getattr(config, "num_hidden_layers", None) or len(transformer_blocks(model)))


def find_blocks(model: nn.Module) -> nn.ModuleList | None:
    """The ModuleList with one entry per layer of the config, or None where there is none
    (ALBERT shares one layer, some models hide their blocks): those take the generic path."""
    base = base_model(model)
    expected = getattr(base.config, "num_hidden_layers", None)
    for module in base.modules():  # outermost first: the blocks, not a list inside one
        if isinstance(module, nn.ModuleList) and len(module) == expected and expected:
            return module
    return None


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of blocks (partial unfreezing and fusion need them)."""
    blocks = find_blocks(model)
    if blocks is None:
        raise ProbeError(f"cannot find the transformer blocks of {type(model).__name__}")
    return blocks


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm applied after the last block (GPT-2 ``ln_f``, Llama ``norm``), if any."""
    base = base_model(model)
    for name in FINAL_NORM_NAMES:
        module = getattr(base, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


def is_causal(model: nn.Module) -> bool:
    """Whether a position sees only the past (then only the last token sees the whole text).

    Asked of the model itself rather than of a list of model types: change the last of four
    tokens and see whether the first position's output moves. Any decoder, encoder or
    state-space model answers the same way.
    """
    import torch

    base = base_model(model)
    parameter = next(base.parameters())
    vocab = int(getattr(base.config, "vocab_size", 0) or 8)
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]], device=parameter.device) % max(vocab, 6)
    mask = torch.ones_like(ids)
    try:
        with torch.inference_mode():
            output = base(input_ids=ids, attention_mask=mask, **without_kv_cache(base))
    except (RuntimeError, ValueError, IndexError, TypeError):
        # a model that cannot run this toy input: its config says. torch raises RuntimeError
        # (shapes, devices) and IndexError (an id past the vocabulary), transformers
        # ValueError (T5 wants decoder inputs), a forward of another signature TypeError
        return bool(getattr(base.config, "is_decoder", False))
    states = output.last_hidden_state.float()
    moved = (states[0] - states[1]).abs().amax(dim=-1)  # (4,): how far each position moved
    return bool(moved[0] <= 1e-3 * moved[-1])


def _parent_and_name(root: nn.Module, target: nn.Module) -> tuple[nn.Module, str]:
    for parent in root.modules():
        for name, child in parent.named_children():
            if child is target:
                return parent, name
    raise ProbeError("cannot locate the transformer blocks inside the model")


@contextmanager
def only_first_blocks(model: nn.Module, count: int) -> Iterator[None]:
    """Temporarily keep only the first ``count`` blocks, so later blocks are never run.

    Models iterate over their block list (Llama slices it by ``num_hidden_layers``, which a
    shorter list satisfies), so swapping in a shorter ModuleList stops the forward pass early.
    """
    blocks = transformer_blocks(model)
    if count >= len(blocks):
        yield
        return
    parent, name = _parent_and_name(base_model(model), blocks)
    setattr(parent, name, nn.ModuleList(list(blocks)[:count]))
    try:
        yield
    finally:
        setattr(parent, name, blocks)


@contextmanager
def only_blocks(model: nn.Module, start: int, stop: int) -> Iterator[None]:
    """Temporarily keep only ``blocks[start:stop]``: the frozen prefix and the dropped top
    are never run.

    The model's own forward still builds the embeddings, positions (rotary or learned) and
    the causal/padding mask exactly as it always does; only the loop over blocks is shorter.
    """
    blocks = transformer_blocks(model)
    if start == 0 and stop >= len(blocks):
        yield
        return
    parent, name = _parent_and_name(base_model(model), blocks)
    setattr(parent, name, nn.ModuleList(list(blocks)[start:stop]))
    try:
        yield
    finally:
        setattr(parent, name, blocks)


@contextmanager
def without_final_norm(model: nn.Module) -> Iterator[None]:
    """Temporarily replace the final norm by the identity: hidden-state layers below the top
    are the blocks' raw outputs, and only layer L goes through the final norm."""
    base = base_model(model)
    norm = final_norm(model)
    if norm is None:
        yield
        return
    name = next(n for n in FINAL_NORM_NAMES if getattr(base, n, None) is norm)
    setattr(base, name, nn.Identity())
    try:
        yield
    finally:
        setattr(base, name, norm)
