"""Ridge regression for every penalty and every target from one eigendecomposition per fold.

Why not scikit-learn's ``Ridge`` in a grid search: each of its fits forms and factorises the
Gram matrix X^T X of its training rows again, once per penalty and per fold. Here a fold's
centred Gram matrix is eigendecomposed once, G = V diag(lam) V^T; in that basis a penalty
only rescales, W(alpha) = V diag(1 / (lam + alpha)) V^T X^T Y, so every penalty and every
target costs a (D x D) x (D x T) product. Under k-fold the folds share their sums: each
fold's held-out Gram matrix X_h^T X_h is formed once, the whole one is their sum, a fold's
training Gram is the whole minus its held-out part (centring corrected with column sums),
and its held-out squared errors come from the same sums, never from re-reading rows.

The problem solved is scikit-learn's ``Ridge(alpha)``: minimise ||Y - X W - b||^2 +
alpha ||W||^2 with the intercept b unpenalised, i.e. centred X and Y. Wider than tall
(D above the training rows), the rotation comes from the centred kernel X X^T (n x n), a
thin SVD of X. All Gram and eigen work is float64; eigenvalues within rounding of 0
(constant or duplicated columns, D > n) are exactly 0, and alpha > 0 keeps every
lam + alpha positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh

BLOCK = 4096  # rows widened to float64 at a time: no (n, D) float64 copy of X
PIECES_BUDGET = 1 << 30  # bytes of held-out Gram matrices kept between the k-fold passes


@dataclass
class Moments:
    """Sums over rows that a ridge problem and its squared errors are made of (float64)."""

    n: int
    gram: np.ndarray  # (D, D) X^T X
    cross: np.ndarray  # (D, T) X^T Y
    x_sum: np.ndarray  # (D,)
    y_sum: np.ndarray  # (T,)
    y_squares: np.ndarray  # (T,) sum of Y**2

    def _combine(self, other: Moments, sign: int) -> Moments:
        return Moments(
            self.n + sign * other.n,
            self.gram + sign * other.gram,
            self.cross + sign * other.cross,
            self.x_sum + sign * other.x_sum,
            self.y_sum + sign * other.y_sum,
            self.y_squares + sign * other.y_squares,
        )

    def __add__(self, other: Moments) -> Moments:
        return self._combine(other, 1)

    def __sub__(self, other: Moments) -> Moments:
        """The sums of the rows here and not in ``other`` (a fold's training part)."""
        return self._combine(other, -1)

    def centred(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x mean, y mean, Xc^T Xc, Xc^T Yc) with Xc, Yc the rows minus their means."""
        x_mean, y_mean = self.x_sum / self.n, self.y_sum / self.n
        gram = self.gram - self.n * np.outer(x_mean, x_mean)
        cross = self.cross - self.n * np.outer(x_mean, y_mean)
        return x_mean, y_mean, gram, cross


def moments(X: np.ndarray, Y: np.ndarray) -> Moments:
    """The sums of float32 X (n, D) and float64 Y (n, T), accumulated in float64."""
    D, T = X.shape[1], Y.shape[1]
    gram, cross = np.zeros((D, D)), np.zeros((D, T))
    for start in range(0, len(X), BLOCK):
        block = np.asarray(X[start : start + BLOCK], np.float64)
        gram += block.T @ block  # numpy's syrk: half a product
        cross += block.T @ Y[start : start + BLOCK]
    x_sum = X.sum(axis=0, dtype=np.float64)
    return Moments(len(X), gram, cross, x_sum, Y.sum(axis=0), (Y**2).sum(axis=0))


@dataclass
class Rotated:
    """One training set's ridge problem in its eigenbasis: for every penalty,
    W(alpha) = basis diag(1 / (values + alpha)) targets (primal), or
    rows^T basis diag(1 / (values + alpha)) targets (kernel); b = y_mean - x_mean W."""

    values: np.ndarray  # (r,) eigenvalues of the centred Gram (or kernel) matrix, >= 0
    targets: np.ndarray  # (r, T) V^T Xc^T Yc (kernel: U^T Yc)
    x_mean: np.ndarray  # (D,)
    y_mean: np.ndarray  # (T,)
    basis: np.ndarray  # (D, r) V, or (n, r) U in the kernel form
    rows: np.ndarray | None = None  # (n, D) centred float64 training rows: kernel form only

    def __post_init__(self):
        # A null direction v of the centred rows has v^T Xc^T Yc = 0 exactly; what rounding
        # leaves there would be amplified by 1 / alpha (duplicated columns, small alpha)
        self.targets[self.values == 0] = 0.0

    def _scaled(self, alphas) -> np.ndarray:
        """(r, A*T) the rotated targets divided by lam + alpha, alphas side by side."""
        alphas = np.asarray(alphas, np.float64)
        scaled = self.targets[:, None, :] / (self.values[:, None] + alphas[None, :])[:, :, None]
        return scaled.reshape(len(self.values), -1)

    def coefs(self, alphas) -> np.ndarray:
        """(A, D, T) coefficients of every alpha."""
        flat = self.basis @ self._scaled(alphas)  # (D, A*T), or (n, A*T) dual coefficients
        if self.rows is not None:
            flat = self.rows.T @ flat  # Xc^T (Kc + alpha)^-1 Yc
        return flat.reshape(len(flat), len(alphas), -1).transpose(1, 0, 2)

    def coef(self, alpha: float) -> np.ndarray:
        return self.coefs([alpha])[0]

    def intercepts(self, coefs: np.ndarray) -> np.ndarray:
        """(..., T) intercepts of (..., D, T) coefficients."""
        return self.y_mean - np.einsum("d,...dt->...t", self.x_mean, coefs)

    def projected(self, X_held: np.ndarray) -> np.ndarray:
        """(m, r): held-out rows, centred with the training mean, in the eigenbasis."""
        centred = np.asarray(X_held, np.float64) - self.x_mean
        if self.rows is None:
            return centred @ self.basis
        return (centred @ self.rows.T) @ self.basis

    def predictions(self, projected: np.ndarray, alphas) -> np.ndarray:
        """(A, m, T) predictions of every alpha from ``projected`` rows: one product."""
        flat = projected @ self._scaled(alphas)  # (m, A*T)
        return flat.reshape(len(projected), len(alphas), -1).transpose(1, 0, 2) + self.y_mean


def one_thread():
    """LAPACK's factorisations here run faster on one BLAS thread than on two busy ones
    (shared 2-core EPYC, eigh: D = 576 0.07 s vs 0.26 s, D = 1536 1.1 s vs 2.3-12 s)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _eigen(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of a symmetric positive semi-definite float64 matrix;
    eigenvalues within rounding of 0 (``numpy.linalg.matrix_rank``'s tolerance, negative
    ones included) are exactly 0: null directions (constant, duplicated columns, D > n)."""
    matrix = (matrix + matrix.T) / 2
    with one_thread():
        values, vectors = eigh(matrix, overwrite_a=True, check_finite=False, driver="evd")
    top = max(values[-1], 0.0) if len(values) else 0.0
    rounding = top * len(values) * np.finfo(np.float64).eps
    return np.where(values > rounding, values, 0.0), vectors


def rotate_moments(sums: Moments) -> Rotated:
    """The primal rotation from a training set's sums: centre, eigendecompose (D x D)."""
    x_mean, y_mean, gram, cross = sums.centred()
    values, vectors = _eigen(gram)
    return Rotated(values, vectors.T @ cross, x_mean, y_mean, vectors)


def rotate_rows(X: np.ndarray, Y: np.ndarray) -> Rotated:
    """The kernel rotation (D > n): eigendecompose the centred (n x n) X X^T."""
    x_mean, y_mean = X.mean(axis=0, dtype=np.float64), Y.mean(axis=0)
    rows = np.asarray(X, np.float64) - x_mean
    values, vectors = _eigen(rows @ rows.T)
    return Rotated(values, vectors.T @ (Y - y_mean), x_mean, y_mean, vectors, rows)


def uses_kernel(n_train: int, dim: int) -> bool:
    """The (n x n) kernel is the smaller eigenproblem when features outnumber rows."""
    return dim > n_train


def rotate(X: np.ndarray, Y) -> Rotated:
    """The rotated ridge problem of float32 rows X (n, D) and targets Y (n, T)."""
    Y = _as_2d(Y)
    if uses_kernel(len(X), X.shape[1]):
        return rotate_rows(X, Y)
    return rotate_moments(moments(X, Y))


def ridge_path(X: np.ndarray, Y, alphas) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (A, D, T) and intercepts (A, T) of every alpha on the same rows."""
    problem = rotate(X, Y)
    coefs = problem.coefs(alphas)
    return coefs, problem.intercepts(coefs)


def ridge_fit(X: np.ndarray, Y, alpha: float, sums: Moments | None = None):
    """(coef (D, T), intercept (T,)) at one alpha: a Cholesky solve of the centred Gram
    system (``sums``: the rows' ``moments``, when already formed); the eigenbasis when the
    solve fails or features outnumber rows."""
    Y = _as_2d(Y)
    if uses_kernel(len(X), X.shape[1]):
        problem = rotate_rows(X, Y)
        coef = problem.coef(alpha)
        return coef, problem.intercepts(coef)
    sums = moments(X, Y) if sums is None else sums
    x_mean, y_mean, gram, cross = sums.centred()
    gram[np.diag_indices_from(gram)] += alpha
    try:
        with one_thread():
            coef = cho_solve(cho_factor(gram, overwrite_a=True, check_finite=False), cross)
    except LinAlgError:
        coef = rotate_moments(sums).coef(alpha)
    return coef, y_mean - x_mean @ coef


def validation_predictions(X: np.ndarray, Y, X_val: np.ndarray, alphas) -> np.ndarray:
    """(A, n_val, T) predictions on X_val of every alpha fitted on (X, Y)."""
    problem = rotate(X, Y)
    return problem.predictions(problem.projected(X_val), alphas)


@dataclass
class FoldPath:
    """A k-fold run over every alpha: held-out squared errors and each fold's fit."""

    folds: list  # (train rows, held-out rows) per fold
    squared_errors: np.ndarray  # (A, T) summed over every held-out row
    coefs: list  # per fold, (A, D, T)
    intercepts: list  # per fold, (A, T)
    whole: Moments | None  # the sums of all rows (Gram form): the final fit's, already made
    offset: np.ndarray  # (T,) subtracted from Y before the sums (precision), added back

    def out_of_fold(self, X: np.ndarray, index: int) -> np.ndarray:
        """(n, T) each row predicted by the fold that held it out, at alphas[index]."""
        out = np.empty((len(X), len(self.offset)))
        for (_, held), coef, intercept in zip(self.folds, self.coefs, self.intercepts, strict=True):
            out[held] = np.asarray(X[held], np.float64) @ coef[index] + intercept[index]
        return out

    def final_fit(self, X: np.ndarray, Y, alpha: float):
        """(coef (D, T), intercept (T,)) on all rows at ``alpha``, from the shared sums."""
        if self.whole is None:
            return ridge_fit(X, Y, alpha)
        coef, intercept = ridge_fit(X, Y, alpha, self.whole)
        return coef, intercept + self.offset


def kfold_path(X: np.ndarray, Y, folds, alphas) -> FoldPath:
    """Every alpha's fit on each fold's training rows and its squared errors on the held-out
    rows; ``folds`` lists (train, held-out) row indices whose held-out parts partition the
    rows (scikit-learn's splitters)."""
    Y = _as_2d(Y)
    offset = Y.mean(axis=0)
    Y = Y - offset  # the errors come from sums of squares: no large means in them
    squared = np.zeros((len(alphas), Y.shape[1]))
    coefs, intercepts = [], []
    if uses_kernel(min(len(train) for train, _ in folds), X.shape[1]):
        for train, held in folds:
            problem = rotate_rows(X[train], Y[train])
            predicted = problem.predictions(problem.projected(X[held]), alphas)
            squared += ((Y[held] - predicted) ** 2).sum(axis=1)
            coefs.append(problem.coefs(alphas))
            intercepts.append(problem.intercepts(coefs[-1]) + offset)
        return FoldPath(list(folds), squared, coefs, intercepts, None, np.zeros_like(offset))
    D = X.shape[1]
    keep = len(folds) * D * D * 8 <= PIECES_BUDGET
    pieces = [_held_sums(X, Y, held) for _, held in folds] if keep else None
    whole = sum(pieces[1:], pieces[0]) if keep else moments(X, Y)
    for f, (_, held) in enumerate(folds):
        piece = pieces[f] if keep else _held_sums(X, Y, held)
        problem = rotate_moments(whole - piece)
        coefs.append(problem.coefs(alphas))
        intercepts.append(problem.intercepts(coefs[-1]))
        squared += _squared_errors(piece, coefs[-1], intercepts[-1])
        intercepts[-1] = intercepts[-1] + offset
    return FoldPath(list(folds), squared, coefs, intercepts, whole, offset)


def _held_sums(X: np.ndarray, Y: np.ndarray, held) -> Moments:
    rows = np.asarray(X[held], np.float64)
    y = Y[held]
    return Moments(len(rows), rows.T @ rows, rows.T @ y, rows.sum(0), y.sum(0), (y**2).sum(0))


def _squared_errors(held: Moments, coefs: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """(A, T) sum over held-out rows of (y - x w - b)^2 for each alpha's (w, b), expanded
    into the rows' sums: (y - b)^2 - 2 (y - b) x.w + w^T x x^T w, no row read."""
    quadratic = np.einsum("adt,adt->at", coefs, held.gram @ coefs)
    linear = np.einsum("adt,dt->at", coefs, held.cross) - intercepts * (held.x_sum @ coefs)
    constant = held.y_squares - 2 * intercepts * held.y_sum + held.n * intercepts**2
    return np.maximum(constant - 2 * linear + quadratic, 0.0)


def _as_2d(Y) -> np.ndarray:
    Y = np.asarray(Y, np.float64)
    return Y[:, None] if Y.ndim == 1 else Y
