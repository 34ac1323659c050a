"""Directions in the residual stream: a head's own, random ones of the same norm, and erasers.

Everything here is numpy on raw hidden states (no standardisation): a head's weights are
folded back to the space the backbone computes in (``probe.heads.maths.folded_weights``), so
the vector added inside the model is the one the head reads. An eraser is an affine map
``x - (x - bias) M^T`` that leaves every class with the same mean, which is what makes a
linear probe no better than chance (linear guardedness): LEACE from EleutherAI's
``concept-erasure`` where it is installed (the least-squares-smallest such change), else the
orthogonal projection out of the span of the class-mean differences (the same guarantee, a
larger change of the representation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.errors import ProbeError

DEFAULT_ALPHAS = (-8.0, -4.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
LEACE = "leace (concept-erasure)"
MEAN_DIFFERENCE = "class-mean difference projection (concept-erasure is not installed)"


def parse_alphas(text: str) -> tuple[float, ...]:
    """``"-2,0,1.5"`` -> (-2.0, 0.0, 1.5); anything that is not a finite number is one line."""
    alphas = []
    for part in str(text).split(","):
        try:
            value = float(part.strip())
        except ValueError:
            raise ProbeError(f"--alphas: {part.strip()!r} is not a number") from None
        if not np.isfinite(value):
            raise ProbeError(f"--alphas: {part.strip()!r} is not a finite number")
        alphas.append(value)
    return tuple(sorted(set(alphas)))


def head_direction(classifier, target: str | None = None, features=None) -> tuple[np.ndarray, str]:
    """(unit vector (D,), the class it points to) of a fitted classifier, in raw feature space.

    Binary heads point to their second class (the one ``coef_`` favours) unless ``target``
    names the first (then the vector flips). A K-class head points from the mean of the class
    logits to ``target``'s (default its first class): ``w_target - mean_k w_k``.

    With ``features`` (N, D: clean rows at the head's layer) the direction is the head's
    activation pattern ``Cov(X) w`` (Haufe et al., 2014) rather than its weights ``w``: the
    direction along which the rows the head scores high differ from the rest. The weights of a
    standardised head lean on low-variance dimensions (a weight is divided by its column's
    scale), where they mostly cancel noise; pushing the residual stream along them moves it
    far out of its range. The pattern is where the concept lives in the stream.
    """
    from probe.heads.maths import folded_weights

    classes = [str(c) for c in classifier.classes_]
    weight, _ = folded_weights(
        classifier.coef_, classifier.intercept_, classifier.mean_, classifier.scale_
    )  # (K', D)
    if target is not None and str(target) not in classes:
        raise ProbeError(f"--target {target!r} is not a class of the head ({', '.join(classes)})")
    if weight.shape[0] == 1:
        target = classes[1] if target is None else str(target)
        vector = weight[0] if target == classes[1] else -weight[0]
    else:
        target = classes[0] if target is None else str(target)
        vector = weight[classes.index(target)] - weight.mean(axis=0)
    if features is not None:
        centred = np.asarray(features, np.float64) - np.mean(features, axis=0)
        vector = centred.T @ (centred @ vector) / max(len(centred) - 1, 1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ProbeError("the head's weights are all zero: it has no direction to change")
    return vector / norm, target


def random_directions(dim: int, seeds) -> np.ndarray:
    """(len(seeds), dim) unit vectors, uniform on the sphere; seed s always draws the same."""
    rows = [np.random.default_rng(int(seed)).standard_normal(dim) for seed in seeds]
    vectors = np.asarray(rows, np.float64).reshape(len(rows), dim)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def typical_norm(norms) -> float:
    """The median L2 norm of the hidden states at the positions changed: alpha's unit."""
    norms = np.asarray(norms, np.float64)
    norms = norms[np.isfinite(norms)]
    if not len(norms) or float(np.median(norms)) <= 0.0:
        raise ProbeError("the hidden states at the head's layer have no norm to scale by")
    return float(np.median(norms))


# --- erasure ------------------------------------------------------------------------------


@dataclass
class Eraser:
    """``x -> x - (x - bias) @ matrix.T``: an affine map that removes a concept."""

    matrix: np.ndarray  # (D, D): what is removed, before it is subtracted
    bias: np.ndarray  # (D,)
    rank: int
    method: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return x - (x - self.bias) @ self.matrix.T


def fit_eraser(features: np.ndarray, labels) -> Eraser:
    """The eraser of ``labels`` from ``features`` (N, D): LEACE, or the mean-difference
    projection where concept-erasure is not installed. Fitted on features scaled to unit
    typical norm (the projection is the same at any scale; the solver's tolerances are not)."""
    x = np.asarray(features, np.float64)
    codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)[1]
    if codes.max(initial=0) < 1:
        raise ProbeError("erasure needs rows of two classes at least")
    onehot = np.eye(int(codes.max()) + 1)[codes]
    scale = float(np.median(np.linalg.norm(x, axis=1))) or 1.0
    try:
        from concept_erasure import LeaceEraser
    except ImportError:
        return _mean_difference_eraser(x, codes)
    import torch

    fitted = LeaceEraser.fit(
        torch.from_numpy(x / scale), torch.from_numpy(onehot), svd_tol=1e-6
    )  # a concept of K one-hot columns: rank K-1 at most
    left = fitted.proj_left.numpy().astype(np.float64)  # (D, K): truncated columns are zero
    right = fitted.proj_right.numpy().astype(np.float64)  # (K, D)
    rank = int((np.linalg.norm(left, axis=0) > 1e-9).sum())
    bias = fitted.bias.numpy().astype(np.float64) * scale
    return Eraser(left @ right, bias, rank, LEACE)


def _mean_difference_eraser(x: np.ndarray, codes: np.ndarray) -> Eraser:
    """Project out the span of (class mean - overall mean): every class mean becomes the
    overall mean."""
    centre = x.mean(axis=0)
    differences = np.stack([x[codes == k].mean(axis=0) - centre for k in np.unique(codes)])
    basis, singular, _ = np.linalg.svd(differences.T, full_matrices=False)  # (D, K)
    basis = basis[:, singular > 1e-10 * max(float(singular.max(initial=0.0)), 1e-300)]
    return Eraser(basis @ basis.T, centre, basis.shape[1], MEAN_DIFFERENCE)


def random_eraser(eraser: Eraser, seed: int) -> Eraser:
    """Project out a random subspace of the same rank through the same point (orthogonally)."""
    dim = eraser.matrix.shape[0]
    rng = np.random.default_rng(int(seed))
    basis, _ = np.linalg.qr(rng.standard_normal((dim, max(eraser.rank, 1))))
    return Eraser(basis @ basis.T, eraser.bias, eraser.rank, "random subspace")
