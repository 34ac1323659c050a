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
    """The pool name, or a one-line error naming the choices."""
    from probe.errors import ProbeError

    if pool not in POOL_NAMES and pool not in WORD_ONLY_POOLS:
        raise ProbeError(f"unknown pool '{pool}'; choose {' or '.join(POOL_NAMES)}")
    return pool
