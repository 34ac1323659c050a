"""Guarded factorisations for the solver's preconditioner.

Degenerate features (constant or duplicated columns, rank-deficient or wide matrices: what
embedding layers look like) make the curvature estimate singular, and LAPACK can then fail or
return non-finite values. Cut from the path because this is the one place that
defends against that: every factorisation here is symmetrised, floored, given a ridge
relative to its trace, or replaced by a diagonal preconditioner as the last resort, and a
non-finite input raises ``SolverFailure`` (the estimator then refits with scikit-learn).
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits


class SolverFailure(ArithmeticError):
    """The fast path met a value it cannot use (non-finite loss or gradient)."""


def weighted_gram(augmented: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``augmented^T diag(rows) augmented`` (float64, symmetric) with BLAS ``ssyrk``: half the
    FLOPs of a GEMM, and the largest single cost of a fit on a few thousand rows."""
    from scipy.linalg.blas import ssyrk

    scaled = augmented * np.sqrt(np.maximum(rows, 0), dtype=np.float32)[:, None]  # (m, D+1)
    upper = ssyrk(1.0, scaled.T, trans=0).astype(np.float64)  # (D+1, D+1), upper triangle
    return np.triu(upper) + np.triu(upper, 1).T


def feature_basis(sub: np.ndarray) -> np.ndarray:
    """Orthonormal eigenbasis (D, r) float64 of ``sub^T sub`` (rows (m, D)), leading directions
    first: the multi-class preconditioner's feature basis, one per matrix (folds of one matrix
    may share it: they differ in the rows, not in the features' correlations). Fewer rows
    than features: the thin basis of the rows' span, r <= m, from the m x m Gram matrix."""
    from scipy.linalg import LinAlgError, eigh

    if len(sub) < sub.shape[1]:
        thin = thin_gram_eigh(sub, np.ones(len(sub), np.float32))[1][:, ::-1]
        return np.linalg.qr(thin)[0]  # orthonormal to float64 precision, order kept
    gram = weighted_gram(sub, np.ones(len(sub), np.float32))
    if not np.isfinite(gram).all():
        raise SolverFailure("non-finite curvature estimate")
    with threadpool_limits(limits=1):  # two threads spin and wait on a loaded machine
        try:  # float32 divide and conquer: ~3x faster than float64 MRRR; enough for a basis
            _, vectors = eigh(gram.astype(np.float32), driver="evd", check_finite=False)
            if np.isfinite(vectors).all():
                return np.linalg.qr(vectors[:, ::-1].astype(np.float64))[0]
        except (LinAlgError, ValueError):
            pass
        return np.ascontiguousarray(robust_eigh(gram)[1][:, ::-1])


def cholesky_solver(matrix: np.ndarray):
    """``q -> q @ inv(matrix)`` for q (K', n), matrix symmetric positive semi-definite (and
    overwritten: the caller builds it for this call).

    A singular matrix (the unpenalised intercept with nothing to pin it, a tiny penalty on a
    rank-deficient Hessian) gets a ridge relative to its mean diagonal, growing until the
    factorisation holds; the diagonal (Jacobi) preconditioner when none does.
    """
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    if not np.isfinite(matrix).all():
        raise SolverFailure("non-finite curvature estimate")
    diagonal = np.maximum(np.diag(matrix), 0.0)  # (n,) a copy: the ridge goes into matrix
    level = max(float(diagonal.mean()), np.finfo(float).tiny)
    added = 0.0
    for ridge in (1e-12, 1e-9, 1e-6, 1e-3):  # Cholesky reads one triangle: no symmetrising
        matrix.flat[:: len(matrix) + 1] += (ridge - added) * level  # in place: no n x n copy
        added = ridge
        try:
            factor = cho_factor(matrix, check_finite=False)
        except (LinAlgError, ValueError):
            continue
        return lambda q: cho_solve(factor, q.T, check_finite=False).T
    jacobi = 1.0 / (diagonal + 1e-3 * level)
    return lambda q: q * jacobi


def thin_gram_eigh(augmented: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nonzero eigenpairs of ``augmented^T diag(rows) augmented`` ((D+1) square, rank <= m)
    from the m x m Gram matrix: values (r,), orthonormal basis (D+1, r)."""
    scaled = augmented.astype(np.float64) * np.sqrt(np.maximum(rows, 0.0))[:, None]  # (m, D+1)
    values, vectors = robust_eigh(scaled @ scaled.T)  # (m,), (m, m)
    keep = values > 1e-10 * max(float(values.max(initial=0.0)), np.finfo(float).tiny)
    basis = scaled.T @ vectors[:, keep] / np.sqrt(values[keep])  # (D+1, r)
    return values[keep], basis


def robust_eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues >= 0, eigenvectors) of a symmetric PSD estimate, whatever its rank.

    LAPACK's divide-and-conquer (numpy's default) can fail to converge on matrices with many
    equal or zero eigenvalues (constant or duplicated columns): symmetrise, add a ridge
    relative to the trace, try the relatively robust driver then the QR one; if all fail,
    the diagonal with the identity basis (a Jacobi preconditioner) still serves.
    """
    from scipy.linalg import LinAlgError, eigh

    if not np.isfinite(matrix).all():
        raise SolverFailure("non-finite curvature estimate")
    matrix = (matrix + matrix.T) / 2
    ridge = 1e-12 * max(float(np.trace(matrix)) / len(matrix), np.finfo(float).tiny)
    shifted = matrix + ridge * np.eye(len(matrix))
    for driver in ("evr", "ev"):
        try:
            values, vectors = eigh(shifted, driver=driver, check_finite=False)
        except (LinAlgError, ValueError):
            continue
        if np.isfinite(values).all() and np.isfinite(vectors).all():
            return np.maximum(values - ridge, 0.0), vectors
    return np.maximum(np.diag(matrix).copy(), 0.0), np.eye(len(matrix))
