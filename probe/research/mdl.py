"""MDL probing, online code (Voita & Titov 2020): how few bits the labels take given a layer.

Accuracy saturates; codelength does not. The training rows are put in a fixed random order
and cut at 0.1, 0.2, 0.4, ..., 50, 100% of their number. The first block is sent with the
uniform code (log2 K bits per label); each later block is sent with a probe fitted on
everything before it, at -log2 p(label) bits per label. A layer whose labels are easy to
learn from few examples compresses well. ``compression`` = uniform / online codelength.
With groups (equal texts, ``--group-col``, the sentence of a word) the order shuffles whole
groups and every cut falls between two groups: a group is never both in a prefix and in the
block it encodes, or a repeated text would be sent for free.

Each block's probe chooses its own regularisation from its own prefix, as Voita & Titov's
probes stop early on their own held-out part: the C grid is scored by log loss (the
codelength's own measure) on held-out parts of the (shuffled) prefix (5-fold inside prefixes
under 1,000 rows, the last 20% above), and the probe is then refitted on the whole prefix at
that C. A C chosen on all the data would leak the labels
into the code and, at the large C a full training set likes, make 2-row prefixes send their
labels at many times the uniform cost. A prefix too small to hold out a class-covering part
takes the smallest C (close to the prefix's class frequencies). While a class is absent from
the prefix, the probe's prediction is mixed with the uniform code at weight 1 / (prefix + 1)
(the escape probability of PPM's method A; at least ``UNSEEN_MASS``), so a class first seen
late costs a few bits, not infinitely many.
"""

from __future__ import annotations

import math

import numpy as np

FRACTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)
UNSEEN_MASS = 1e-3
HELD_FRACTION = 0.2  # of a large prefix, held out to choose that block's C
CV_BELOW, CV_FOLDS = 1000, 5  # smaller prefixes choose C by 5-fold cross-validation


def block_ends(n: int, fractions=FRACTIONS, boundaries=None) -> list[int]:
    """Increasing prefix sizes (at least 1 row in the first block; duplicates dropped),
    each moved up to the next of ``boundaries`` (where a group starts; default: any row)."""
    ends = []
    for fraction in fractions:
        end = snap(min(n, max(1, int(round(fraction * n)))), boundaries)
        if not ends or end > ends[-1]:
            ends.append(end)
    return ends


def snap(position: int, boundaries=None) -> int:
    """The first of ``boundaries`` (sorted positions, the last one n) at or after
    ``position``; ``position`` itself without boundaries."""
    if boundaries is None:
        return int(position)
    return int(boundaries[np.searchsorted(boundaries, position)])


def group_order(n: int, groups, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(row order, group boundaries in it): rows shuffled (seeded), whole groups together
    when there are ``groups``; boundaries None without."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.permutation(n), None
    _, group_of = np.unique(np.asarray(groups), return_inverse=True)
    rank = rng.permutation(int(group_of.max()) + 1)[group_of.reshape(-1)]
    order = np.argsort(rank, kind="stable")
    starts = np.flatnonzero(np.diff(rank[order], prepend=-1))
    return order, np.append(starts, n)


def choose_block_C(X: np.ndarray, codes: np.ndarray, grid, boundaries=None) -> float:
    """The C of the grid with the lowest held-out log loss inside one prefix.

    Prefixes under ``CV_BELOW`` rows hold out each of ``CV_FOLDS`` contiguous parts in turn
    (a single small held-out part picks C by noise); larger ones hold out their last
    ``HELD_FRACTION``. The smallest C when no part can be held out (one class left to fit).
    Parts begin and end at ``boundaries`` (group starts within the prefix) when given.
    """
    grid = sorted(float(c) for c in grid)
    n = len(codes)
    if len(grid) == 1:
        return grid[0]
    if n < CV_BELOW:
        even = np.linspace(0, n, min(CV_FOLDS, n) + 1).astype(int)
        bounds = [snap(b, boundaries) for b in even]
        parts = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    else:
        start = snap(n - max(1, int(round(HELD_FRACTION * n))), boundaries)
        parts = [np.arange(start, n)] if start < n else []
    total, counted = np.zeros(len(grid)), 0
    for held in parts:
        losses = _held_out_log_loss(X, codes, held, grid)
        if losses is not None:
            total += losses * len(held)
            counted += 1
    return grid[int(np.argmin(total))] if counted else grid[0]


def _held_out_log_loss(X, codes, held: np.ndarray, grid) -> np.ndarray | None:
    """Mean log loss per C on the rows ``held`` of a probe fitted on the others (None when
    the others hold one class); held rows of classes the others lack are dropped."""
    from probe.heads.estimator import ProbeClassifier

    fit = np.setdiff1d(np.arange(len(codes)), held)
    known = held[np.isin(codes[held], codes[fit])]
    if len(np.unique(codes[fit])) < 2 or not len(known):
        return None
    search = ProbeClassifier(Cs=grid).fit(X[fit], codes[fit], X[known], codes[known]).search_
    losses = np.full(len(grid), np.inf)  # Cs past an early stop (the loss had turned up)
    losses[: len(search["log_loss"])] = search["log_loss"]
    return losses


def online_codelength(
    X: np.ndarray, labels: np.ndarray, *, Cs=None, seed: int = 0, fractions=FRACTIONS, groups=None
) -> dict:
    """Online and uniform codelength (bits) of ``labels`` given ``X``; see the module doc.

    ``Cs`` is the grid every block chooses its C from (default: the probe's grid);
    ``groups`` (one id per row, or None) are kept whole: in one block, never split by a cut.
    """
    from probe.heads.estimator import DEFAULT_CS, ProbeClassifier

    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    k, n = len(classes), len(codes)
    order, boundaries = group_order(n, groups, seed)
    X, codes = X[order], codes[order]
    ends = block_ends(n, fractions, boundaries)
    uniform_bits = n * math.log2(k)
    blocks = [{"end": ends[0], "bits": ends[0] * math.log2(k), "code": "uniform"}]
    for start, end in zip(ends[:-1], ends[1:], strict=True):
        seen = np.unique(codes[:start])
        if len(seen) < 2:  # one class so far: nothing to fit, send with the uniform code
            blocks.append({"end": end, "bits": (end - start) * math.log2(k), "code": "uniform"})
            continue
        inside = None if boundaries is None else boundaries[boundaries <= start]
        C = choose_block_C(X[:start], codes[:start], Cs or DEFAULT_CS, inside)
        classifier = ProbeClassifier(C=C).fit(X[:start], codes[:start])
        probabilities = np.zeros((end - start, k))
        probabilities[:, classifier.classes_] = classifier.predict_proba(X[start:end])
        if len(seen) < k:  # mix in the uniform code so unseen classes stay finite
            escape = max(UNSEEN_MASS, 1.0 / (start + 1))
            probabilities = (1 - escape) * probabilities + escape / k
        picked = probabilities[np.arange(end - start), codes[start:end]]
        bits = float(-np.log2(np.clip(picked, 1e-300, 1.0)).sum())
        blocks.append({"end": end, "bits": bits, "code": "probe", "C": C})
    online_bits = float(sum(block["bits"] for block in blocks))
    return {
        "mdl_online_bits": online_bits,
        "mdl_uniform_bits": float(uniform_bits),
        "mdl_compression": float(uniform_bits / online_bits) if online_bits > 0 else None,
        "mdl_blocks": blocks,
    }
