"""Length-sorted batching: every text once, within the budget, and little padding."""

from __future__ import annotations

import numpy as np
import pytest

from probe.features.batching import BATCH_OVERHEAD_TOKENS, length_sorted_batches


def greedy_batches(lengths, budget, max_size):
    """Fill each batch as far as the budget allows, longest first: the previous rule."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, start = [], 0
    while start < len(order):
        size = max(1, min(max_size, budget // max(int(lengths[order[start]]), 1)))
        batches.append(order[start : start + size])
        start += size
    return batches


def padded(lengths, batches):
    return sum(len(b) * int(lengths[b].max()) for b in batches)


@pytest.mark.parametrize("seed", range(6))
def test_batches_cover_every_text_once_within_budget_and_pad_no_more_than_greedy(seed):
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([rng.integers(1, 60, 400), rng.integers(200, 900, 5), [1, 1, 1]])
    budget, max_size = 1024, 64
    batches = length_sorted_batches(lengths, budget, max_size)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= max_size
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= budget
    longest = [int(lengths[b].max()) for b in batches]
    assert longest == sorted(longest, reverse=True)  # longest first: an OOM shows at once
    greedy = greedy_batches(lengths, budget, max_size)

    def cost(found):
        return padded(lengths, found) + BATCH_OVERHEAD_TOKENS * len(found)

    assert cost(batches) <= cost(greedy)  # the cut points are optimal, greedy's are feasible


def test_texts_longer_than_the_budget_get_a_batch_each():
    lengths = np.array([5000, 3000, 10, 10])
    batches = length_sorted_batches(lengths, 1024, 256)
    assert [b.tolist() for b in batches[:2]] == [[0], [1]]
    assert sorted(batches[2].tolist()) == [2, 3]


def test_no_texts_no_batches():
    assert length_sorted_batches([], 1024, 256) == []
