"""Find the parts of a Hugging Face backbone that probe needs, for any architecture.

Extraction, early stopping and partial unfreezing all need the same three things: the base
model (no LM head: its vocabulary projection would be ~20% of SmolLM2's FLOPs for nothing),
the ModuleList of transformer blocks, and the final norm (None for post-norm encoders).
Finding them by shape rather than by class keeps GPT-2, Llama-style and BERT-style models on
one code path.
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


def num_blocks(model: nn.Module) -> int:
    return len(transformer_blocks(model))


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of blocks: the longest one whose length is the config's layer count."""
    base = base_model(model)
    expected = getattr(base.config, "num_hidden_layers", None)
    candidates = [
        module for module in base.modules() if isinstance(module, nn.ModuleList) and len(module) > 0
    ]
    matching = [m for m in candidates if len(m) == expected] or candidates
    if not matching:
        raise ProbeError(f"cannot find the transformer blocks of {type(model).__name__}")
    return max(matching, key=len)


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm applied after the last block (GPT-2 ``ln_f``, Llama ``norm``), if any."""
    base = base_model(model)
    for name in FINAL_NORM_NAMES:
        module = getattr(base, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


def is_causal(model: nn.Module) -> bool:
    """Decoder-only models see only the past, so only their last token sees the whole text."""
    config = base_model(model).config
    if getattr(config, "is_decoder", False):
        return True
    architectures = getattr(config, "architectures", None) or []
    if any("CausalLM" in name or "LMHead" in name for name in architectures):
        return True
    return getattr(config, "model_type", "") in {
        "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi", "phi3",
        "gpt_neox", "gptj", "opt", "falcon", "smollm3", "olmo", "olmo2",
    }  # fmt: skip


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
