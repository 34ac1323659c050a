"""Pool a padded batch of hidden states into one vector per example.

Both pools read only real tokens, so padding side and pad id never change a stored number.
This module is the one registry of pool names every stage knows (sentence pools, word
pools, the token "pool" of token views, the default); it imports no torch, so code that only
reads a cache can use it.
"""

from __future__ import annotations

POOL_NAMES = ("last", "mean")  # sentence pools: every sentence view stores both
DEFAULT_POOL = "last"  # the one a causal model's whole text reaches
WORD_POOLS = ("first", "last", "mean")  # a word's subwords -> one vector (probe.features.words)
WORD_ONLY_POOLS = tuple(p for p in WORD_POOLS if p not in POOL_NAMES)  # ("first",)
TOKEN_POOL = "token"  # a token view's one dataset: every token its own row, nothing pooled
VIEW_POOLS = (*POOL_NAMES, *WORD_ONLY_POOLS, TOKEN_POOL)  # datasets a view file may hold


def last_token_index(attention_mask):
    """Position of the last real token of each row, for left or right padding.

    (B, T) -> (B,)
    """
    import torch

    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask.bool() * (positions + 1)).argmax(dim=1)


def pool_last(hidden, attention_mask):
    """Hidden state of the last real token: the only one a causal model let see the whole text.

    (B, T, D) -> (B, D)
    """
    import torch

    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last_token_index(attention_mask)]


def pool_mean(hidden, attention_mask):
    """Mask-weighted mean over real tokens, accumulated in fp32.

    (B, T, D) -> (B, D)
    """
    import torch

    weights = attention_mask.to(torch.float32).unsqueeze(-1)  # (B, T, 1)
    summed = (hidden.to(torch.float32) * weights).sum(dim=1)  # (B, D)
    return summed / weights.sum(dim=1).clamp(min=1.0)


POOLS = {"last": pool_last, "mean": pool_mean}
assert tuple(POOLS) == POOL_NAMES


def check_pool(pool: str) -> str:
    """The pool name, or a one-line error naming the choices (a position spec is one)."""
    from probe.errors import ProbeError

    if pool in POOL_NAMES or pool in WORD_ONLY_POOLS:
        return pool
    if pool.startswith(("index:", "marker:")) or pool in POSITION_POOLS:
        return check_position(pool)
    choices = f"{', '.join(POOL_NAMES)}, {', '.join(POSITION_POOLS)}, index:K or marker:TEXT"
    raise ProbeError(f"unknown pool '{pool}'; choose {choices}")


# --- positions beyond last and mean (``probe extract --position``) -------------------------
#
# A position is one more pool, stored only when asked for (the row setting then names every
# pool it holds, so the default rows keep their key): ``first`` (the first real token, the
# [CLS] of an encoder), ``max`` (elementwise max over real tokens), ``index:K`` (the K-th
# token, K < 0 counting from the end: index:-1 is last) and ``marker:TEXT`` (the last token
# of the last occurrence of TEXT in the prompted text, found through the tokenizer's
# character offsets: e.g. the token before the answer of a question-answer template).

POSITION_POOLS = ("first", "max")  # the positions that take no argument


def check_position(spec: str) -> str:
    """A position spec in its one spelling (``index:+2`` -> ``index:2``), or a one-line
    error. A marker is taken as given (spaces count); it may not hold '/' (an HDF5 name)."""
    from probe.errors import ProbeError

    spec = str(spec)
    if spec in POOL_NAMES or spec in POSITION_POOLS:
        return spec
    kind, _, argument = spec.partition(":")
    if kind == "index":
        try:
            return f"index:{int(argument)}"
        except ValueError:
            raise ProbeError(f"index:K needs a whole number K, not {argument!r}") from None
    if kind == "marker":
        if not argument:
            raise ProbeError("marker:TEXT needs a text, e.g. marker:' Answer:'")
        if "/" in argument or argument == ".":
            raise ProbeError(f"a marker cannot hold '/' (it names a dataset): {argument!r}")
        return spec
    choices = f"{', '.join(POOL_NAMES + POSITION_POOLS)}, index:K or marker:TEXT"
    raise ProbeError(f"unknown position '{spec}'; choose {choices}")


def parse_positions(values) -> tuple[str, ...]:
    """``--position`` values -> the extra pools, in order, without repeats or the default
    two: each value is one ``marker:TEXT`` (commas and all) or a comma list of the others."""
    if isinstance(values, str):
        values = [values]
    specs: list[str] = []
    for value in values or ():
        parts = [value] if str(value).startswith("marker:") else str(value).split(",")
        specs += [check_position(p.strip()) for p in parts if p.strip()]
    return tuple(s for s in dict.fromkeys(specs) if s not in POOL_NAMES)


def is_indexed(spec: str) -> bool:
    """Whether a position is one token per text (picked by index) rather than a reduction."""
    return spec == "first" or spec.startswith(("index:", "marker:"))


def token_indices(spec: str, lengths, marker_ends=None):
    """int64 [N]: the token each text's ``spec`` reads (0 <= i < length), or a one-line
    error naming how many texts have no such token. ``marker_ends``: the marker's token
    per text (-1 where it never occurs), from ``probe.features.models.tokenize``."""
    import numpy as np

    from probe.errors import ProbeError

    lengths = np.asarray(lengths, dtype=np.int64)
    if spec == "first":
        return np.zeros(len(lengths), np.int64)
    if spec.startswith("marker:"):
        found = np.asarray(marker_ends, dtype=np.int64)
        if (found < 0).any():
            missing = int((found < 0).sum())
            raise ProbeError(
                f"{missing} of {len(found)} texts lack the marker {spec[7:]!r} "
                "(within --max-length); fix the prompt or the texts"
            )
        return found
    k = int(spec.split(":", 1)[1])
    index = lengths + k if k < 0 else np.full(len(lengths), k, np.int64)
    outside = (index < 0) | (index >= lengths)
    if outside.any():
        raise ProbeError(
            f"{int(outside.sum())} of {len(lengths)} texts are too short for {spec} "
            f"(the shortest has {int(lengths.min())} tokens)"
        )
    return index.astype(np.int64)


def pool_at(hidden, index):
    """The hidden state at one token per row (right padding: a token's index is its
    position). (B, T, D), (B,) -> (B, D)"""
    import torch

    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, index.to(hidden.device)]


def pool_max(hidden, attention_mask):
    """Elementwise max over real tokens. (B, T, D) -> (B, D)"""
    import torch

    real = attention_mask.bool().unsqueeze(-1)  # (B, T, 1)
    return hidden.masked_fill(~real, torch.finfo(hidden.dtype).min).amax(dim=1)


def pool_any(name: str, hidden, attention_mask, indices: dict | None = None):
    """Any pool by name: the default two, ``max``, or an indexed position whose per-row
    token ``indices[name]`` (B,) the caller computed (``token_indices``)."""
    if name in POOLS:
        return POOLS[name](hidden, attention_mask)
    if name == "max":
        return pool_max(hidden, attention_mask)
    return pool_at(hidden, indices[name])


def traced_pool(name: str, hidden, attention_mask):
    """``pool_any`` as one traceable graph (``probe export``): an indexed position is found
    from the mask (``index:K``, K < 0 from each row's end; clamped inside the row)."""
    import torch

    if name in POOLS or name == "max":
        return pool_any(name, hidden, attention_mask)
    if name == "first":
        return hidden[:, 0]
    k = int(name.split(":", 1)[1])
    lengths = attention_mask.long().sum(dim=1)  # (B,)
    index = lengths + k if k < 0 else torch.full_like(lengths, k)
    index = torch.minimum(index.clamp(min=0), lengths - 1)
    return pool_at(hidden, index)
