"""Head maths: the formulas every part of a head shares, in one home.

Which columns count as constant (scale 1), the standardisation folded into the weights, how
a C search picks its C, probabilities from logits and the held-out score the search compares.
Numpy only, imported by the solver, the estimator, streaming, mixing, serving and fine-tuning,
so none of them writes these again (and two copies can never drift apart).
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


def constant_columns(spread: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """bool (D,): columns with no spread, or less than float32 can hold next to the column's
    mean (rounding, not signal). They get scale 1, as in scikit-learn's StandardScaler, so a
    constant column stays constant instead of being blown up to unit variance."""
    spread = np.asarray(spread, np.float64)
    centre = np.asarray(centre, np.float64)
    return (spread < 10 * np.finfo(np.float64).eps) | (
        spread <= 8 * np.finfo(np.float32).eps * np.abs(centre)
    )


def folded_weights(coef, intercept, mean=None, scale=None) -> tuple[np.ndarray, np.ndarray]:
    """(W (K', D), b (K',)) float64 on raw features, the standardisation folded in.

    A head computes ``((x - mean) / scale) coef^T + intercept``, which is
    ``x (coef / scale)^T + (intercept - (mean / scale) coef^T)``: one linear map, what
    ``decision_function``, the ONNX graph and a fine-tuning head that starts at the probe
    apply. No ``mean``/``scale``: the features are used as they are.
    """
    coef = np.atleast_2d(np.asarray(coef, np.float64))  # (K', D)
    intercept = np.asarray(intercept, np.float64).reshape(-1)  # (K',)
    dim = coef.shape[1]
    mean = np.zeros(dim) if mean is None else np.asarray(mean, np.float64)
    scale = np.ones(dim) if scale is None else np.asarray(scale, np.float64)
    weight = coef / scale  # (K', D)
    bias = intercept - (mean / scale) @ coef.T  # (K',)
    return weight, bias


def pick_C(grid, scores) -> float:
    """The C a search chooses from held-out (accuracy, log loss) per C tried (``scores``
    (n, 2), for ``grid[:n]``): the lowest held-out log loss, a proper scoring rule (ties, to
    12 decimals, go to the smaller C).

    Not accuracy: on small or separable data several Cs tie at full accuracy, and the
    smallest of them gives near-uniform probabilities (4 classes, 120 texts: C = 1e-4 at
    cross-validated accuracy 1.0 and log loss 1.19); log loss prefers the C whose
    probabilities are right, and is what ``LogisticRegressionCV(scoring="neg_log_loss")``
    picks on the same grid and folds.
    """
    scores = np.asarray(scores, np.float64)
    best = min(range(len(scores)), key=lambda i: (round(scores[i, 1], 12), i))
    return grid[best]
