"""Length-sorted batching under a token budget, and right-padded collation.

Sorting by length before batching cuts padding from ~3x the real tokens (random batches of
32 on the SMS data) to ~1.03x; the caller restores the original order by index.
"""

from collections.abc import Sequence

import numpy as np

DEFAULT_TOKEN_BUDGET = 1024  # padded tokens per batch: fastest on CPU (benchmarks/results)


BATCH_OVERHEAD_TOKENS = 64  # fixed work per batch (kernel launches, pooling), in padded tokens


def length_sorted_batches(
    lengths: Sequence[int], token_budget: int = DEFAULT_TOKEN_BUDGET, max_batch_size: int = 256
) -> list[np.ndarray]:
    """Split example indices into batches of similar length.

    Each batch holds at most ``max_batch_size`` examples and at most ``token_budget`` padded
    tokens (batch size x its longest example); a single example longer than the budget gets
    a batch of its own. Batches are runs of the longest-first order, cut where the padded
    tokens plus ``BATCH_OVERHEAD_TOKENS`` per batch are least (dynamic programming over the
    cut points): on 1,000 SMS texts padding falls from 5.6% (filling each batch greedily) to
    2.7% for 3 more batches. Longest batches come first so that an out-of-memory error
    shows up at once, not at the end of a long run.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    longest = np.maximum(lengths[order], 1)
    n = len(order)
    cost = np.zeros(n + 1)  # cost[i]: the least padded tokens + overheads of order[i:]
    cut = np.zeros(n + 1, dtype=np.int64)  # where the batch starting at i ends
    for start in range(n - 1, -1, -1):
        size = max(1, min(max_batch_size, token_budget // int(longest[start])))
        ends = np.arange(start + 1, min(n, start + size) + 1)
        total = (ends - start) * longest[start] + BATCH_OVERHEAD_TOKENS + cost[ends]
        best = int(np.argmin(total[::-1]))  # on a tie, the larger batch
        cost[start], cut[start] = total[::-1][best], ends[::-1][best]
    batches: list[np.ndarray] = []
    start = 0
    while start < n:
        batches.append(order[start : cut[start]])
        start = int(cut[start])
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
