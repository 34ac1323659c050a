"""Head maths: the formulas every part of a head shares, in one home.

Probabilities from logits, the held-out score a C search compares. Numpy only, imported by
the solver, the estimator, streaming, mixing and serving, so each writes none of them again.
"""

from __future__ import annotations

import numpy as np


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, K) logits (scipy's carries array-API overhead per call)."""
    exp = np.exp(Z - Z.max(axis=1, keepdims=True))
    exp /= exp.sum(axis=1, keepdims=True)
    return exp


def logsumexp(Z: np.ndarray) -> np.ndarray:
    top = Z.max(axis=1)
    return top + np.log(np.exp(Z - top[:, None]).sum(axis=1))


def accuracy_and_log_loss(logits: np.ndarray, codes: np.ndarray, binary: bool) -> tuple:
    """logits (n, K') -> (accuracy, mean log loss)."""
    from scipy.special import log_expit

    if binary:
        z = logits[:, 0]
        predicted = (z > 0).astype(int)
        log_p = log_expit(np.where(codes == 1, z, -z))
    else:
        predicted = logits.argmax(axis=1)
        log_p = logits[np.arange(len(codes)), codes] - logsumexp(logits)
    return float(np.mean(predicted == codes)), float(-log_p.mean())
