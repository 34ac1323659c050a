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


def test_batches_are_sized_by_tokens_alone():
    """Short texts on a large budget: one batch of 5,000, not ten capped at 512."""
    lengths = np.full(5000, 4)
    batches = length_sorted_batches(lengths, token_budget=1 << 20)
    assert [len(b) for b in batches] == [5000]
    capped = length_sorted_batches(lengths, token_budget=1 << 20, max_batch_size=512)
    assert max(len(b) for b in capped) <= 512


@pytest.mark.parametrize("seed", range(3))
def test_wide_windows_cut_at_length_changes_within_budget(seed):
    """Budgets that allow batches wider than EXACT_WINDOW still cover every text once and
    keep each batch within the budget, with padding no worse than greedy filling."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 40, size=3000)
    budget = 40 * 2000
    batches = length_sorted_batches(lengths, budget)
    assert sorted(np.concatenate(batches).tolist()) == list(range(3000))
    assert all(len(b) * lengths[b].max() <= budget for b in batches)
    greedy = greedy_batches(lengths, budget, 10**9)
    ours = padded(lengths, batches) + BATCH_OVERHEAD_TOKENS * len(batches)
    assert ours <= padded(lengths, greedy) + BATCH_OVERHEAD_TOKENS * len(greedy)
