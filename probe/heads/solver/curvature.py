"""The preconditioner: the data term's Hessian estimated on a subsample, inverted with the penalty.

Cut from the path because it is the solver's one piece of linear algebra on (D+1)-square
matrices, and the part a C search can share: every fold of a search, and the final fit, see
the same standardised features, so one feature eigenbasis and one projected subsample
(``SharedSubsample``) serve them all, each path keeping the subsample rows it trains on.

Two classes: the exact subsample Hessian, (D+1) x (D+1), intercept last, by Cholesky. K
classes: the Hessian is a sum over rows of ``x x^T (kron) (diag(p) - p p^T)``, approximated
in one Kronecker eigenbasis (eigenvalue-corrected K-FAC, George et al. 2018): the feature
basis is the eigenbasis of the features' second moment, which hardly moves as the fit
proceeds, and only the scales (the exact diagonal of the subsample Hessian in that basis)
are renewed: O(m K D), no eigenproblem. Wide data (fewer rows than features) use a thin
basis from the m x m Gram matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.heads.maths import softmax
from probe.heads.solver.linalg import (
    cholesky_solver,
    feature_basis,
    robust_eigh,
    thin_gram_eigh,
    weighted_gram,
)

PRECONDITIONER_ROWS = 4096  # subsample on which the data term's Hessian is estimated


def subsample(n: int, seed: int) -> np.ndarray:
    """The sorted rows (at most ``PRECONDITIONER_ROWS``) a curvature estimate reads."""
    rows = np.random.default_rng(seed).permutation(n)[: min(n, PRECONDITIONER_ROWS)]
    return np.sort(rows)


@dataclass
class SharedSubsample:
    """A subsample of one standardised matrix in its feature eigenbasis, for every path of a
    fit: ``rows`` (m,) of X, ``basis`` (D+1, r), ``projected`` (m, r) squared float32; r = D+1,
    or r <= m for a wide subsample (a thin basis)."""

    rows: np.ndarray
    basis: np.ndarray
    projected: np.ndarray
    kept: np.ndarray | None = None  # bool (m,): the projected rows a fold reads; None: all

    @classmethod
    def of(cls, X: np.ndarray, seed: int) -> SharedSubsample:
        rows = subsample(len(X), seed)
        return cls.of_rows(rows, np.hstack([X[rows], np.ones((len(rows), 1), np.float32)]))

    @classmethod
    def for_fit(cls, X: np.ndarray, n_classes: int, seed: int) -> SharedSubsample | None:
        """K classes: one feature eigenbasis and projected subsample for every path of a fit
        (folds and the final fit share the standardised matrix), so a C search pays for one
        eigenproblem and one projection, not six. None for two classes (the exact subsample
        Hessian), wide data (a thin basis per path) or a failed estimate (each path meets
        it, and falls back)."""
        n, dim = X.shape
        if n_classes <= 2 or min(n, PRECONDITIONER_ROWS) < dim + 1:
            return None
        try:
            with np.errstate(all="ignore"):
                return cls.of(X, seed)
        except (ArithmeticError, ValueError):
            return None

    @classmethod
    def of_rows(cls, rows, augmented: np.ndarray) -> SharedSubsample:
        """From the subsample itself (m, D+1), ones last. Fewer rows than features (a wide
        subsample): a thin basis of the rows' span, (D+1, r), r <= m, from the m x m Gram
        matrix; the penalty alone bends off it."""
        if len(augmented) < augmented.shape[1]:
            basis = thin_gram_eigh(augmented, np.ones(len(augmented), np.float32))[1]
        else:
            basis = feature_basis(augmented)
        return cls(rows, basis, np.square(augmented @ basis.astype(np.float32)))

    def within(self, train_rows: np.ndarray) -> SharedSubsample:
        """The part of the subsample among ``train_rows`` (sorted rows of X), its rows
        renumbered as positions in ``X[train_rows]``: what a fold's path reads. The projected
        rows are not copied (9 MB a fold at 4,096 x 577): ``kept`` marks the fold's."""
        kept = np.isin(self.rows, train_rows)
        local = np.searchsorted(train_rows, self.rows[kept])
        return SharedSubsample(local, self.basis, self.projected, kept)


def estimate(sub, Z, weight, binary: bool, shared: SharedSubsample | None):
    """The data term's Hessian on the subsample (rows ``sub`` (m, D), logits ``Z`` (m, K'),
    weights summing to ~1 over the whole matrix): (D+1, D+1) for two classes and more rows
    than features; otherwise (scales (K', r), feature basis (D+1, r), class basis (K', K'),
    the class direction that changes nothing or None)."""
    from scipy.special import expit

    augmented = np.hstack([sub, np.ones((len(sub), 1), np.float32)])  # (m, D+1)
    wide = len(sub) < augmented.shape[1]
    if binary:
        p = expit(Z[:, 0])
        rows = (weight * p * (1.0 - p)).astype(np.float32)
        if not wide:
            return weighted_gram(augmented, rows)
        feature_values, feature_vectors = thin_gram_eigh(augmented, rows)
        return feature_values[None, :], feature_vectors, np.ones((1, 1)), None
    p = softmax(Z)  # (m, K)
    coupling = np.diag(weight @ p) - (p * weight[:, None]).T @ p  # (K, K)
    class_values, class_vectors = robust_eigh(coupling)
    null_class = int(np.argmin(np.abs(class_values)))
    if shared is None:  # the path keeps what it is given; a one-off estimate builds its own
        shared = SharedSubsample.of_rows(None, augmented)
    # each row's curvature along each class vector: u^T (diag(p) - p p^T) u, (m, K)
    along_class = (p @ np.square(class_vectors) - np.square(p @ class_vectors)) * weight[:, None]
    if shared.kept is not None:  # a fold: the other rows of the shared subsample weigh 0
        spread = np.zeros((len(shared.kept), along_class.shape[1]))
        spread[shared.kept] = along_class
        along_class = spread
    scales = along_class.T.astype(np.float32) @ shared.projected
    return np.maximum(scales.astype(np.float64), 0.0), shared.basis, class_vectors, null_class


def inverse(curvature, lam: float, dim: int):
    """``q -> (H + lam I)^-1 q`` for q (K', D+1) (intercept column not penalised), H the
    estimate ``estimate`` returned."""
    if not isinstance(curvature, tuple):  # two classes, more rows than features
        penalty = np.full(dim + 1, lam)
        penalty[-1] = 0.0  # the intercept is not penalised
        return cholesky_solver(curvature + np.diag(penalty))
    scales, feature_vectors, class_vectors, null_class = curvature
    # (K', r); lam > 0 keeps it positive. The all-ones class direction changes no
    # prediction: the solve never moves along it (a row of zeros, not 1 / inf, since a
    # constant column's eigenvalue 0 would make that inf * 0 = NaN)
    inverse_scales = 1.0 / (scales + lam)
    rest = np.full((len(scales), 1), 1.0 / lam)  # the null space of a thin basis
    if null_class is not None:
        inverse_scales[null_class] = 0.0
        rest[null_class] = 0.0
    thin = feature_vectors.shape[1] < feature_vectors.shape[0]

    def solve(q: np.ndarray) -> np.ndarray:
        rotated = class_vectors.T @ q  # (K', D+1)
        projected = rotated @ feature_vectors  # (K', r)
        result = (projected * inverse_scales) @ feature_vectors.T
        if thin:  # eigenvalue 0 off the basis: only the penalty bends there
            result += (rotated - projected @ feature_vectors.T) * rest
        return class_vectors @ result

    def quadratic(q: np.ndarray) -> float:
        """``q . solve(q)`` at half the cost: one projection, none back."""
        rotated = class_vectors.T @ q
        projected = rotated @ feature_vectors
        value = float(np.sum(projected * projected * inverse_scales))
        if thin:
            off_basis = rotated - projected @ feature_vectors.T
            value += float(np.sum(off_basis * off_basis * rest))
        return value

    solve.quadratic = quadratic
    return solve
