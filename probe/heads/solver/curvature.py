"""The preconditioner: the data term's Hessian estimated on a subsample, inverted with the penalty.

Cut from the path because it is the solver's one piece of linear algebra on feature-square
matrices, and the part a C search can share: every fold of a search, and the final fit, see
the same standardised features, so one feature eigenbasis and one projected subsample
(``SharedSubsample``) serve them all, each path keeping the subsample rows it trains on.

Two classes: the exact subsample Hessian, (D+1) x (D+1), intercept last, by Cholesky.

K classes: one Hessian block per class, ``sum_i c_ik x_i x_i^T`` with ``c_ik = w_i p_ik (1 -
p_ik)`` (the coupling between classes left out), each *sheared* by the class's curvature mean
``mu_k = sum_i c_ik x_i / s_k``: in coordinates ``(w_k, b_k + mu_k . w_k)`` the intercept
decouples from the weights, so it gets its exact curvature ``s_k`` and no penalty (the
penalty is unchanged by the shear). The weights' block, a covariance around ``mu_k``, is
dense on the basis's leading directions and diagonal (exact diagonal) on the rest. Why not
one Kronecker product (eigenvalue-corrected K-FAC, which this replaced): it gives every class
one feature covariance and penalised the intercept, which is wrong by 1/p for a class of
probability p; at 352 classes (country of a place) the intercepts of the rare ones then
crawled, and preconditioned CG on a Newton system needed 55 steps to 1e-3 against 21 with
these blocks (27 sheared but diagonal, 17 with the exact blocks); at 4, 17 and 51 classes
22, 30, 24 against 10, 14, 11.

Wide data (fewer rows than features) get a thin basis from the m x m Gram matrix; off it
only the penalty bends. Two wide classes take the class path with one "class".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from probe.heads.solver.linalg import cholesky_solver, feature_basis, weighted_gram

PRECONDITIONER_ROWS = 4096  # subsample on which the data term's Hessian is estimated
# the dense part of each class's block costs about this share of one pass over X to build:
# its size t follows from 2 m K t^2 = BLOCK_COST * 4 n D K
BLOCK_COST = 0.5


def subsample(n: int, seed: int) -> np.ndarray:
    """The sorted rows (at most ``PRECONDITIONER_ROWS``) a curvature estimate reads."""
    rows = np.random.default_rng(seed).permutation(n)[: min(n, PRECONDITIONER_ROWS)]
    return np.sort(rows)


@dataclass
class SharedSubsample:
    """A subsample of one standardised matrix in its feature eigenbasis, for every path of a
    fit: ``rows`` (m,) of X, ``basis`` (D, r) float64, orthonormal, leading directions
    first, ``projected`` (m, r) float32; r = D, or r <= m for a wide subsample (a thin basis)."""

    rows: np.ndarray
    basis: np.ndarray
    projected: np.ndarray
    kept: np.ndarray | None = None  # bool (m,): the projected rows a fold reads; None: all

    @classmethod
    def of(cls, X: np.ndarray, seed: int) -> SharedSubsample:
        rows = subsample(len(X), seed)
        sub = np.ascontiguousarray(X[rows], np.float32)
        basis = feature_basis(sub)
        return cls(rows, basis, sub @ basis.astype(np.float32))

    @classmethod
    def for_fit(cls, X: np.ndarray, n_classes: int, seed: int) -> SharedSubsample | None:
        """K classes: one feature eigenbasis and projected subsample for every path of a fit
        (folds and the final fit share the standardised matrix), so a C search pays for one
        eigenproblem and one projection, not six. None for two classes (the exact subsample
        Hessian) or a failed estimate (each path meets it, and falls back)."""
        if n_classes <= 2:
            return None
        try:
            with np.errstate(all="ignore"):
                return cls.of(X, seed)
        except (ArithmeticError, ValueError):
            return None

    def within(self, train_rows: np.ndarray) -> SharedSubsample:
        """The part of the subsample among ``train_rows`` (sorted rows of X), its rows
        renumbered as positions in ``X[train_rows]``: what a fold's path reads. The projected
        rows are not copied (9 MB a fold at 4,096 x 576): ``kept`` marks the fold's."""
        kept = np.isin(self.rows, train_rows)
        local = np.searchsorted(train_rows, self.rows[kept])
        return SharedSubsample(local, self.basis, self.projected, kept)


def binary_hessian(sub: np.ndarray, Z: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Two classes, more rows than features: the subsample Hessian (D+1, D+1), ones last."""
    from scipy.special import expit

    augmented = np.hstack([sub, np.ones((len(sub), 1), np.float32)])
    p = expit(Z[:, 0])
    return weighted_gram(augmented, (weight * p * (1.0 - p)).astype(np.float32))


@dataclass
class ClassBlocks:
    """Each class's sheared Hessian block in the basis: ``s`` (K',) intercept curvature,
    ``mean`` (K', r) the curvature mean, ``scales`` (K', r) the block's diagonal, and its
    leading t x t part as eigenpairs ``values`` (K', t), ``vectors`` (K', t, t)."""

    s: np.ndarray
    mean: np.ndarray
    scales: np.ndarray
    values: np.ndarray
    vectors: np.ndarray
    basis: np.ndarray  # (D, r) float64, orthonormal


def class_blocks(c: np.ndarray, shared: SharedSubsample, n_rows: int) -> ClassBlocks:
    """The per-class blocks from curvature weights ``c`` (m', K') of the path's subsample
    rows (weights summing to ~1 over the whole matrix of ``n_rows`` rows)."""
    projected = shared.projected
    if shared.kept is not None:  # a fold: the other rows of the shared subsample weigh 0
        spread = np.zeros((len(shared.kept), c.shape[1]))
        spread[shared.kept] = c
        c = spread
    m, r = projected.shape
    weights = np.ascontiguousarray(c.T, np.float32)  # (K', m)
    s = c.sum(axis=0)  # (K',)
    first = (weights @ projected).astype(np.float64)  # (K', r)
    second = (weights @ np.square(projected)).astype(np.float64)
    mean = first / np.maximum(s, np.finfo(float).tiny)[:, None]
    scales = np.maximum(second - mean * first, 0.0)
    dim = len(shared.basis)
    t = int(min(r, np.sqrt(BLOCK_COST * 2 * n_rows * dim / max(m, 1))))
    leading = projected[:, :t]
    blocks = np.empty((len(s), t, t))
    # small products and eigenproblems: one thread (two spin and wait; on a loaded machine
    # a 352 x 352 eigh took 2 s on two OpenBLAS threads, 0.02 s on one)
    with threadpool_limits(limits=1):
        for k, row in enumerate(weights):  # a covariance around the class's curvature mean
            blocks[k] = (leading * row[:, None]).T @ leading
        blocks -= s[:, None, None] * mean[:, :t, None] * mean[:, None, :t]
        values, vectors = np.linalg.eigh((blocks + blocks.transpose(0, 2, 1)) / 2)
    return ClassBlocks(s, mean, scales, np.maximum(values, 0.0), vectors, shared.basis)


def inverse(curvature, lam: float, dim: int):
    """``q -> (H + lam P)^-1 q`` for q (K', D+1) (P: the penalty, intercept column free), H
    the two-class Hessian (a matrix) or the sheared per-class blocks (``ClassBlocks``)."""
    if not isinstance(curvature, ClassBlocks):  # two classes, more rows than features
        penalty = np.full(dim + 1, lam)
        penalty[-1] = 0.0  # the intercept is not penalised
        return cholesky_solver(curvature + np.diag(penalty))
    blocks = curvature
    t = blocks.values.shape[1]
    inverse_scales = 1.0 / (blocks.scales + lam)  # (K', r); lam > 0 keeps it finite
    inverse_values = 1.0 / (blocks.values + lam)  # (K', t)
    # a class with (almost) no curvature: its intercept moves by at most g / (1e-12 max s)
    inverse_s = 1.0 / np.maximum(blocks.s, 1e-12 * max(float(blocks.s.max()), 1e-300))
    basis, mean = blocks.basis, blocks.mean
    thin = basis.shape[1] < basis.shape[0]
    several = len(blocks.s) > 1

    def sheared(q: np.ndarray):
        """q's weights part in sheared basis coordinates, and its part off a thin basis."""
        if several:  # the all-classes direction changes no prediction: never move along it
            q = q - q.mean(axis=0)
        along = q[:, :-1] @ basis  # (K', r)
        off = q[:, :-1] - along @ basis.T if thin else None
        return q, along - mean * q[:, -1:], off

    def block_solve(along: np.ndarray) -> np.ndarray:
        out = along * inverse_scales
        top = np.einsum("kji,kj->ki", blocks.vectors, along[:, :t])
        out[:, :t] = np.einsum("kij,kj->ki", blocks.vectors, top * inverse_values)
        return out

    def solve(q: np.ndarray) -> np.ndarray:
        q, along, off = sheared(q)
        step = block_solve(along)  # (K', r)
        intercept = q[:, -1] * inverse_s - np.sum(mean * step, axis=1)
        weights = step @ basis.T
        if thin:
            weights += off / lam
        result = np.hstack([weights, intercept[:, None]])
        return result - result.mean(axis=0) if several else result

    def quadratic(q: np.ndarray) -> float:
        """``q . solve(q)`` at a fraction of the cost: no projection back."""
        q, along, off = sheared(q)
        top = np.einsum("kji,kj->ki", blocks.vectors, along[:, :t])
        value = float(np.sum(top * top * inverse_values))
        value += float(np.sum(along[:, t:] ** 2 * inverse_scales[:, t:]))
        value += float(np.sum(q[:, -1] ** 2 * inverse_s))
        if thin:
            value += float(np.sum(off * off)) / lam
        return value

    solve.quadratic = quadratic
    return solve
