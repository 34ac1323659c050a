"""The solver's path: penalised logistic regression on one matrix, warm-started from C to C.

It minimises exactly scikit-learn's objective, ``C * sum_i s_i loss_i + ||W||^2 / 2``
(intercept not penalised), so a converged fit equals ``LogisticRegression(C=C)`` on the same
standardised features; the tests check that.

- L-BFGS (``lbfgs``) whose initial inverse Hessian is the data term's Hessian estimated on a
  subsample plus the exact penalty (``curvature``), scaled to the newest curvature pair;
- the full step is checked (Armijo, Wolfe) from one read of X that also gives the next
  gradient; only when it fails is there a line search, exact and O(N) per trial step;
- warm starts along the C path (small to large C), keeping the curvature pairs and the
  gradient of the data term, which do not depend on C;
- Cs are compared at a looser tolerance (``SEARCH_TOL``, ``SEARCH_RTOL``); the chosen one is
  then polished to ``tol`` from where the path left it;
- float32 for the data matrix (it was fp16 in the cache), float64 for everything else.
"""

from __future__ import annotations

import math

import numpy as np

from probe.heads.maths import logsumexp, softmax
from probe.heads.solver import curvature
from probe.heads.solver.curvature import SharedSubsample, subsample
from probe.heads.solver.lbfgs import CurvaturePairs
from probe.heads.solver.linalg import SolverFailure

SEARCH_TOL = 3e-3  # Newton decrement when comparing Cs; the chosen C is polished to ``tol``
# rows per block of a fused pass: both products read a block while it is in L2 (256 x 576
# float32 = 590 kB): 30-35% less CPU per pass than 4,096-row blocks at 4k and 25k rows (EPYC)
CHUNK_ROWS = 256
# two classes: the products are matrix-vector, bound by memory, and per-block Python calls
# weigh more; 1,024 rows: 8-10% less CPU per pass than 256 at 18k and 67k rows (EPYC). Not
# for K classes: at 6, 512- and 1,024-row blocks were 35% slower than 256 (the GEMM kernels)
BINARY_CHUNK_ROWS = 1024
FILE_CHUNK_ROWS = 4096  # rows per read when X is a file (probe.heads.streaming): fewer reads
OBJECTIVE_RTOL = 1e-6  # stop also when the objective is this close to its minimum, relatively
# ... and while comparing Cs: held-out losses of neighbouring Cs differ by 1e-3 and more, and
# the last 1e-6 costs a third of a search's passes (six classes; same Cs chosen)
SEARCH_RTOL = 1e-5
# a C past a rise of the held-out loss is there to confirm the turn (``turned_up``): at 1e-4
# its held-out accuracy was unchanged and the rise kept, for half the passes (UPOS, C = 10)
CONFIRM_RTOL = 1e-4
MISFIT_CURVATURE = 0.05  # floor of a row's curvature along its true class (below)
RENEW_EVERY = 12  # iterations at one C after which the curvature is estimated again
LINE_ROWS = 512  # rows per block of a line-search trial: its (rows, K) temporaries in L2
LINE_TRIALS = 10  # a line search's trials at most (convex along the line: 1-2 are usual)
WOLFE = 0.9  # curvature condition of the full step: 0.9 is the usual one for quasi-Newton
SCREEN_EVERY = 3  # iterations between a screen's checks (one held-out product: ~1/8 pass)


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
        shared: SharedSubsample | None = None,
    ):
        self.X = X  # float32 (N, D), standardised; or rows read from a file on demand
        self.codes = codes  # int (N,)
        self.binary = n_classes == 2
        self.k = 1 if self.binary else n_classes
        n, dim = X.shape
        self.weight_sum = float(np.sum(sample_weight))
        self.w = np.asarray(sample_weight, np.float64) / self.weight_sum  # (N,)
        self.target = (codes == 1).astype(np.float64) if self.binary else None  # (N,)
        # two classes: the loss of row i is softplus(-m_i), m_i = sign_i * z_i (sign +-1), and
        # w_i * d loss_i / d z_i = -sign_i w_i expit(-m_i): a pass needs one exponential
        self.sign = 2.0 * self.target - 1.0 if self.binary else None  # (N,)
        self.signed_w = self.sign * self.w if self.binary else None  # (N,)
        self.W = np.zeros((self.k, dim))
        # start at W = 0 with the best intercept there: the weighted class log-odds
        share = np.bincount(codes, weights=self.w, minlength=n_classes)  # (K,)
        # K classes: one with no rows here (a fold's, when the class has one or two rows) has
        # no optimum, its intercept falls without end and its zero curvature sent steps of
        # 1e4-1e5 through the preconditioner (a fold's training loss rose to 4e4): it stays
        # where it starts (probability ~1e-12 of the others'), its gradient held at zero
        absent = share <= 0
        self.absent = absent if (absent.any() and not self.binary) else None  # (K,) or None
        log_share = np.log(share.clip(1e-12))
        self.b = (log_share[1:] - log_share[:1]) if self.binary else log_share - log_share.mean()
        self.Z = np.tile(self.b, (n, 1))  # logits X W^T + b, kept in step with W, b
        self.pairs = CurvaturePairs()  # (step, change of data gradient): they carry over C
        self.seed = seed
        self.shared = shared  # K classes: basis and subsample, shareable by the folds
        self.sub_rows = subsample(n, seed) if shared is None else shared.rows
        self.passes = 0  # reads of X: the cost that matters
        self.converged = True
        self.screened = False  # whether the last solve was ended by its screen
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
        return float(self.w @ (logsumexp(Z) - Z[rows, self.codes]))

    def _residual(self, Z: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """w_i * d loss_i / d z_i for the given rows: (n, K')."""
        from scipy.special import expit

        if self.binary:
            return ((expit(Z[:, 0]) - self.target[rows]) * self.w[rows])[:, None]
        residual = softmax(Z)
        residual[np.arange(len(Z)), self.codes[rows]] -= 1.0
        return residual * self.w[rows, None]

    def _residual_and_loss(self, Z: np.ndarray, rows: slice) -> tuple[np.ndarray, float]:
        """``_residual`` and the rows' share of the weighted loss, from one exponential: a
        pass then needs no second sweep over the logits for the loss (~7% of a fit)."""
        from scipy.special import expit, log_expit

        if self.binary:
            margin = self.sign[rows] * Z[:, 0]  # (n,)
            loss = -float(self.w[rows] @ log_expit(margin))
            return (self.signed_w[rows] * -expit(-margin))[:, None], loss
        top = Z.max(axis=1, keepdims=True)
        residual = np.exp(Z - top)
        total = residual.sum(axis=1, keepdims=True)
        residual /= total
        picked = np.arange(len(Z)), self.codes[rows]
        loss = float(self.w[rows] @ (top[:, 0] + np.log(total[:, 0]) - Z[picked]))
        residual[picked] -= 1.0
        return residual * self.w[rows, None], loss

    def _blocks(self):
        """Row slices of X for a pass: L2-sized in memory, larger reads from a file."""
        chunk = BINARY_CHUNK_ROWS if self.binary else CHUNK_ROWS
        chunk = chunk if isinstance(self.X, np.ndarray) else FILE_CHUNK_ROWS
        return (slice(start, start + chunk) for start in range(0, len(self.X), chunk))

    def _gradient_pass(self) -> np.ndarray:
        """Data-term gradient at the current logits: (K', D+1), one read of X."""
        self.passes += 1
        residual = self._residual(self.Z)  # (N, K')
        if isinstance(self.X, np.ndarray):
            grad_w = residual.T.astype(np.float32) @ self.X  # (K', N) @ (N, D) -> (K', D)
        else:  # rows streamed from a file (probe.heads.streaming), block by block
            grad_w = np.zeros((self.k, self.X.shape[1]), np.float32)
            for rows in self._blocks():
                grad_w += residual[rows].T.astype(np.float32) @ self.X[rows]
        return self._held(np.hstack([grad_w.astype(np.float64), residual.sum(axis=0)[:, None]]))

    def _held(self, grad: np.ndarray) -> np.ndarray:
        """``grad`` (K', D+1) with the rows of absent classes zeroed: they do not move."""
        if self.absent is not None:
            grad[self.absent] = 0.0
        return grad

    def _moving(self, direction: np.ndarray) -> np.ndarray:
        """A step ``direction`` (K', D+1) that leaves absent classes where they are: their
        rows zeroed, and no shift common to all the other classes (which would move only the
        absent ones, relatively: the preconditioner's centring put their huge intercept step
        there, 4e4 in one fold)."""
        if self.absent is not None:
            direction[self.absent] = 0.0
            present = ~self.absent
            direction[present] -= direction[present].mean(axis=0)
        return direction

    def _step_pass(self, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """One read of X, block by block: how the logits move along ``direction`` (N, K'),
        and the data gradient (K', D+1) and loss after the full step (t = 1), which is
        usually taken.
        """
        self.passes += 1
        d_w = np.ascontiguousarray(direction[:, :-1].T, np.float32)  # (D, K')
        along = np.empty_like(self.Z)
        grad = np.zeros_like(direction)
        loss = 0.0
        for rows in self._blocks():
            block = self.X[rows]  # (c, D)
            along[rows] = block @ d_w + direction[:, -1]  # (c, K')
            residual, block_loss = self._residual_and_loss(self.Z[rows] + along[rows], rows)
            grad[:, :-1] += residual.T.astype(np.float32) @ block
            grad[:, -1] += residual.sum(axis=0)
            loss += block_loss
        return along, self._held(grad), loss

    def _along(self, t: float, along: np.ndarray) -> tuple[float, float, float]:
        """Data loss, slope and bend at Z + t * along: O(N K), no read of X; by row blocks, so
        the (N, K) temporaries stay in cache (at 352 classes a trial was a third of a pass)."""
        from scipy.special import expit, log_expit

        loss = slope = bend = 0.0
        for start in range(0, len(self.Z), LINE_ROWS):
            rows = slice(start, start + LINE_ROWS)
            Z, u, w = self.Z[rows] + t * along[rows], along[rows], self.w[rows]
            if self.binary:
                margin, u = self.sign[rows] * Z[:, 0], u[:, 0]
                p = expit(Z[:, 0])
                loss -= float(w @ log_expit(margin))
                slope += float(w @ ((p - self.target[rows]) * u))
                bend += float(w @ (p * (1 - p) * u * u))
                continue
            top = Z.max(axis=1, keepdims=True)
            p = np.exp(Z - top)
            total = p.sum(axis=1)
            p /= total[:, None]
            picked = np.arange(len(Z)), self.codes[rows]
            loss += float(w @ (top[:, 0] + np.log(total) - Z[picked]))
            pu = p * u
            p_u = pu.sum(axis=1)
            slope += float(w @ (p_u - u[picked]))
            bend += float(w @ (np.einsum("ij,ij->i", pu, u) - p_u * p_u))
        return loss, slope, bend

    def _curvature_weights(self, rows: np.ndarray) -> np.ndarray:
        """``w_i p_ik (1 - p_ik)`` (m, K') of the given rows: each one's curvature along its own
        logits, the true class's floored at ``w_i (1 - p) MISFIT_CURVATURE``: a row whose own
        class is all but ruled out (p ~ e^-24, a class the start never saw) has a loss that is
        linear there, not quadratic, and its Newton step on the intercept was 1e10."""
        from scipy.special import expit

        weight = self.w[rows] * (len(self.X) / len(rows))  # (m,): weights sum to ~1
        Z, codes = self.Z[rows], self.codes[rows]
        p = expit(Z) if self.binary else softmax(Z)
        c = p * (1.0 - p)
        if self.binary:
            true = np.where(codes == 1, p[:, 0], 1.0 - p[:, 0])
            c[:, 0] = (1.0 - true) * np.maximum(true, MISFIT_CURVATURE)
        else:
            own = np.arange(len(rows)), codes
            c[own] = (1.0 - p[own]) * np.maximum(p[own], MISFIT_CURVATURE)
        return c * weight[:, None]

    def _preconditioner(self, lam: float):
        """Approximate inverse Hessian of the objective, as a function (K', D+1) -> (K', D+1).

        The data term's Hessian is estimated on a subsample where the path starts (K classes:
        again at every C, from the last C's solution: at 352 classes an estimate kept from
        the C before cost twice the passes); at each C the penalty changes (a Cholesky, or a
        division in an eigenbasis) and the L-BFGS pairs follow the curvature as it moves. On
        (nearly) separable data p(1 - p) collapses as C grows and the estimate becomes far
        too stiff: after ``RENEW_EVERY`` iterations at one C it is renewed, which cuts
        iterations per C there from 100-180 to ~15. (``probe.heads.solver.curvature`` says
        how it is estimated.)
        """
        if self._curvature is None:
            exact = self.binary and len(self.sub_rows) > self.X.shape[1]
            if self.shared is None and not exact:  # one basis for the whole path
                self.shared = SharedSubsample.of(self.X, self.seed)
                self.sub_rows = self.shared.rows
            sub = self.sub_rows
            if exact:
                weight = self.w[sub] * (len(self.X) / len(sub))  # (m,)
                self._curvature = curvature.binary_hessian(self.X[sub], self.Z[sub], weight)
            else:
                c = self._curvature_weights(sub)
                self._curvature = curvature.class_blocks(c, self.shared, len(self.X))
        return curvature.inverse(self._curvature, lam, self.W.shape[1])

    # one C -----------------------------------------------------------------------------------
    def solve(
        self, C: float, tol: float, max_iter: int, rtol: float | None = None, screen=None
    ) -> int:
        """Minimise at ``C`` from the current W, b; return the gradient evaluations used.

        Stops when the Newton decrement ``sqrt(g . H^-1 g)`` (H^-1 from L-BFGS) is below
        ``tol``: the objective is then within about ``tol^2 / 2`` of its minimum. A bound on
        the gradient alone (scikit-learn's criterion) stops far from the minimum at large C,
        where the objective is flat in directions the penalty barely holds.

        Each iteration reads X once when the full quasi-Newton step is good (Armijo and
        strong Wolfe conditions, checked without reading X), twice when a line search is
        needed. The data term's gradient carries over from the previous C.

        ``screen`` (a function of the path, or None), asked every ``SCREEN_EVERY``
        iterations, ends the solve when it says True (``screened``): a C search's check that
        this C has already lost (``probe.heads.search.screen_against``).
        """
        lam = 1.0 / (C * self.weight_sum)
        if rtol is None:
            rtol = SEARCH_RTOL if tol >= SEARCH_TOL else OBJECTIVE_RTOL
        penalty = np.full(self.W.shape[1] + 1, lam)
        penalty[-1] = 0.0  # (D+1,): the intercept is not penalised
        params = lambda: np.hstack([self.W, self.b[:, None]])  # noqa: E731  (K', D+1)
        if not self.binary:  # K classes: the curvature moved with the last C's solution
            self._curvature = None
        precondition = self._preconditioner(lam)
        self.pairs.set_penalty(penalty)
        if self.grad_data is None:
            self.grad_data = self._gradient_pass()
        loss = self._loss(self.Z)
        self.screened = False
        for evaluations in range(1, max_iter + 2):
            if not (math.isfinite(loss) and np.isfinite(self.grad_data).all()):
                raise SolverFailure(f"non-finite loss or gradient at C={C:g}")
            if evaluations % RENEW_EVERY == 0:  # slow progress: the curvature has moved
                self._curvature = None
                precondition = self._preconditioner(lam)
            grad = self.grad_data + penalty * params()
            direction = self._moving(-self.pairs.inverse_hessian_times(grad, precondition))
            slope_0 = float(np.vdot(grad, direction))  # -(Newton decrement)^2
            if slope_0 >= 0:  # stale curvature pairs: restart from the preconditioner
                self.pairs.clear()
                direction = self._moving(-precondition(grad))
                slope_0 = float(np.vdot(grad, direction))
            # the decrement bounds the distance to the minimum; relative to the objective
            # too, or a near-separable fit (objective ~1e-4) would stop percent away from it
            objective = loss + 0.5 * float(np.vdot(penalty * params(), params()))
            if -slope_0 <= min(tol * tol, 2 * rtol * objective):
                return evaluations
            if evaluations > max_iter:
                break
            if screen is not None and evaluations % SCREEN_EVERY == 0 and screen(self):
                self.screened = True
                return evaluations
            along, grad_data_full_step, loss_1 = self._step_pass(direction)
            penalty_slope = float(np.vdot(penalty * params(), direction))
            penalty_bend = float(np.vdot(penalty * direction, direction))
            slope_1 = float(np.vdot(grad_data_full_step, direction)) + penalty_slope + penalty_bend
            decrease = loss_1 - loss + penalty_slope + penalty_bend / 2
            full_step = decrease <= 1e-4 * slope_0 and abs(slope_1) <= WOLFE * -slope_0
            step, loss_step = 1.0, loss_1
            if not full_step:
                step, loss_step = self._line_search(
                    along, loss, slope_0, decrease, slope_1, penalty_slope, penalty_bend
                )
                if step == 0.0:  # no trial lowered the objective: the pairs misled it
                    if not len(self.pairs):  # the preconditioner's own direction did too
                        raise SolverFailure(f"no step lowered the objective at C={C:g}")
                    self.pairs.clear()
                    continue
            self.W += step * direction[:, :-1]
            self.b += step * direction[:, -1]
            self.Z += step * along
            new_grad_data = grad_data_full_step if full_step else self._gradient_pass()
            loss = loss_step
            self.pairs.add(step * direction, new_grad_data - self.grad_data)
            self.grad_data = new_grad_data
            if step * np.abs(direction).max() <= 1e-12 * (1.0 + np.abs(params()).max()):
                return evaluations  # no progress left at float32 precision
        self.converged = False
        return max_iter

    def start_from(self, W: np.ndarray, b: np.ndarray) -> None:
        """Start the next solve at (W, b) (e.g. the mean of a C search's fold fits) instead of
        walking the path up to its C: one read of X for the logits, no curvature pairs."""
        self.W, self.b = np.array(W, np.float64), np.array(b, np.float64)
        if self.absent is not None:  # another fold's fit: a class it had, this one has not
            self.W[self.absent] = 0.0  # (at that fit's level it took 1% of the probability)
            self.b[self.absent] = self.b[~self.absent].min() + math.log(1e-12)
        self.passes += 1
        weights = np.ascontiguousarray(self.W.T, np.float32)  # (D, K')
        for rows in self._blocks():
            self.Z[rows] = self.X[rows] @ weights + self.b
        self.grad_data, self._curvature = None, None
        self.pairs.clear()

    def snapshot(self) -> dict:
        """The state after a solve, to resume from later (a few MB at most)."""
        return {
            "W": self.W.copy(),
            "b": self.b.copy(),
            "Z": self.Z.copy(),
            "grad_data": self.grad_data.copy(),
            "pairs": self.pairs.snapshot(),
            "curvature": self._curvature,
        }

    def restore(self, state: dict) -> None:
        self.W, self.b, self.Z = state["W"].copy(), state["b"].copy(), state["Z"].copy()
        self.grad_data = state["grad_data"].copy()
        self.pairs.restore(state["pairs"])
        self._curvature = state["curvature"]

    def _line_search(self, along, loss, slope_0, change_1, slope_1, penalty_slope, penalty_bend):
        """(t, data loss at t): a step meeting the conditions the full step missed (Armijo,
        strong Wolfe), from the minimiser of the cubic through the objective's values and
        slopes at t = 0 and 1 (known from the pass), then safeguarded Newton steps on t.
        The objective is convex along the line, so the slope's sign brackets the minimum;
        each trial is O(N K), no read of X. Usually one trial: the Newton steps from t = 1
        this replaced took 2-9 (352 classes: half a head's time)."""
        low, high = (1.0, math.inf) if slope_1 < 0 else (0.0, 1.0)
        d1 = slope_0 + slope_1 - 3.0 * change_1
        d2 = math.sqrt(max(d1 * d1 - slope_0 * slope_1, 0.0))
        denominator = slope_1 - slope_0 + 2.0 * d2
        t = 1.0 - (slope_1 + d2 - d1) / denominator if denominator != 0 else math.nan
        if not math.isfinite(t):
            t = 0.5 if high == 1.0 else 2.0
        t = min(max(t, 0.05), 0.95) if high == 1.0 else min(max(t, 1.5), 8.0)
        best = (0.0, 0.0, loss)  # (change, t, loss at t): no step unless a trial lowers it
        for _ in range(LINE_TRIALS):
            loss_t, slope, bend = self._along(t, along)
            slope += penalty_slope + t * penalty_bend
            bend += penalty_bend
            change = loss_t - loss + t * penalty_slope + t * t * penalty_bend / 2
            if change <= 1e-4 * t * slope_0 and abs(slope) <= WOLFE * -slope_0:
                return t, loss_t
            best = min(best, (change, t, loss_t))
            low, high = (low, t) if slope > 0 else (t, high)
            t_next = t - slope / bend if bend > 0 else math.nan
            if not low < t_next < high:
                t_next = (low + high) / 2 if math.isfinite(high) else 2 * t
            t = t_next
        return best[1], best[2]  # conditions unmet: the lowest objective tried, or t = 0

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T + self.b  # (n, K')
