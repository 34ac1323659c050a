"""Length-sorted batching under a token budget, and right-padded collation.

Sorting by length before batching cuts padding from ~3x the real tokens (random batches of
32 on the SMS data) to ~1.03x; the caller restores the original order by index.
"""

from collections.abc import Sequence

import numpy as np

DEFAULT_TOKEN_BUDGET = 1024  # padded tokens per batch: fastest on CPU (benchmarks/results)


BATCH_OVERHEAD_TOKENS = 64  # fixed work per batch (kernel launches, pooling), in padded tokens


EXACT_WINDOW = 512  # batch sizes up to this are cut exactly; larger ones at length changes


def length_sorted_batches(
    lengths: Sequence[int],
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_batch_size: int | None = None,
) -> list[np.ndarray]:
    """Split example indices into batches of similar length.

    Each batch holds at most ``token_budget`` padded tokens (batch size x its longest
    example; a single example longer than the budget gets a batch of its own) and, if given,
    at most ``max_batch_size`` examples: sized by tokens alone, short texts on a large GPU
    fill it. Batches are runs of the longest-first order, cut where the padded tokens plus
    ``BATCH_OVERHEAD_TOKENS`` per batch are least (dynamic programming over the cut points;
    where a batch could hold more than ``EXACT_WINDOW`` texts only cuts where the length
    changes, or at the budget, are tried, so the work stays ~N x distinct lengths): on
    1,000 SMS texts padding falls from 5.6% (filling each batch greedily) to 2.7% for 3 more
    batches. Longest batches come first so that an out-of-memory error shows up at once.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    longest = np.maximum(lengths[order], 1)
    n = len(order)
    limit = max_batch_size or n or 1
    changes = np.append(np.flatnonzero(np.diff(longest) != 0) + 1, n)  # run ends, ascending
    cost = np.zeros(n + 1)  # cost[i]: the least padded tokens + overheads of order[i:]
    cut = np.zeros(n + 1, dtype=np.int64)  # where the batch starting at i ends
    for start in range(n - 1, -1, -1):
        size = max(1, min(limit, token_budget // int(longest[start])))
        last = min(n, start + size)
        if last - start <= EXACT_WINDOW:
            ends = np.arange(start + 1, last + 1)
        else:
            inside = changes[np.searchsorted(changes, start + 1) : np.searchsorted(changes, last)]
            ends = np.append(inside[inside < last], last)
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
