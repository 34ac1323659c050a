"""MDL probing, online code (Voita & Titov 2020): how few bits the labels take given a layer.

Accuracy saturates; codelength does not. The training rows are put in a fixed random order
and cut at 0.1, 0.2, 0.4, ..., 50, 100% of their number. The first block is sent with the
uniform code (log2 K bits per label); each later block is sent with a probe fitted on
everything before it, at -log2 p(label) bits per label. A layer whose labels are easy to
learn from few examples compresses well. ``compression`` = uniform / online codelength.

One fixed C (the row's) keeps this to ~10 fits per row. A class absent from a prefix gets
a little of the uniform code's mass (``UNSEEN_MASS``), so no label costs infinitely many bits.
"""

from __future__ import annotations

import math

import numpy as np

FRACTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)
UNSEEN_MASS = 1e-3


def block_ends(n: int, fractions=FRACTIONS) -> list[int]:
    """Increasing prefix sizes (at least 1 row in the first block; duplicates dropped)."""
    ends = []
    for fraction in fractions:
        end = min(n, max(1, int(round(fraction * n))))
        if not ends or end > ends[-1]:
            ends.append(end)
    return ends


def online_codelength(
    X: np.ndarray, labels: np.ndarray, *, C: float = 1.0, seed: int = 0, fractions=FRACTIONS
) -> dict:
    """Online and uniform codelength (bits) of ``labels`` given ``X``; see the module doc."""
    from probe.heads.estimator import ProbeClassifier

    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    k, n = len(classes), len(codes)
    order = np.random.default_rng(seed).permutation(n)
    X, codes = X[order], codes[order]
    ends = block_ends(n, fractions)
    uniform_bits = n * math.log2(k)
    blocks = [{"end": ends[0], "bits": ends[0] * math.log2(k), "code": "uniform"}]
    for start, end in zip(ends[:-1], ends[1:], strict=True):
        seen = np.unique(codes[:start])
        if len(seen) < 2:  # one class so far: nothing to fit, send with the uniform code
            blocks.append({"end": end, "bits": (end - start) * math.log2(k), "code": "uniform"})
            continue
        classifier = ProbeClassifier(C=C).fit(X[:start], codes[:start])
        probabilities = np.zeros((end - start, k))
        probabilities[:, classifier.classes_] = classifier.predict_proba(X[start:end])
        if len(seen) < k:  # mix in the uniform code so unseen classes stay finite
            probabilities = (1 - UNSEEN_MASS) * probabilities + UNSEEN_MASS / k
        picked = probabilities[np.arange(end - start), codes[start:end]]
        bits = float(-np.log2(np.clip(picked, 1e-300, 1.0)).sum())
        blocks.append({"end": end, "bits": bits, "code": "probe"})
    online_bits = float(sum(block["bits"] for block in blocks))
    return {
        "mdl_online_bits": online_bits,
        "mdl_uniform_bits": float(uniform_bits),
        "mdl_compression": float(uniform_bits / online_bits) if online_bits > 0 else None,
        "mdl_blocks": blocks,
    }
