"""Linear heads on cached features: ``ProbeClassifier``, and saving/loading a head.

``ProbeClassifier`` is multinomial logistic regression on standardised features (binary:
one weight vector, as scikit-learn's ``LogisticRegression``), L2 penalty ``C``. It minimises
exactly scikit-learn's objective, ``C * sum_i s_i loss_i + ||W||^2 / 2`` (intercept not
penalised), so a converged fit equals ``LogisticRegression(C=C)`` on the same standardised
features; the tests check that. The solver is ours because scikit-learn's float64 lbfgs
needs hundreds to thousands of passes over the data per fit on hidden states (they are badly
conditioned), and the sweep fits 62 heads on 67k x 576 with a C search each. Ours needs
about 20 passes for a whole 7-value C path:

- L-BFGS whose initial inverse Hessian is the data term's Hessian estimated on a 4,096-row
  subsample plus the exact penalty: a near-Newton step from the first iteration;
- the full step is checked (Armijo, strong Wolfe) from one read of X that also gives the
  next gradient; only when it fails is there a line search, exact and O(N) per trial step;
- warm starts along the C path (small to large C), keeping the curvature pairs and the
  gradient of the data term, which do not depend on C;
- Cs are compared at a Newton decrement of ``SEARCH_TOL``; the chosen one is then polished
  to ``tol`` from where the path left it;
- float32 for the data matrix (it was fp16 in the cache), float64 for everything else.

``C`` is searched over ``DEFAULT_CS`` unless given: on validation data passed to ``fit``,
else by stratified cross-validation on the training data. Test data never choose anything.

A saved head is ``NAME.json`` (metadata, readable) beside ``NAME.safetensors`` (weights,
bias, scaler). Loading parses JSON and safetensors only, so no code runs; the sha256 of the
weights file and of the JSON's own content are recorded and checked, so a truncated or
edited head is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probe.errors import ProbeError
from probe.jsonable import to_jsonable

DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 2, 7))  # 1e-4 .. 1e2, one per decade
PRECONDITIONER_ROWS = 4096  # subsample on which the data term's Hessian is estimated
LBFGS_MEMORY = 10
SEARCH_TOL = 3e-3  # Newton decrement when comparing Cs; the chosen C is polished to ``tol``
CHUNK_ROWS = 4096  # rows per block in a fused pass: both products use a block while cached
RENEW_EVERY = 12  # iterations at one C after which the curvature is estimated again
SMALL_PROBLEM = 1 << 22  # entries of X below which BLAS runs single-threaded


class InvalidTrainingData(ProbeError, ValueError):
    """Bad training data: a ``ProbeError`` for the CLI, a ``ValueError`` for scikit-learn."""


# --- the solver -------------------------------------------------------------------------------


class _LogisticPath:
    """Penalised logistic regression on one standardised matrix, warm-started from C to C.

    Parameters are ``W`` (K', D) and ``b`` (K',), K' = 1 for two classes (binary loss, like
    scikit-learn) and K' = K otherwise (symmetric multinomial). The objective in mean form,
    ``sum_i w_i loss_i + lam ||W||^2 / 2`` with ``w = s / sum(s)`` and ``lam = 1 / (C sum(s))``,
    has scikit-learn's minimiser and its gradient scale.
    Gradients are handled as (K', D+1) arrays, the intercept in the last column.
    """

    def __init__(self, X: np.ndarray, codes: np.ndarray, n_classes: int, sample_weight, seed=0):
        self.X = X  # float32 (N, D), standardised
        self.codes = codes  # int (N,)
        self.binary = n_classes == 2
        self.k = 1 if self.binary else n_classes
        n, dim = X.shape
        self.weight_sum = float(np.sum(sample_weight))
        self.w = np.asarray(sample_weight, np.float64) / self.weight_sum  # (N,)
        self.target = (codes == 1).astype(np.float64) if self.binary else None  # (N,)
        self.W = np.zeros((self.k, dim))
        # start at W = 0 with the best intercept there: the weighted class log-odds
        share = np.bincount(codes, weights=self.w, minlength=n_classes).clip(1e-12)  # (K,)
        log_share = np.log(share)
        self.b = (log_share[1:] - log_share[:1]) if self.binary else log_share - log_share.mean()
        self.Z = np.tile(self.b, (n, 1))  # logits X W^T + b, kept in step with W, b
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []  # (step, change of data gradient)
        rows = np.random.default_rng(seed).permutation(n)[: min(n, PRECONDITIONER_ROWS)]
        self.sub_rows = np.sort(rows)
        self.passes = 0  # reads of X: the cost that matters
        self.converged = True
        self._curvature = None  # the data term's Hessian on the subsample
        self.grad_data = None  # (K', D+1) data-term gradient at W, b: it carries over C to C

    # the data term ----------------------------------------------------------------------------
    def _loss(self, Z: np.ndarray) -> float:
        """Weighted mean loss of logits Z (N, K')."""
        from scipy.special import log_expit

        if self.binary:
            z = Z[:, 0]
            return float(self.w @ -log_expit(np.where(self.target == 1, z, -z)))
        rows = np.arange(len(Z))
        return float(self.w @ (_logsumexp(Z) - Z[rows, self.codes]))

    def _residual(self, Z: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """w_i * d loss_i / d z_i for the given rows: (n, K')."""
        from scipy.special import expit

        if self.binary:
            return ((expit(Z[:, 0]) - self.target[rows]) * self.w[rows])[:, None]
        residual = _softmax(Z)
        residual[np.arange(len(Z)), self.codes[rows]] -= 1.0
        return residual * self.w[rows, None]

    def _gradient_pass(self) -> np.ndarray:
        """Data-term gradient at the current logits: (K', D+1), one read of X."""
        self.passes += 1
        residual = self._residual(self.Z)  # (N, K')
        grad_w = residual.T.astype(np.float32) @ self.X  # (K', N) @ (N, D) -> (K', D)
        return np.hstack([grad_w.astype(np.float64), residual.sum(axis=0)[:, None]])

    def _step_pass(self, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One read of X, block by block: how the logits move along ``direction`` (N, K'),
        and the data gradient (K', D+1) after the full step (t = 1), which is usually taken.
        """
        self.passes += 1
        d_w = np.ascontiguousarray(direction[:, :-1].T, np.float32)  # (D, K')
        along = np.empty_like(self.Z)
        grad = np.zeros_like(direction)
        for start in range(0, len(self.X), CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            block = self.X[rows]  # (c, D)
            along[rows] = block @ d_w + direction[:, -1]  # (c, K')
            residual = self._residual(self.Z[rows] + along[rows], rows)  # (c, K')
            grad[:, :-1] += residual.T.astype(np.float32) @ block
            grad[:, -1] += residual.sum(axis=0)
        return along, grad

    def _slope_and_bend(self, t: float, along: np.ndarray) -> tuple[float, float]:
        """First and second derivative of the data term at Z + t * along: O(N), no pass."""
        from scipy.special import expit

        Z = self.Z + t * along
        if self.binary:
            p, u = expit(Z[:, 0]), along[:, 0]
            return float(self.w @ ((p - self.target) * u)), float(self.w @ (p * (1 - p) * u * u))
        p = _softmax(Z)
        p_u = (p * along).sum(axis=1)
        slope = self.w @ (p_u - along[np.arange(len(Z)), self.codes])
        return float(slope), float(self.w @ ((p * along * along).sum(axis=1) - p_u * p_u))

    def _preconditioner(self, lam: float):
        """Approximate inverse Hessian of the objective, as a function (K', D+1) -> (K', D+1).

        The data term's Hessian is estimated on a subsample where the path starts; at each C
        only the penalty changes (a Cholesky, or a division in an eigenbasis) and the L-BFGS
        pairs follow the curvature as it moves. On non-separable data (SST-2-like) that one
        estimate serves the whole path: renewing it costs more than it saves, and on a
        subsample it underestimates the curvature of low-variance directions (steps
        overshoot, t ~ 0.6). On (nearly) separable data p(1 - p) collapses as C grows and
        the estimate becomes far too stiff: after ``RENEW_EVERY`` iterations at one C it is
        renewed, which cuts iterations per C there from 100-180 to ~15.

        Two classes: the subsample Hessian, (D+1) x (D+1), intercept last. K classes: the
        Hessian is a sum over rows of ``x x^T (kron) (diag(p) - p p^T)``, approximated by one
        Kronecker product ``A (kron) B`` (A from the features, B the mean class coupling, as
        in K-FAC), inverted with the penalty through the eigendecompositions of A and B.
        """
        if self._curvature is None:
            self._curvature = self._estimate_curvature()
        penalty = np.full(self.W.shape[1] + 1, lam)
        penalty[-1] = 0.0  # the intercept is not penalised
        if self.binary:
            hessian = self._curvature + np.diag(penalty)
            hessian[-1, -1] += 1e-12 * max(1.0, hessian[-1, -1])
            return _cholesky_solver(hessian)
        feature_values, feature_vectors, class_values, class_vectors = self._curvature
        denominator = np.outer(class_values, feature_values) + lam  # (K, D+1)

        def solve(q: np.ndarray) -> np.ndarray:
            rotated = class_vectors.T @ q @ feature_vectors
            return class_vectors @ (rotated / denominator) @ feature_vectors.T

        return solve

    def _estimate_curvature(self):
        from scipy.special import expit

        sub = self.X[self.sub_rows]  # (m, D)
        augmented = np.hstack([sub, np.ones((len(sub), 1), np.float32)])  # (m, D+1)
        Z = self.Z[self.sub_rows]  # (m, K')
        weight = self.w[self.sub_rows] * (len(self.X) / len(self.sub_rows))  # (m,)
        if self.binary:
            p = expit(Z[:, 0])
            rows = (weight * p * (1.0 - p)).astype(np.float32)
            return ((augmented * rows[:, None]).T @ augmented).astype(np.float64)
        p = _softmax(Z)  # (m, K)
        spread = (p * (1.0 - p)).mean(axis=1)  # (m,) how much each row still bends
        rows = (weight * spread).astype(np.float32)
        features = ((augmented * rows[:, None]).T @ augmented).astype(np.float64)  # A
        coupling = np.diag(weight @ p) - (p * weight[:, None]).T @ p  # (K, K)
        coupling /= max(float(weight @ spread), 1e-300)  # B, so that A (kron) B ~ H
        feature_values, feature_vectors = np.linalg.eigh(features)
        class_values, class_vectors = np.linalg.eigh(coupling)
        # the all-ones class direction (eigenvalue ~0) changes no prediction: never move along it
        class_values[np.argmin(np.abs(class_values))] = np.inf
        return np.maximum(feature_values, 0), feature_vectors, class_values, class_vectors

    # one C -----------------------------------------------------------------------------------
    def solve(self, C: float, tol: float, max_iter: int) -> int:
        """Minimise at ``C`` from the current W, b; return the gradient evaluations used.

        Stops when the Newton decrement ``sqrt(g . H^-1 g)`` (H^-1 from L-BFGS) is below
        ``tol``: the objective is then within about ``tol^2 / 2`` of its minimum. A bound on
        the gradient alone (scikit-learn's criterion) stops far from the minimum at large C,
        where the objective is flat in directions the penalty barely holds.

        Each iteration reads X once when the full quasi-Newton step is good (Armijo and
        strong Wolfe conditions, checked without reading X), twice when a line search is
        needed. The data term's gradient carries over from the previous C.
        """
        lam = 1.0 / (C * self.weight_sum)
        penalty = np.full(self.W.shape[1] + 1, lam)
        penalty[-1] = 0.0  # (D+1,): the intercept is not penalised
        params = lambda: np.hstack([self.W, self.b[:, None]])  # noqa: E731  (K', D+1)
        precondition = self._preconditioner(lam)
        if self.grad_data is None:
            self.grad_data = self._gradient_pass()
        loss = self._loss(self.Z)
        for evaluations in range(1, max_iter + 2):
            if evaluations % RENEW_EVERY == 0:  # slow progress: the curvature has moved
                self._curvature = None
                precondition = self._preconditioner(lam)
            grad = self.grad_data + penalty * params()
            direction = -self._two_loop(grad, penalty, precondition)  # (K', D+1)
            slope_0 = float(np.vdot(grad, direction))  # -(Newton decrement)^2
            if slope_0 >= 0:  # stale curvature pairs: restart from the preconditioner
                self.pairs.clear()
                direction = -precondition(grad)
                slope_0 = float(np.vdot(grad, direction))
            if -slope_0 <= tol * tol:
                return evaluations
            if evaluations > max_iter:
                break
            along, grad_data_full_step = self._step_pass(direction)
            penalty_slope = float(np.vdot(penalty * params(), direction))
            penalty_bend = float(np.vdot(penalty * direction, direction))
            loss_1 = self._loss(self.Z + along)
            slope_1 = float(np.vdot(grad_data_full_step, direction)) + penalty_slope + penalty_bend
            decrease = loss_1 - loss + penalty_slope + penalty_bend / 2
            full_step = decrease <= 1e-4 * slope_0 and abs(slope_1) <= 0.5 * -slope_0
            step = 1.0 if full_step else self._line_search(along, penalty_slope, penalty_bend)
            self.W += step * direction[:, :-1]
            self.b += step * direction[:, -1]
            self.Z += step * along
            new_grad_data = grad_data_full_step if full_step else self._gradient_pass()
            loss = loss_1 if full_step else self._loss(self.Z)
            self.pairs.append((step * direction, new_grad_data - self.grad_data))
            del self.pairs[:-LBFGS_MEMORY]
            self.grad_data = new_grad_data
            if step * np.abs(direction).max() <= 1e-12 * (1.0 + np.abs(params()).max()):
                return evaluations  # no progress left at float32 precision
        self.converged = False
        return max_iter

    def snapshot(self) -> dict:
        """The state after a solve, to resume from later (a few MB at most)."""
        return {"W": self.W.copy(), "b": self.b.copy(), "Z": self.Z.copy(),
                "grad_data": self.grad_data.copy(), "pairs": list(self.pairs),
                "curvature": self._curvature}  # fmt: skip

    def restore(self, state: dict) -> None:
        self.W, self.b, self.Z = state["W"].copy(), state["b"].copy(), state["Z"].copy()
        self.grad_data, self.pairs = state["grad_data"].copy(), list(state["pairs"])
        self._curvature = state["curvature"]

    def _two_loop(self, grad: np.ndarray, penalty: np.ndarray, precondition) -> np.ndarray:
        """L-BFGS inverse-Hessian product; the penalty's curvature is added to stored pairs,
        so pairs gathered at one C stay exact at the next (the data term does not change)."""
        q = grad.copy()
        history = []
        for step, grad_change in reversed(self.pairs):
            change = grad_change + penalty * step
            curvature = float(np.vdot(change, step))
            if curvature <= 1e-300:
                continue
            alpha = float(np.vdot(step, q)) / curvature
            q -= alpha * change
            history.append((step, change, curvature, alpha))
        r = precondition(q)
        for step, change, curvature, alpha in reversed(history):
            beta = float(np.vdot(change, r)) / curvature
            r += (alpha - beta) * step
        return r

    def _line_search(self, along: np.ndarray, penalty_slope: float, penalty_bend: float) -> float:
        """Minimise the objective along the direction: safeguarded Newton steps on t from 1."""
        low, high, t = 0.0, math.inf, 1.0
        for _ in range(20):
            slope, bend = self._slope_and_bend(t, along)
            slope += penalty_slope + t * penalty_bend
            bend += penalty_bend
            if slope > 0:
                high = t
            else:
                low = t
            if bend <= 0:
                break
            t_next = t - slope / bend
            if not low < t_next < high:
                t_next = (low + high) / 2 if math.isfinite(high) else 2 * t
            if abs(t_next - t) <= 1e-3 * t:
                return t_next
            t = t_next
        return t

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T + self.b  # (n, K')


# --- the estimator ----------------------------------------------------------------------------


class ProbeClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression on standardised features, C chosen without test data.

    Parameters
    ----------
    C : float or None
        Inverse L2 strength (scikit-learn's meaning). None: search ``Cs``.
    Cs : sequence of float or None
        The grid searched when ``C`` is None (default ``DEFAULT_CS``).
    class_weight : None, "balanced" or dict
        Per-class loss weights, as in scikit-learn.
    cv : int
        Folds of the stratified cross-validation used when ``fit`` gets no validation data.
    tol, max_iter :
        Stop when the Newton decrement of the mean-loss objective is below ``tol`` (the
        mean log loss is then within ~tol^2/2 of its minimum: 5e-7 by default, about as
        tight as scikit-learn's default of 1e-4 on the largest gradient entry), or after
        ``max_iter`` iterations per C.
    random_state : int
        Seeds the cross-validation folds and the preconditioner's subsample.
    copy_X : bool
        False lets ``fit`` standardise a float32 X in place (it is overwritten).

    Attributes: ``classes_``, ``coef_`` (K', D), ``intercept_`` (K',), ``mean_``, ``scale_``
    (the standardisation; coef_ applies to standardised features), ``C_``, ``search_``
    (grid, score and log loss per C, and how they were measured), ``n_iter_``.
    """

    def __init__(
        self,
        C=None,
        Cs=None,
        class_weight=None,
        cv=5,
        tol=1e-3,
        max_iter=500,
        random_state=0,
        copy_X=True,
    ):
        self.C = C
        self.Cs = Cs
        self.class_weight = class_weight
        self.cv = cv
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.copy_X = copy_X

    # fitting -----------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None):
        """Fit on (X, y); choose C on (X_val, y_val) when given, else by cross-validation."""
        from threadpoolctl import threadpool_limits

        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InvalidTrainingData(
                f"the training labels have one class ({self.classes_[0]!r}); "
                "a classifier needs at least 2 classes"
            )
        search_on_validation = self.C is None and X_val is not None
        if search_on_validation:
            X_val = validate_data(self, X_val, reset=False, dtype=[np.float32, np.float64])
            val_codes = self._encode(y_val, "validation")
        standardised, self.mean_, self.scale_ = _standardise(X, self.copy_X)  # float32 (N, D)
        sample_weight = self._sample_weight(codes)
        grid = self._grid()
        # BLAS threads pay off on big matrices only; on small ones they spin and wait
        with threadpool_limits(limits=None if X.size >= SMALL_PROBLEM else 1):
            search_tol = max(self.tol, SEARCH_TOL)
            if self.C is not None:
                best_C = float(self.C)
                self.search_ = {"method": "given", "Cs": [best_C]}
            elif search_on_validation:
                scores, states, path = self._path_scores(
                    standardised, codes, sample_weight, grid, self._standardise32(X_val),
                    val_codes, keep_states=True,
                )  # fmt: skip
                best_C = self._pick(grid, scores, "validation")
                path.restore(states[grid.index(best_C)])
            else:
                best_C = self._cross_validate(standardised, codes, sample_weight, grid)
            if self.C is not None or not search_on_validation:
                path = self._new_path(standardised, codes, sample_weight)
                for C in [c for c in grid if c < best_C]:  # warm starts along the path
                    path.solve(C, search_tol, self.max_iter)
            self.n_iter_ = path.solve(best_C, self.tol, self.max_iter)  # polished to tol
            self.coef_, self.intercept_ = path.W.copy(), path.b.copy()
            converged = path.converged
        if not converged:
            warnings.warn(
                f"ProbeClassifier did not converge in max_iter={self.max_iter} iterations "
                "per C; raise max_iter or lower C",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.C_ = best_C
        return self

    def _new_path(self, X, codes, sample_weight) -> _LogisticPath:
        return _LogisticPath(X, codes, len(self.classes_), sample_weight, seed=self.random_state)

    def _standardise32(self, X) -> np.ndarray:
        standardised = np.asarray(X, np.float32) - self.mean_.astype(np.float32)
        standardised /= self.scale_.astype(np.float32)
        return standardised

    def _grid(self) -> list[float]:
        grid = sorted(float(c) for c in (self.Cs if self.Cs is not None else DEFAULT_CS))
        if not grid or min(grid) <= 0 or (self.C is not None and self.C <= 0):
            raise InvalidTrainingData("C values must be positive")
        return grid

    def _sample_weight(self, codes: np.ndarray) -> np.ndarray:
        if self.class_weight is None:
            return np.ones(len(codes))
        from sklearn.utils.class_weight import compute_class_weight

        if self.class_weight not in ("balanced",) and not isinstance(self.class_weight, dict):
            raise InvalidTrainingData("class_weight must be None, 'balanced' or a dict")
        per_class = compute_class_weight(
            self.class_weight, classes=self.classes_, y=self.classes_[codes]
        )
        weights = per_class[codes]
        if weights.sum() <= 0:
            raise InvalidTrainingData("class weights sum to zero")
        return weights

    def _encode(self, y, what: str) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1:
            y = y.ravel()
        known = np.isin(y, self.classes_)
        if not known.all():
            unseen = sorted({str(v) for v in y[~known]})[:5]
            raise InvalidTrainingData(
                f"{what} labels not in the training labels: {', '.join(unseen)}"
            )
        return np.searchsorted(self.classes_, y)

    def _path_scores(self, X, codes, sample_weight, grid, X_val, val_codes, keep_states=False):
        """Validation (accuracy, log loss) at each C of a warm-started path, solved to the
        search tolerance: (len(grid), 2); the path's state at each C (if kept); the path."""
        path = self._new_path(X, codes, sample_weight)
        scores, states = [], []
        for C in grid:
            path.solve(C, max(self.tol, SEARCH_TOL), self.max_iter)
            scores.append(_accuracy_and_log_loss(path.logits(X_val), val_codes, path.binary))
            if keep_states:
                states.append(path.snapshot())
        return np.asarray(scores), states, path

    def _cross_validate(self, X, codes, sample_weight, grid) -> float:
        from sklearn.model_selection import StratifiedKFold

        folds = min(int(self.cv), int(np.bincount(codes).min()))
        if folds < 2 or len(grid) == 1:
            self.search_ = {"method": "default (too few examples per class to cross-validate)"}
            return 1.0 if len(grid) > 1 else grid[0]
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        total = np.zeros((len(grid), 2))
        for train_rows, val_rows in splitter.split(X, codes):
            scores, _, _ = self._path_scores(
                X[train_rows], codes[train_rows], sample_weight[train_rows], grid,
                X[val_rows], codes[val_rows],
            )  # fmt: skip
            total += scores
        return self._pick(grid, total / folds, f"{folds}-fold cross-validation")

    def _pick(self, grid, scores: np.ndarray, method: str) -> float:
        """Highest accuracy; ties go to the lower log loss."""
        best = min(range(len(grid)), key=lambda i: (-round(scores[i, 0], 12), scores[i, 1]))
        self.search_ = {
            "method": method,
            "Cs": list(grid),
            "accuracy": [float(s) for s in scores[:, 0]],
            "log_loss": [float(s) for s in scores[:, 1]],
        }
        return grid[best]

    # prediction --------------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Logits: (n,) for two classes (of classes_[1]), else (n, K).

        Computed in float64, in row blocks, with the standardisation folded into the
        weights: ``((x - mean) / scale) W^T + b == x (W / scale)^T + (b - (mean / scale) W^T)``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        weight = (self.coef_ / self.scale_).T  # (D, K')
        bias = self.intercept_ - (self.mean_ / self.scale_) @ self.coef_.T  # (K',)
        scores = np.empty((len(X), weight.shape[1]))
        for start in range(0, len(X), 8192):
            block = np.asarray(X[start : start + 8192], dtype=np.float64)
            scores[start : start + 8192] = block @ weight + bias
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X) -> np.ndarray:
        """(n, K) class probabilities, columns in ``classes_`` order."""
        from scipy.special import expit

        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = expit(scores)
            return np.column_stack([1.0 - positive, positive])
        return _softmax(scores)

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        best = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[best]

    @classmethod
    def from_weights(cls, coef, intercept, classes, mean=None, scale=None, C=None):
        """A fitted classifier from raw arrays (a head trained elsewhere, e.g. fine-tuned).

        ``coef`` is (1, D) for two classes, (K, D) otherwise; with no ``mean``/``scale`` the
        features are used as they are.
        """
        coef = np.atleast_2d(np.asarray(coef, np.float64))
        intercept = np.atleast_1d(np.asarray(intercept, np.float64))
        classes = np.asarray(classes)
        expected = 1 if len(classes) == 2 else len(classes)
        if len(classes) < 2 or coef.shape[0] != expected or intercept.shape != (expected,):
            raise ProbeError(
                f"head weights do not fit {len(classes)} classes: coef {coef.shape}, "
                f"intercept {intercept.shape} (two classes take 1 row, K classes K rows)"
            )
        dim = coef.shape[1]
        clf = cls(C=C)
        clf.classes_ = classes
        clf.coef_, clf.intercept_ = coef, intercept
        clf.mean_ = np.zeros(dim) if mean is None else np.asarray(mean, np.float64)
        clf.scale_ = np.ones(dim) if scale is None else np.asarray(scale, np.float64)
        if clf.mean_.shape != (dim,) or clf.scale_.shape != (dim,):
            raise ProbeError(
                f"head scaler shapes {clf.mean_.shape}, {clf.scale_.shape} != ({dim},)"
            )
        clf.n_features_in_ = dim
        clf.C_ = C
        return clf


def _softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, K) logits (scipy's carries array-API overhead per call)."""
    exp = np.exp(Z - Z.max(axis=1, keepdims=True))
    exp /= exp.sum(axis=1, keepdims=True)
    return exp


def _logsumexp(Z: np.ndarray) -> np.ndarray:
    top = Z.max(axis=1)
    return top + np.log(np.exp(Z - top[:, None]).sum(axis=1))


def _standardise(X: np.ndarray, copy: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        block = np.subtract(X[start : start + 4096], centre, out=out[start : start + 4096],
                            dtype=np.float32)  # fmt: skip
        offset += block.sum(axis=0, dtype=np.float64)
        squares += np.einsum("ij,ij->j", block, block)
    offset /= n
    scale = np.sqrt(np.maximum(squares / n - offset**2, 0.0))
    scale = np.where(scale < 10 * np.finfo(np.float64).eps, 1.0, scale)
    out /= scale.astype(np.float32)
    return out, centre.astype(np.float64), scale


def _cholesky_solver(matrix: np.ndarray):
    """``q -> q @ inv(matrix)`` for q (K', n); the identity if matrix is not positive definite."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    try:
        factor = cho_factor(matrix)
    except LinAlgError:
        return lambda q: q
    return lambda q: cho_solve(factor, q.T).T


def _accuracy_and_log_loss(logits: np.ndarray, codes: np.ndarray, binary: bool) -> tuple:
    """logits (n, K') -> (accuracy, mean log loss)."""
    from scipy.special import log_expit

    if binary:
        z = logits[:, 0]
        predicted = (z > 0).astype(int)
        log_p = log_expit(np.where(codes == 1, z, -z))
    else:
        predicted = logits.argmax(axis=1)
        log_p = logits[np.arange(len(codes)), codes] - _logsumexp(logits)
    return float(np.mean(predicted == codes)), float(-log_p.mean())


# --- saving and loading ---------------------------------------------------------------------

HEAD_FORMAT = "probe-head"
HEAD_FORMAT_VERSION = 1
REQUIRED_META = {
    "model": str,  # a spec load_backbone accepts: alias, directory, .gguf, hub id
    "model_fingerprint": str,
    "layer": int,  # model layer numbering: 0 = embeddings .. L = final output
    "pool": str,  # "last" or "mean"
    "max_length": int,
}
WEIGHT_NAMES = ("coef", "intercept", "mean", "scale")


def head_paths(path: str | Path) -> tuple[Path, Path]:
    """``x.json`` -> (x.json, x.safetensors); a directory -> its head.json, head.safetensors."""
    path = Path(path).expanduser()
    json_path = path if path.suffix == ".json" else path / "head.json"
    return json_path, json_path.with_suffix(".safetensors")


def save_head(path: str | Path, clf: ProbeClassifier, meta: dict) -> Path:
    """Write a fitted head as JSON metadata + safetensors weights; return the JSON path.

    ``meta`` needs ``REQUIRED_META`` (what predict needs to rebuild the features) and may
    hold anything JSON-able (label_names, cache_key, metrics, ...). Both files are written
    to temporary names and moved into place, weights first.
    """
    from safetensors.numpy import save

    check_is_fitted(clf)
    missing = [key for key in REQUIRED_META if meta.get(key) is None]
    if missing:
        raise ProbeError(f"head metadata lacks {', '.join(missing)}")
    if meta["pool"] not in ("last", "mean"):
        raise ProbeError(f"unknown pool '{meta['pool']}'; choose last or mean")
    json_path, weights_path = head_paths(path)
    tensors = {
        "coef": np.ascontiguousarray(clf.coef_, np.float64),  # (K', D)
        "intercept": np.ascontiguousarray(clf.intercept_, np.float64),  # (K',)
        "mean": np.ascontiguousarray(clf.mean_, np.float64),  # (D,)
        "scale": np.ascontiguousarray(clf.scale_, np.float64),  # (D,)
    }
    weights = save(tensors, metadata={"format": HEAD_FORMAT})
    classes = clf.classes_.tolist()
    record = {
        **{key: to_jsonable(value) for key, value in meta.items()},
        "format": HEAD_FORMAT,
        "format_version": HEAD_FORMAT_VERSION,
        "layer": int(meta["layer"]),
        "max_length": int(meta["max_length"]),
        "classes": classes,
        "label_names": [str(c) for c in meta.get("label_names") or classes],
        "n_features": int(clf.coef_.shape[1]),
        "C": None if getattr(clf, "C_", None) is None else float(clf.C_),
        "class_weight": to_jsonable(getattr(clf, "class_weight", None)),
        "versions": {**_versions(), **(meta.get("versions") or {})},
        "weights_file": weights_path.name,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    record["sha256"] = _content_sha256(record)
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(weights_path, weights)
        _write_atomic(json_path, (json.dumps(record, indent=2, allow_nan=False) + "\n").encode())
    except OSError as exc:
        raise ProbeError(f"cannot write the head to {json_path.parent}: {exc.strerror}") from None
    return json_path


def load_head(path: str | Path) -> tuple[ProbeClassifier, dict]:
    """Read a head written by ``save_head``: (classifier, metadata). Runs no stored code.

    A missing, truncated or edited file (either one) is a one-line ``ProbeError``.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    json_path, _ = head_paths(path)
    if not json_path.is_file():
        raise ProbeError(f"head file not found: {json_path}")
    damaged = f"{json_path} is damaged (truncated or edited); fit the head again"
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProbeError(damaged) from None
    if not isinstance(record, dict) or record.get("format") != HEAD_FORMAT:
        raise ProbeError(f"{json_path} is not a probe head file")
    if record.get("format_version") != HEAD_FORMAT_VERSION:
        raise ProbeError(
            f"{json_path} has head format {record.get('format_version')}; this probe reads "
            f"format {HEAD_FORMAT_VERSION}"
        )
    if record.get("sha256") != _content_sha256(record):
        raise ProbeError(damaged)
    for key, kind in REQUIRED_META.items():
        if not isinstance(record.get(key), kind):
            raise ProbeError(damaged)
    weights_name = str(record.get("weights_file", ""))
    weights_path = json_path.parent / weights_name
    if Path(weights_name).name != weights_name or not weights_path.is_file():
        raise ProbeError(f"weights file of {json_path.name} not found: {weights_path}")
    weights = weights_path.read_bytes()
    if hashlib.sha256(weights).hexdigest() != record.get("weights_sha256"):
        raise ProbeError(
            f"{weights_path} does not match {json_path.name} (sha256 differs): the weights "
            "were truncated, edited or replaced; fit the head again"
        )
    try:
        tensors = load(weights)
        clf = ProbeClassifier.from_weights(
            tensors["coef"], tensors["intercept"], record["classes"],
            mean=tensors["mean"], scale=tensors["scale"], C=record.get("C"),
        )  # fmt: skip
    except (SafetensorError, KeyError, TypeError, ValueError, ProbeError):
        raise ProbeError(f"{weights_path} is not a valid head weights file") from None
    if not all(np.isfinite(tensors[name]).all() for name in WEIGHT_NAMES):
        raise ProbeError(f"{weights_path} holds non-finite weights; fit the head again")
    clf.class_weight = record.get("class_weight")
    return clf, record


def _content_sha256(record: dict) -> str:
    """sha256 of the record without its own checksum, in canonical JSON."""
    body = {key: value for key, value in record.items() if key != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from probe import __version__

    found = {"probe": __version__}
    for package in ("numpy", "scikit-learn", "safetensors"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def _write_atomic(path: Path, payload: bytes) -> None:
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
