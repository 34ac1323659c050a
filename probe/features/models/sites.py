"""``--site``: where in a block the features are read, found by structure like the blocks.

``block`` is the residual stream after a block (what extraction always read). The others
are the parts of a residual block: ``attn`` and ``mlp`` the sublayer outputs that are added
to the residual stream, ``resid_mid`` the stream between them (block input + attn output).
Layer k of a site is block k's part (blocks numbered 1..L as layers are; layer 0, the
embeddings, has no sublayers).

A family has these sites when its blocks have an attention child and an MLP child (found by
name among the block's children: ``attn``/``self_attn``/..., ``mlp``/``feed_forward``/...)
and, checked once on a toy input, the block's output is its input plus the two children's
outputs (so they are what is added: not post-norm BERT, not Gemma-2's normed sublayers);
``resid_mid`` also needs a child of the block that reads input + attn output (a sequential
block: not GPT-J's parallel one). Any other family is a one-line error naming its sites.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from probe.errors import ProbeError

if TYPE_CHECKING:  # torch only where a model runs: opening caches stays torch-free
    from torch import nn

SITES = ("block", "attn", "mlp", "resid_mid")
DEFAULT_SITE = "block"
ATTENTION_NAMES = ("attn", "self_attn", "attention", "self_attention")
MLP_NAMES = ("mlp", "feed_forward", "ffn", "block_sparse_moe")
_FOUND: WeakKeyDictionary = WeakKeyDictionary()  # model -> its sites (one toy pass each)


def check_site(site: str | None) -> str:
    """The site name, or a one-line error naming the choices."""
    site = site or DEFAULT_SITE
    if site not in SITES:
        raise ProbeError(f"unknown site '{site}'; choose {', '.join(SITES)}")
    return site


def check_reading(site, positions, use_compile: bool = False) -> tuple[str, tuple[str, ...]]:
    """(site, every pool to store) of ``--site``/``--position``, checked before any load."""
    from probe.features.pooling import POOL_NAMES, parse_positions

    site = check_site(site)
    if use_compile and site != "block":
        raise ProbeError(f"--compile fuses whole blocks; drop it to read --site {site}")
    return site, (*POOL_NAMES, *parse_positions(positions))


def site_layers(site: str, spec, wanted: list[int]) -> list[int]:
    """The layers a site can give: 1..L inside the blocks (``all`` leaves out layer 0,
    which has no sublayers; asking for it is a one-line error)."""
    if site == "block" or 0 not in wanted:
        return wanted
    if spec == "all" and len(wanted) > 1:
        return [layer for layer in wanted if layer]
    raise ProbeError(f"--site {site}: layer 0 (the embeddings) has no {site}; ask for 1..")


def sublayers(block: nn.Module) -> tuple[nn.Module | None, nn.Module | None]:
    """(attention, MLP) children of a block, by name; None where there is none."""
    children = dict(block.named_children())
    attn = next((children[n] for n in ATTENTION_NAMES if n in children), None)
    mlp = next((children[n] for n in MLP_NAMES if n in children), None)
    return attn, mlp


def _first(output):
    return output[0] if isinstance(output, tuple | list) else output


def _block_input(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def model_sites(model: nn.Module) -> tuple[str, ...]:
    """The sites this model's blocks have (``block`` always), found once per model."""
    if model not in _FOUND:
        _FOUND[model] = _probe_sites(model)
    return _FOUND[model]


def _probe_sites(model: nn.Module) -> tuple[str, ...]:
    import torch

    from probe.features.models.architecture import (
        StopForward,
        base_model,
        find_blocks,
        run_until_stopped,
    )

    blocks = find_blocks(model)
    if blocks is None or not len(blocks):
        return (DEFAULT_SITE,)
    block = blocks[0]
    attn, mlp = sublayers(block)
    if attn is None or mlp is None:
        return (DEFAULT_SITE,)
    seen: dict[str, object] = {}
    inputs: list = []
    others = [m for m in block.children() if m is not attn and m is not mlp]

    def stop(module, args, output):
        seen["out"] = _first(output)
        raise StopForward

    handles = [
        block.register_forward_pre_hook(
            lambda m, a, k: seen.__setitem__("in", _block_input(a, k)), with_kwargs=True
        ),
        attn.register_forward_hook(lambda m, a, o: seen.__setitem__("attn", _first(o))),
        mlp.register_forward_hook(lambda m, a, o: seen.__setitem__("mlp", _first(o))),
        block.register_forward_hook(stop),
        *[
            o.register_forward_pre_hook(lambda m, a: inputs.append(a[0] if a else None))
            for o in others
        ],
    ]
    base = base_model(model)
    parameter = next(base.parameters())
    vocab = int(getattr(base.config, "vocab_size", 0) or 8)
    ids = (torch.arange(1, 7, device=parameter.device) % max(vocab, 7)).unsqueeze(0)
    try:
        with torch.inference_mode():
            run_until_stopped(base, ids, torch.ones_like(ids), handles)
    except (RuntimeError, ValueError, IndexError, TypeError):
        return (DEFAULT_SITE,)
    if not all(isinstance(seen.get(k), torch.Tensor) for k in ("in", "attn", "mlp", "out")):
        return (DEFAULT_SITE,)
    x, a, m, y = (seen[k].float() for k in ("in", "attn", "mlp", "out"))

    def close(u, v) -> bool:
        return u.shape == v.shape and bool((u - v).abs().max() <= 1e-3 * v.abs().max() + 1e-5)

    if not close(x + a + m, y):
        return (DEFAULT_SITE,)
    middle = [t for t in inputs if isinstance(t, torch.Tensor)]
    sequential = any(close(t.float(), x + a) for t in middle)
    return (*SITES[:3], "resid_mid") if sequential else SITES[:3]


def require_site(model: nn.Module, site: str) -> None:
    """A one-line error when this model's blocks lack ``site``, naming the ones they have."""
    from probe.features.models.architecture import base_model

    have = model_sites(model)
    if site not in have:
        family = getattr(base_model(model).config, "model_type", type(model).__name__)
        raise ProbeError(
            f"--site {site}: {family} blocks have no such part; sites: {', '.join(have)}"
        )


def site_states(model, input_ids, attention_mask, layers: Sequence[int], site: str) -> dict:
    """{layer: (B, T, D)} of ``site`` for blocks ``layers`` (1-based), the pass stopped right
    after the deepest part needed."""
    from probe.features.models.architecture import (
        StopForward,
        base_model,
        find_blocks,
        run_until_stopped,
    )

    require_site(model, site)
    blocks = find_blocks(model)
    layers = [int(x) for x in layers]
    if min(layers) < 1 or max(layers) > len(blocks):
        raise ProbeError(f"--site {site} reads layers 1..{len(blocks)} (layer 0 has no {site})")
    top = max(layers)
    captured: dict[int, object] = {}
    block_in: dict[int, object] = {}
    handles = []

    def keep(layer, add_input=False):
        def hook(module, args, output):
            value = _first(output)
            captured[layer] = block_in.pop(layer) + value if add_input else value
            if layer == top:
                raise StopForward

        return hook

    def remember(layer):
        def hook(module, args, kwargs):
            block_in[layer] = _block_input(args, kwargs)

        return hook

    for layer in layers:
        block = blocks[layer - 1]
        attn, mlp = sublayers(block)
        if site == "mlp":
            handles.append(mlp.register_forward_hook(keep(layer)))
        else:
            handles.append(attn.register_forward_hook(keep(layer, site == "resid_mid")))
            if site == "resid_mid":
                handles.append(block.register_forward_pre_hook(remember(layer), with_kwargs=True))
    run_until_stopped(base_model(model), input_ids, attention_mask, handles)
    return {layer: captured[layer] for layer in layers}
