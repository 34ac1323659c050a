"""Length-sorted batching under a token budget, and right-padded collation.

Sorting by length before batching cuts padding from ~3x the real tokens (random batches of
32 on the SMS data) to ~1.05x; the caller restores the original order by index.
"""

from collections.abc import Sequence

import numpy as np

DEFAULT_TOKEN_BUDGET = 1024  # padded tokens per batch: fastest on CPU (benchmarks/results)


def length_sorted_batches(
    lengths: Sequence[int], token_budget: int = DEFAULT_TOKEN_BUDGET, max_batch_size: int = 256
) -> list[np.ndarray]:
    """Split example indices into batches of similar length.

    Each batch holds at most ``max_batch_size`` examples and at most ``token_budget`` padded
    tokens (batch size x its longest example); a single example longer than the budget gets
    a batch of its own. Longest batches come first so that an out-of-memory error shows up
    at once, not at the end of a long run.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_batch_size, token_budget // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def collate(token_ids: Sequence[Sequence[int]], pad_id: int, device="cpu"):
    """Right-pad token id lists into ``(input_ids, attention_mask)``, both (B, T) int64."""
    import torch

    width = max(max((len(ids) for ids in token_ids), default=1), 1)
    input_ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids.to(device), attention_mask.to(device)
