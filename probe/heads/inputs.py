"""What a feature matrix goes through before any solver sees it: checks and standardisation.

Cut from the estimator because every head (one matrix, a streamed file, a layer mix) must
treat bad values and constant columns alike: a NaN is one line naming how many, and a
constant column gets scale 1 (as in scikit-learn's StandardScaler), never unit variance.
"""

from __future__ import annotations

import numpy as np

from probe.errors import ProbeError
from probe.heads.maths import constant_columns


class InvalidTrainingData(ProbeError, ValueError):
    """Bad training data: a ``ProbeError`` for the CLI, a ``ValueError`` for scikit-learn."""


def check_finite(X: np.ndarray, what: str) -> None:
    """NaN or inf in features: one line naming how many, before any arithmetic."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(X.sum(dtype=np.float64)):  # one pass, no (N, D) mask, when all is well
            return
    finite = np.isfinite(X)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        rows = int(np.count_nonzero(~finite.all(axis=1)))
        raise InvalidTrainingData(
            f"{what} contains {bad} non-finite values (NaN or inf) in {rows} rows; "
            "drop or repair those rows"
        )


def standardise(X: np.ndarray, copy: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(standardised float32 X, centre, scale): what ``mean_`` and ``scale_`` hold.

    A float64-accumulated column sum gives the mean, rounded to float32: the centre
    actually subtracted, so ``decision_function`` centres exactly as training did. Then, in
    row blocks that stay in cache, each block is centred and its squares summed (float32
    within a block, float64 across blocks): the variance from centred values keeps the
    precision of columns whose mean is large next to their spread (hidden states have such
    outlier dimensions). Constant columns get scale 1, as in scikit-learn's StandardScaler.
    With ``copy=False`` a writable float32 X is overwritten: on 67k x 576 a fresh copy costs
    more than the arithmetic (page faults).
    """
    n = len(X)
    centre = (X.sum(axis=0, dtype=np.float64) / n).astype(np.float32)  # (D,)
    in_place = not copy and X.dtype == np.float32 and X.flags.writeable and X.flags.c_contiguous
    out = X if in_place else np.empty(X.shape, np.float32)  # (N, D)
    offset = np.zeros(X.shape[1])  # what is left of the mean after centring: ~1e-7 of it
    squares = np.zeros(X.shape[1])
    for start in range(0, n, 4096):
        block = np.subtract(
            X[start : start + 4096], centre, out=out[start : start + 4096], dtype=np.float32
        )
        offset += block.sum(axis=0, dtype=np.float64)
        squares += np.einsum("ij,ij->j", block, block)
    offset /= n
    scale = np.sqrt(np.maximum(squares / n - offset**2, 0.0))
    if not (np.isfinite(scale).all() and np.isfinite(centre).all()):
        raise InvalidTrainingData("feature values too large for float32 (|x| > 3e38)")
    # constant: no spread, or less than float32 can hold next to the mean (rounding)
    scale = np.where(constant_columns(scale, centre), 1.0, scale)
    out /= scale.astype(np.float32)
    return out, centre.astype(np.float64), scale
