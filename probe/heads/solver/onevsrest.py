"""L binary logistic problems on one matrix, solved together: the multi-label head's solver.

The objective is the sum over labels of scikit-learn's binary one,
``C * sum_i loss_il + ||w_l||^2 / 2`` (intercepts not penalised). The labels share nothing
but X, so the joint minimiser is L separate ``LogisticRegression(C)`` fits (the tests check
it); solving them together is about the passes over X. Why not L calls of ``LogisticPath``:

- every pass reads X once for all labels still moving: ``X @ D^T`` and ``R^T @ X`` are GEMMs
  with L columns instead of L matrix-vector products (X is read L times less);
- one rotation serves every label, fold and C: in the eigenbasis of the features' second
  moment (``Rotation``) each label's Hessian is nearly diagonal, so a per-label diagonal
  preconditioner (O(L m D) to estimate, O(L D) to apply) does what a D x D one would. It
  took 1.7x less CPU than a preconditioner applied in the eigenbasis (K-FAC style, two
  D x D products per iteration), and scipy's L-BFGS-B on the joint problem (no
  preconditioner, one line search for all labels) took 20x more (7 labels, 1,600 x 576
  hidden states, 5-fold C search; ``benchmarks/bench_multilabel.py`` measures it on EWT);
- per-label L-BFGS memory and steps: each label stops at its own tolerance, takes its own
  step length, and drops out of the passes once converged.

Warm starts along the C path keep the curvature pairs and the data gradient, which do not
depend on C (``probe.heads.solver.lbfgs`` says why). A label that is constant in the rows
(always 0 or always 1) gets a constant head: weights 0, intercept the log-odds of its
prevalence clipped to [0.5/n, 1 - 0.5/n] (``constant``). ``JointReference`` is scipy's
L-BFGS-B on the joint problem behind the same interface: the fallback and a reference.
"""

from __future__ import annotations

import math

import numpy as np

from probe.heads.solver.curvature import subsample
from probe.heads.solver.linalg import SolverFailure, feature_basis, thin_gram_eigh
from probe.heads.solver.path import (
    OBJECTIVE_RTOL,
    RENEW_EVERY,
    SCREEN_EVERY,
    SEARCH_RTOL,
    SEARCH_TOL,
    WOLFE,
)

MEMORY = 20  # pairs per label: 10 took 47% more passes (EWT), 40 9% fewer for more CPU
CHUNK_ROWS = 512  # rows per block of a fused pass (L columns: GEMMs, as for K classes)
SCALE_BOUND = 100.0  # how far the pairs may rescale the preconditioner, either way


def constant_heads(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bool (L,) labels constant in Y's rows, (L,) starting intercepts): the log-odds of
    each label's prevalence clipped to [0.5/n, 1 - 0.5/n], finite for a constant label."""
    n = len(Y)
    prevalence = Y.mean(axis=0)
    constant = (prevalence == 0) | (prevalence == 1)
    clipped = np.clip(prevalence, 0.5 / n, 1 - 0.5 / n)
    return constant, np.log(clipped) - np.log1p(-clipped)


class Rotation:
    """An orthonormal basis of the features (D, r): the eigenbasis of their second moment.

    Why: in these coordinates each label's Hessian is nearly diagonal (the features'
    correlations, which make hidden states badly conditioned, are rotated away), so a
    diagonal preconditioner serves, and one rotation of X serves every label, fold and C.
    The L2 penalty is unchanged by an orthonormal change of basis, so the fit in rotated
    coordinates is the same fit (``back`` maps its weights to the features). Wide data (fewer
    rows than features): r <= n directions spanning the rows; the optimum lies in their span,
    so nothing is lost off it.
    """

    def __init__(self, basis: np.ndarray):
        self.basis = np.asarray(basis, np.float64)  # (D, r)
        self._basis32 = np.asarray(basis, np.float32)

    @classmethod
    def of(cls, X: np.ndarray, seed: int = 0) -> Rotation:
        n, dim = X.shape
        if n < dim:  # every row, so that every row lies in the span
            return cls(thin_gram_eigh(X, np.ones(n, np.float32))[1])
        return cls(feature_basis(X[subsample(n, seed)]))

    def apply(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, np.float32) @ self._basis32  # (n, r) float32

    def back(self, W: np.ndarray) -> np.ndarray:
        return W @ self.basis.T  # (L, D)


class _Pairs:
    """Every label's newest curvature pairs in one ring: (M, L, D+1) steps and data-gradient
    changes. A slot holds the pair of each label that stepped at that iteration; the others'
    entries are empty (rho 0), which the two-loop recursion skips label by label."""

    def __init__(self, labels: int, width: int, memory: int = MEMORY):
        self.steps = np.zeros((memory, labels, width))
        self.changes = np.zeros((memory, labels, width))  # data-gradient changes
        self.full = np.zeros((memory, labels, width))  # plus the penalty's curvature
        self.rho = np.zeros((memory, labels))  # 1 / curvature, 0: no pair
        self.valid = np.zeros((memory, labels), bool)
        self.head, self.count, self.penalty = 0, 0, None

    def _refresh(self, slots) -> None:
        self.full[slots] = self.changes[slots] + self.penalty * self.steps[slots]
        curvature = np.einsum("mlp,mlp->ml", self.full[slots], self.steps[slots])
        ok = self.valid[slots] & (curvature > 1e-300)
        self.rho[slots] = np.where(ok, 1.0 / np.where(ok, curvature, 1.0), 0.0)

    def set_penalty(self, penalty: np.ndarray) -> None:
        self.penalty = penalty
        self._refresh(slice(None))

    def add(self, labels: np.ndarray, steps: np.ndarray, changes: np.ndarray) -> None:
        slot = self.head
        self.steps[slot] = 0.0
        self.changes[slot] = 0.0
        self.valid[slot] = False
        self.steps[slot, labels], self.changes[slot, labels] = steps, changes
        self.valid[slot, labels] = True
        self._refresh([slot])
        self.head = (slot + 1) % len(self.steps)
        self.count = min(self.count + 1, len(self.steps))

    def clear(self, labels) -> None:
        self.valid[:, labels] = False
        self.rho[:, labels] = 0.0

    def order(self) -> list[int]:
        """Slots from the newest to the oldest."""
        memory = len(self.steps)
        return [(self.head - 1 - k) % memory for k in range(self.count)]

    def inverse_hessian_times(self, grad: np.ndarray, precondition) -> np.ndarray:
        """H_l^-1 grad_l for every label at once (two-loop recursion): (L, D+1)."""
        q = grad.copy()
        order, alphas = self.order(), []
        for slot in order:
            alpha = self.rho[slot] * np.einsum("lp,lp->l", self.steps[slot], q)
            q -= alpha[:, None] * self.full[slot]
            alphas.append(alpha)
        r = precondition(q)
        if order:  # each label's newest pair says how far off the preconditioner is
            usable = self.rho[order] > 0  # (k, L)
            newest = np.argmax(usable, axis=0)  # (L,)
            labels = np.arange(q.shape[0])
            slots = np.asarray(order)[newest]
            change = self.full[slots, labels]  # (L, D+1)
            curvature = 1.0 / np.where(usable.any(axis=0), self.rho[slots, labels], 1.0)
            scale = curvature / np.maximum(precondition.quadratic(change), 1e-300)
            scale = np.where(usable.any(axis=0), scale, 1.0)
            r *= np.clip(scale, 1.0 / SCALE_BOUND, SCALE_BOUND)[:, None]
        for slot, alpha in zip(reversed(order), reversed(alphas), strict=True):
            beta = self.rho[slot] * np.einsum("lp,lp->l", self.full[slot], r)
            r += (alpha - beta)[:, None] * self.steps[slot]
        return r


class OneVsRestPath:
    """L penalised binary logistic regressions on one standardised matrix, warm-started from
    C to C. ``W`` (L, D), ``b`` (L,); gradients as (L, D+1) arrays, intercept last. Mean form
    per label, ``mean_i loss_il + lam ||w_l||^2 / 2``, ``lam = 1 / (C n)``: scikit-learn's
    minimiser."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, seed=0):
        self.X = X  # float32 (n, D), standardised (and best rotated: ``Rotation``)
        n, dim = X.shape
        self.target = np.asarray(Y, np.float64)  # (n, L)
        self.sign = 2.0 * self.target - 1.0
        self.constant, self.b = constant_heads(self.target)
        labels = self.target.shape[1]
        self.W = np.zeros((labels, dim))
        self.Z = np.tile(self.b, (n, 1))  # (n, L) logits, kept in step with W, b
        self.pairs = _Pairs(labels, dim + 1)
        self._rows = subsample(n, seed)  # where the curvature is estimated
        self._squares = None  # (m, D) those rows squared
        self.passes = 0
        self.converged = True
        self.screened = False  # whether the last solve was ended by its screen
        self._scales = None  # (L, D+1) the data Hessian's diagonal per label
        self.grad_data = None  # (L, D+1)
        self.loss = None  # (L,) mean data loss

    # the data term -----------------------------------------------------------------------------
    def _residual_and_loss(self, Z, sign) -> tuple[np.ndarray, np.ndarray]:
        """(c, a) weighted d loss / d z and the rows' (a,) share of each label's mean loss,
        from one exponential (``sign`` the rows' +-1 targets)."""
        from scipy.special import expit, log_expit

        margin = sign * Z
        n = len(self.X)
        return sign * expit(-margin) / -n, log_expit(margin).sum(0) / -n

    def _pass(self, labels: np.ndarray, direction: np.ndarray | None):
        """One read of X for ``labels``: with a direction (a, D+1), how their logits move
        along it (n, a) and their data gradient (a, D+1) and loss (a,) after the full step;
        without, the gradient and loss at the current logits."""
        self.passes += 1
        along = None if direction is None else np.empty((len(self.X), len(labels)))
        grad = np.zeros((len(labels), self.X.shape[1] + 1))
        loss = np.zeros(len(labels))
        if direction is not None:
            d_w = np.ascontiguousarray(direction[:, :-1].T, np.float32)  # (D, a)
        sign, logits = self.sign[:, labels], self.Z[:, labels]  # (n, a) each
        for start in range(0, len(self.X), CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            block, Z = self.X[rows], logits[rows]
            if direction is not None:
                along[rows] = block @ d_w + direction[:, -1]
                Z = Z + along[rows]
            residual, block_loss = self._residual_and_loss(Z, sign[rows])
            grad[:, :-1] += residual.T.astype(np.float32) @ block
            grad[:, -1] += residual.sum(axis=0)
            loss += block_loss
        return along, grad, loss

    def _preconditioner(self, penalty: np.ndarray):
        """q (L, D+1) -> q_l / (diag(H_l) + penalty): each label's data Hessian diagonal,
        estimated on a subsample of rows (all, up to ``PRECONDITIONER_ROWS``) and renewed as
        the fit moves (every ``RENEW_EVERY`` iterations at one C). A good preconditioner in
        rotated features (``Rotation``): there the Hessian is nearly diagonal, and applying it
        costs no product with a D x D matrix (the eigenbasis product cost as much as a pass)."""
        from scipy.special import expit

        if self._scales is None:
            if self._squares is None:
                self._squares = np.square(self.X[self._rows])  # (m, D) float32
            p = expit(self.Z[self._rows])  # (m, L)
            weight = p * (1.0 - p) / len(self._rows)  # mean over the subsample
            scales = (weight.T.astype(np.float32) @ self._squares).astype(np.float64)
            self._scales = np.hstack([scales, weight.sum(axis=0)[:, None]])  # (L, D+1)
        inverse = 1.0 / np.maximum(self._scales + penalty, 1e-12)

        def solve(q: np.ndarray) -> np.ndarray:
            return q * inverse

        solve.quadratic = lambda q: np.sum(q * q * inverse, axis=1)
        return solve

    # one C --------------------------------------------------------------------------------
    def solve(
        self, C: float, tol: float, max_iter: int, rtol: float | None = None, screen=None
    ) -> int:
        """Minimise at ``C`` from the current W, b; each label stops when its Newton
        decrement is below ``tol`` or its objective within ``rtol`` (relative) of the
        minimum, as ``LogisticPath.solve``. Returns the iterations of the slowest label.
        ``screen`` (a function of the path, or None), asked every ``SCREEN_EVERY``
        iterations, ends the solve when it says True (``screened``): a C search's check that
        this C has already lost on held-out rows."""
        n = len(self.X)
        lam = 1.0 / (C * n)
        if rtol is None:
            rtol = SEARCH_RTOL if tol >= SEARCH_TOL else OBJECTIVE_RTOL
        penalty = np.full(self.W.shape[1] + 1, lam)
        penalty[-1] = 0.0
        everyone = np.arange(len(self.b))
        if self.grad_data is None:
            _, self.grad_data, self.loss = self._pass(everyone, None)
        self.pairs.set_penalty(penalty)
        precondition = self._preconditioner(penalty)
        todo, self.screened = ~self.constant, False
        for iteration in range(1, max_iter + 2):
            if not (np.isfinite(self.loss).all() and np.isfinite(self.grad_data).all()):
                raise SolverFailure(f"non-finite loss or gradient at C={C:g}")
            if iteration % RENEW_EVERY == 0:
                self._scales = None
                precondition = self._preconditioner(penalty)
            params = np.hstack([self.W, self.b[:, None]])  # (L, D+1)
            grad = self.grad_data + penalty * params
            direction = -self.pairs.inverse_hessian_times(grad, precondition)
            slope_0 = np.einsum("lp,lp->l", grad, direction)
            stale = todo & (slope_0 >= 0)
            if stale.any():  # restart those labels from the preconditioner
                self.pairs.clear(stale)
                direction[stale] = -precondition(grad)[stale]
                slope_0[stale] = np.einsum("lp,lp->l", grad[stale], direction[stale])
            objective = self.loss + 0.5 * np.einsum("lp,lp->l", penalty * params, params)
            todo &= -slope_0 > np.minimum(tol * tol, 2 * rtol * objective)
            if not todo.any():
                return iteration
            if iteration > max_iter:
                break
            if screen is not None and iteration % SCREEN_EVERY == 0 and screen(self):
                self.screened = True
                return iteration
            self._iterate(np.flatnonzero(todo), params, direction, slope_0, penalty)
            todo &= self._moving
        self.converged = False
        return max_iter

    def _iterate(self, labels, params, direction, slope_0, penalty) -> None:
        """One step for ``labels``: the full step where it passes Armijo and strong Wolfe
        (checked from the same pass), an exact line search where it does not."""
        d, params = direction[labels], params[labels]
        along, grad_1, loss_1 = self._pass(labels, d)
        penalty_slope = np.einsum("lp,lp->l", penalty * params, d)
        penalty_bend = np.einsum("lp,lp->l", penalty * d, d)
        slope_1 = np.einsum("lp,lp->l", grad_1, d) + penalty_slope + penalty_bend
        decrease = loss_1 - self.loss[labels] + penalty_slope + penalty_bend / 2
        full = (decrease <= 1e-4 * slope_0[labels]) & (np.abs(slope_1) <= WOLFE * -slope_0[labels])
        steps = np.ones(len(labels))
        for j in np.flatnonzero(~full):
            steps[j] = self._line_search(labels[j], along[:, j], penalty_slope[j], penalty_bend[j])
        self.W[labels] += steps[:, None] * d[:, :-1]
        self.b[labels] += steps * d[:, -1]
        self.Z[:, labels] += along * steps
        new_grad, new_loss = grad_1, loss_1
        if not full.all():  # the searched labels' gradient where they stopped: one more pass
            searched = labels[~full]
            _, new_grad[~full], new_loss[~full] = self._pass(searched, None)
        self.pairs.add(labels, steps[:, None] * d, new_grad - self.grad_data[labels])
        self.grad_data[labels], self.loss[labels] = new_grad, new_loss
        moved = steps * np.abs(d).max(axis=1) > 1e-12 * (1.0 + np.abs(params).max(axis=1))
        self._moving = np.ones(len(self.b), bool)
        self._moving[labels] = moved  # no progress left at float32 precision: stop there

    def _line_search(self, label, along, penalty_slope, penalty_bend) -> float:
        """Minimise label ``label``'s objective along its direction: safeguarded Newton on t,
        O(n) per trial (the logits move linearly; no pass over X)."""
        from scipy.special import expit

        z, y, n = self.Z[:, label], self.target[:, label], len(self.X)
        low, high, t = 0.0, math.inf, 1.0
        for _ in range(20):
            p = expit(z + t * along)
            slope = float((p - y) @ along) / n + penalty_slope + t * penalty_bend
            bend = float((p * (1 - p)) @ (along * along)) / n + penalty_bend
            low, high = (low, t) if slope > 0 else (t, high)
            if bend <= 0:
                break
            t_next = t - slope / bend
            if not low < t_next < high:
                t_next = (low + high) / 2 if math.isfinite(high) else 2 * t
            if abs(t_next - t) <= 1e-3 * t:
                return t_next
            t = t_next
        return t

    # where a solve starts -----------------------------------------------------------------
    def start_from(self, W: np.ndarray, b: np.ndarray) -> None:
        """Start the next solve at (W, b) (constant labels keep their heads): one read of X
        for the logits, no curvature pairs."""
        active = ~self.constant
        self.W[active] = np.asarray(W, np.float64)[active]
        self.b[active] = np.asarray(b, np.float64)[active]
        self.passes += 1
        weights = np.ascontiguousarray(self.W.T, np.float32)
        for start in range(0, len(self.X), CHUNK_ROWS):
            rows = slice(start, start + CHUNK_ROWS)
            self.Z[rows] = self.X[rows] @ weights + self.b
        self.grad_data, self._scales = None, None
        self.pairs.clear(slice(None))

    def snapshot(self) -> dict:
        return {
            "W": self.W.copy(),
            "b": self.b.copy(),
            "Z": self.Z.copy(),
            "grad_data": self.grad_data.copy(),
            "loss": self.loss.copy(),
        }

    def restore(self, state: dict) -> None:
        """Back to a snapshot; the curvature pairs are dropped (they belong to another W)."""
        self.W, self.b, self.Z = state["W"].copy(), state["b"].copy(), state["Z"].copy()
        self.grad_data, self.loss = state["grad_data"].copy(), state["loss"].copy()
        self._scales = None
        self.pairs.clear(slice(None))

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T + self.b  # (n, L)


class JointReference:
    """scipy's L-BFGS-B on the joint problem (all labels' parameters in one vector), behind
    ``OneVsRestPath``'s interface: no shared preconditioner, one line search for all labels.
    The fallback when the fast path meets a value it cannot use, and its reference. Its
    ``tol`` maps to scipy's bound on the largest gradient entry, as ``ReferencePath``'s."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, seed=0):
        self.X = np.asarray(X, np.float64)
        self.target = np.asarray(Y, np.float64)
        self.constant, self.b = constant_heads(self.target)
        self.W = np.zeros((self.target.shape[1], X.shape[1]))
        self.converged = True
        self.screened = False
        self.passes = 0

    def solve(
        self, C: float, tol: float, max_iter: int, rtol: float | None = None, screen=None
    ) -> int:
        """Minimise at ``C`` from the current W, b (no screen: every C solved to the end)."""
        from scipy.optimize import minimize
        from scipy.special import expit, log_expit

        active = np.flatnonzero(~self.constant)
        if not len(active):
            return 0
        n, dim = self.X.shape
        lam = 1.0 / (C * n)
        sign = 2.0 * self.target[:, active] - 1.0
        shape = (len(active), dim + 1)

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            params = flat.reshape(shape)
            self.passes += 1
            margin = sign * (self.X @ params[:, :-1].T + params[:, -1])
            residual = -sign * expit(-margin) / n  # (n, a)
            grad = np.hstack([residual.T @ self.X, residual.sum(0)[:, None]])
            grad[:, :-1] += lam * params[:, :-1]
            value = -log_expit(margin).sum() / n + lam / 2 * np.sum(params[:, :-1] ** 2)
            return value, grad.ravel()

        start = np.hstack([self.W[active], self.b[active, None]]).ravel()
        options = {"maxiter": max(max_iter, 2000), "gtol": min(1e-4, 1e-2 * tol), "maxls": 50}
        options["ftol"] = 64 * np.finfo(float).eps
        result = minimize(objective, start, jac=True, method="L-BFGS-B", options=options)
        if not np.isfinite(result.fun):
            raise SolverFailure(f"non-finite objective at C={C:g}")
        params = result.x.reshape(shape)
        self.W[active], self.b[active] = params[:, :-1], params[:, -1]
        self.converged = bool(result.success)
        return int(result.nit)

    def start_from(self, W: np.ndarray, b: np.ndarray) -> None:
        active = ~self.constant
        self.W[active] = np.asarray(W, np.float64)[active]
        self.b[active] = np.asarray(b, np.float64)[active]

    def snapshot(self) -> dict:
        return {"W": self.W.copy(), "b": self.b.copy()}

    def restore(self, state: dict) -> None:
        self.W, self.b = state["W"].copy(), state["b"].copy()

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T + self.b
