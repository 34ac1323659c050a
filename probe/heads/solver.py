"""The solver behind ``ProbeClassifier``: penalised logistic regression along a path of Cs.

It minimises exactly scikit-learn's objective, ``C * sum_i s_i loss_i + ||W||^2 / 2``
(intercept not penalised), so a converged fit equals ``LogisticRegression(C=C)`` on the same
standardised features; the tests check that. The solver is ours because scikit-learn's float64
lbfgs needs hundreds to thousands of passes over the data per fit on hidden states (they are
badly conditioned), and the sweep fits 62 heads on 67k x 576 with a C search each. Ours needs
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

Degenerate features (constant or duplicated columns, rank-deficient or wide matrices: what
embedding layers look like) make the curvature estimate singular. Every factorisation is
therefore guarded (symmetrised, floored, a ridge relative to the trace, a diagonal
preconditioner as the last resort: ``probe.heads.linalg``), and a non-finite value anywhere
raises ``SolverFailure``, on which the estimator refits with ``ReferencePath`` (scikit-learn's
lbfgs): slower, never wrong.
"""

from __future__ import annotations

import math

import numpy as np

from probe.heads.linalg import (
    SolverFailure,
    cholesky_solver,
    feature_basis,
    robust_eigh,
    thin_gram_eigh,
    weighted_gram,
)
from probe.heads.maths import logsumexp, softmax

PRECONDITIONER_ROWS = 4096  # subsample on which the data term's Hessian is estimated
LBFGS_MEMORY = 100  # curvature pairs: real hidden states at large C need many (3710 -> 1087 passes)
SEARCH_TOL = 3e-3  # Newton decrement when comparing Cs; the chosen C is polished to ``tol``
CHUNK_ROWS = 4096  # rows per block in a fused pass: both products use a block while cached
OBJECTIVE_RTOL = 1e-6  # stop also when the objective is this close to its minimum, relatively
RENEW_EVERY = 12  # iterations at one C after which the curvature is estimated again


# --- the solver -------------------------------------------------------------------------------


class LogisticPath:
    """Penalised logistic regression on one standardised matrix, warm-started from C to C.

    Parameters are ``W`` (K', D) and ``b`` (K',), K' = 1 for two classes (binary loss, like
    scikit-learn) and K' = K otherwise (symmetric multinomial). The objective in mean form,
    ``sum_i w_i loss_i + lam ||W||^2 / 2`` with ``w = s / sum(s)`` and ``lam = 1 / (C sum(s))``,
    has scikit-learn's minimiser and its gradient scale.
    Gradients are handled as (K', D+1) arrays, the intercept in the last column.
    """

    def __init__(
        self,
        X: np.ndarray,
        codes: np.ndarray,
        n_classes: int,
        sample_weight,
        seed=0,
        basis: np.ndarray | None = None,
    ):
        self.X = X  # float32 (N, D), standardised; or rows read from a file on demand
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
        self._basis = basis  # K classes: the feature eigenbasis (D+1, D+1), shareable by folds
        self._projected = None  # the subsample in that basis, squared: (m, D+1)
        self.grad_data = None  # (K', D+1) data-term gradient at W, b: it carries over C to C

    # the data term ----------------------------------------------------------------------------
    def _loss(self, Z: np.ndarray) -> float:
        """Weighted mean loss of logits Z (N, K')."""
        from scipy.special import log_expit

        if self.binary:
            z = Z[:, 0]
            return float(self.w @ -log_expit(np.where(self.target == 1, z, -z)))
        rows = np.arange(len(Z))
        return float(self.w @ (logsumexp(Z) - Z[rows, self.codes]))

    def _residual(self, Z: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """w_i * d loss_i / d z_i for the given rows: (n, K')."""
        from scipy.special import expit

        if self.binary:
            return ((expit(Z[:, 0]) - self.target[rows]) * self.w[rows])[:, None]
        residual = softmax(Z)
        residual[np.arange(len(Z)), self.codes[rows]] -= 1.0
        return residual * self.w[rows, None]

    def _gradient_pass(self) -> np.ndarray:
        """Data-term gradient at the current logits: (K', D+1), one read of X."""
        self.passes += 1
        residual = self._residual(self.Z)  # (N, K')
        if isinstance(self.X, np.ndarray):
            grad_w = residual.T.astype(np.float32) @ self.X  # (K', N) @ (N, D) -> (K', D)
        else:  # rows streamed from a file (probe.heads.streaming), block by block
            grad_w = np.zeros((self.k, self.X.shape[1]), np.float32)
            for start in range(0, len(self.X), CHUNK_ROWS):
                rows = slice(start, start + CHUNK_ROWS)
                grad_w += residual[rows].T.astype(np.float32) @ self.X[rows]
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
        p = softmax(Z)
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
        if not isinstance(self._curvature, tuple):  # two classes, more rows than features
            penalty = np.full(self.W.shape[1] + 1, lam)
            penalty[-1] = 0.0  # the intercept is not penalised
            return cholesky_solver(self._curvature + np.diag(penalty))
        scales, feature_vectors, class_vectors, null_class = self._curvature
        # (K', r); lam > 0 keeps it positive. The all-ones class direction changes no
        # prediction: the solve never moves along it (a row of zeros, not 1 / inf, since a
        # constant column's eigenvalue 0 would make that inf * 0 = NaN)
        inverse = 1.0 / (scales + lam)
        rest = np.full((len(scales), 1), 1.0 / lam)  # the null space of a thin basis
        if null_class is not None:
            inverse[null_class] = 0.0
            rest[null_class] = 0.0
        thin = feature_vectors.shape[1] < feature_vectors.shape[0]

        def solve(q: np.ndarray) -> np.ndarray:
            rotated = class_vectors.T @ q  # (K', D+1)
            projected = rotated @ feature_vectors  # (K', r)
            result = (projected * inverse) @ feature_vectors.T
            if thin:  # eigenvalue 0 off the basis: only the penalty bends there
                result += (rotated - projected @ feature_vectors.T) * rest
            return class_vectors @ result

        return solve

    def _estimate_curvature(self):
        """The data term's Hessian on the subsample: (D+1, D+1) for two classes and more rows
        than features; otherwise (scales (K', r), feature basis (D+1, r), class basis (K', K'),
        the class direction that changes nothing or None): H ~ sum of scale x (class vector
        (kron) feature vector) outer products. The basis is thin (r <= m) when there are fewer
        rows than features, so that wide data cost an m x m eigenproblem, not (D+1) x (D+1).

        K classes, more rows than features: eigenvalue-corrected K-FAC (George et al. 2018).
        The feature basis is the eigenbasis of the features' second moment; it hardly moves
        as the fit proceeds, so it is computed once (or given: every fold of a search shares
        one) and only the scales, the exact diagonal of the subsample Hessian in the
        Kronecker basis, are renewed: O(m K D), no eigenproblem."""
        from scipy.special import expit

        sub = self.X[self.sub_rows]  # (m, D)
        augmented = np.hstack([sub, np.ones((len(sub), 1), np.float32)])  # (m, D+1)
        Z = self.Z[self.sub_rows]  # (m, K')
        weight = self.w[self.sub_rows] * (len(self.X) / len(self.sub_rows))  # (m,)
        wide = len(sub) < augmented.shape[1]
        if self.binary:
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
        if wide:
            spread = (p * (1.0 - p)).mean(axis=1)  # (m,) how much each row still bends
            rows = (weight * spread).astype(np.float32)
            feature_values, feature_vectors = thin_gram_eigh(augmented, rows)
            class_values = class_values / max(float(weight @ spread), 1e-300)
            scales = np.outer(class_values, feature_values)  # K-FAC: A (kron) B
            return scales, feature_vectors, class_vectors, null_class
        if self._basis is None:
            self._basis = feature_basis(augmented)
        if self._projected is None:
            self._projected = np.square(augmented @ self._basis.astype(np.float32))  # (m, D+1)
        # each row's curvature along each class vector: u^T (diag(p) - p p^T) u, (m, K)
        along_class = p @ np.square(class_vectors) - np.square(p @ class_vectors)
        scales = (along_class * weight[:, None]).T.astype(np.float32) @ self._projected
        return np.maximum(scales.astype(np.float64), 0.0), self._basis, class_vectors, null_class

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
            if not (math.isfinite(loss) and np.isfinite(self.grad_data).all()):
                raise SolverFailure(f"non-finite loss or gradient at C={C:g}")
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
            # the decrement bounds the distance to the minimum; relative to the objective
            # too, or a near-separable fit (objective ~1e-4) would stop percent away from it
            objective = loss + 0.5 * float(np.vdot(penalty * params(), params()))
            if -slope_0 <= min(tol * tol, 2 * OBJECTIVE_RTOL * objective):
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
        return {
            "W": self.W.copy(),
            "b": self.b.copy(),
            "Z": self.Z.copy(),
            "grad_data": self.grad_data.copy(),
            "pairs": list(self.pairs),
            "curvature": self._curvature,
        }

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


class ReferencePath:
    """scikit-learn's lbfgs behind ``LogisticPath``'s interface: the fallback and reference.

    Same objective, same parametrisation (binary: one row; K classes: K rows, multinomial),
    warm-started from C to C. Its ``tol`` is a bound on the largest gradient entry of the
    mean-form objective, so ours (a Newton decrement) is mapped to a tighter one.
    """

    def __init__(self, X: np.ndarray, codes: np.ndarray, n_classes: int, sample_weight, seed=0):
        self.X, self.codes, self.sample_weight = X, codes, np.asarray(sample_weight, np.float64)
        self.binary = n_classes == 2
        self.k = 1 if self.binary else n_classes
        self.W = np.zeros((self.k, X.shape[1]))
        self.b = np.zeros(self.k)
        self.converged = True
        self._model = None

    def solve(self, C: float, tol: float, max_iter: int) -> int:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        if self._model is None:
            self._model = LogisticRegression(warm_start=True)
        self._model.set_params(C=C, tol=min(1e-4, 1e-2 * tol), max_iter=max(max_iter, 2000))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            self._model.fit(self.X, self.codes, sample_weight=self.sample_weight)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            self.converged = False
        self.W = self._model.coef_.astype(np.float64)
        self.b = self._model.intercept_.astype(np.float64)
        return int(np.max(self._model.n_iter_))

    def snapshot(self) -> dict:
        return {"W": self.W.copy(), "b": self.b.copy()}

    def restore(self, state: dict) -> None:
        self.W, self.b = state["W"].copy(), state["b"].copy()
        if self._model is not None:  # the next solve warm-starts from here
            self._model.coef_, self._model.intercept_ = self.W.copy(), self.b.copy()

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T + self.b  # (n, K')
