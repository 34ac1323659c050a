"""``ProbeClassifier``: the scikit-learn estimator a head is, standardising and choosing C.

Multinomial logistic regression on standardised features (binary: one weight vector, as
scikit-learn's ``LogisticRegression``), L2 penalty ``C``; the numerics live in
``probe.heads.solver``. ``C`` is searched over ``DEFAULT_CS`` unless given: on validation
data passed to ``fit``, else by stratified cross-validation on the training data (grouped:
``fit(..., groups=)`` keeps a group out of two folds). The chosen C has the lowest held-out
log loss. Test data never choose anything.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probe.errors import ProbeError
from probe.heads.inputs import InvalidTrainingData, check_finite, standardise
from probe.heads.maths import (
    accuracy_and_log_loss,
    folded_weights,
    pick_C,
    softmax,
)
from probe.heads.search import (
    COARSE_RTOL,
    COARSE_TOL,
    beaten,
    best_index,
    checked_groups,
    confirming,
    fold_count,
    fold_rows,
    refine_next,
    screen_against,
    turned_up,
)
from probe.heads.solver import (
    SEARCH_TOL,
    LogisticPath,
    ReferencePath,
    SharedSubsample,
    SolverFailure,
)

DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 2, 7))  # 1e-4 .. 1e2, one per decade
SMALL_PROBLEM = 1 << 22  # entries of X below which BLAS runs single-threaded


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
        Folds of the stratified cross-validation used when ``fit`` gets no validation data
        (stratified group k-fold when ``fit`` gets ``groups``).
    tol, max_iter :
        Stop when the Newton decrement of the mean-loss objective is below ``tol`` (the
        mean log loss is then within ~tol^2/2 of its minimum: 5e-7 by default, about as
        tight as scikit-learn's default of 1e-4 on the largest gradient entry), or after
        ``max_iter`` iterations per C.
    random_state : int
        Seeds the cross-validation folds and the preconditioner's subsample.
    copy_X : bool
        False lets ``fit`` standardise a float32 X in place (it is overwritten).
    stop_early : bool
        End the C search (on validation data or by cross-validation) once the held-out log
        loss has risen for two values of C in a row and the best accuracy came before them
        (``turned_up``): larger Cs cost the most iterations and no longer win. And end a C's
        fit early once it has clearly lost to the best C so far on the held-out rows
        (``probe.heads.search.screen_against``; ``search_["screened"]`` counts them). False:
        every C of the grid is solved to the end.
    exact : bool
        Every C of the grid solved to ``tol`` (the final fit's tolerance, not the looser
        one Cs are compared at), no screen, no early stop: the reference the fast search is
        measured against (``--exact``).

    Attributes
    ----------
    classes_, coef_, intercept_, mean_, scale_ :
        Labels; weights (K', D) and intercepts (K',) on features standardised by mean_, scale_.
    C_, search_, n_iter_, solver_ :
        The chosen C; the search (Cs tried, the grid, score, log loss and fits screened per C);
        iterations; "probe-lbfgs", or "sklearn-fallback" (``fallback_reason_`` says why).
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
        stop_early=True,
        exact=False,
    ):
        self.C = C
        self.Cs = Cs
        self.class_weight = class_weight
        self.cv = cv
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.copy_X = copy_X
        self.stop_early = stop_early
        self.exact = exact

    # fitting -----------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None, groups=None):
        """Fit on (X, y); choose C on (X_val, y_val) when given, else by cross-validation
        whose folds keep each of ``groups`` (one id per row, or None: rows) whole."""
        from threadpoolctl import threadpool_limits

        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64], ensure_all_finite=False)
        check_finite(X, "X")
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InvalidTrainingData(
                f"the training labels have one class ({self.classes_[0]!r}); "
                "a classifier needs at least 2 classes"
            )
        val_codes = None
        if self.C is None and X_val is not None:
            X_val = validate_data(
                self, X_val, reset=False, dtype=[np.float32, np.float64], ensure_all_finite=False
            )
            check_finite(X_val, "validation X")
            val_codes = self._encode(y_val, "validation")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked: one line
            standardised, self.mean_, self.scale_ = standardise(X, self.copy_X)  # (N, D) f32
        sample_weight = self._sample_weight(codes)
        grid = self._grid()
        self._groups = checked_groups(groups, len(codes))
        X_val = None if val_codes is None else self._standardise32(X_val)
        self._shared = SharedSubsample.for_fit(standardised, len(self.classes_), self.random_state)
        self._held_logits = None  # the k-fold search's held-out logits, if it runs
        self._fold_means = {}  # C -> the folds' mean (W, b) there: where the final fit starts
        # BLAS threads pay off on big matrices only; on small ones they spin and wait
        with threadpool_limits(limits=None if X.size >= SMALL_PROBLEM else 1):
            self.solver_, self.fallback_reason_ = "probe-lbfgs", None
            try:
                with np.errstate(all="ignore"):  # non-finite values are checked, not warned
                    path, best_C = self._fit_path(
                        LogisticPath, standardised, codes, sample_weight, grid, X_val, val_codes
                    )
            except ProbeError:
                raise
            except (SolverFailure, ArithmeticError, ValueError) as error:  # LinAlgError too
                self.solver_ = "sklearn-fallback"
                self.fallback_reason_ = f"{type(error).__name__}: {error}"[:200]
                try:
                    path, best_C = self._fit_path(
                        ReferencePath, standardised, codes, sample_weight, grid, X_val, val_codes
                    )
                except (ArithmeticError, ValueError) as second:
                    raise ProbeError(
                        f"could not fit a head: {self.fallback_reason_[:80]}; scikit-learn "
                        f"then: {type(second).__name__}: {str(second).splitlines()[0][:80]}"
                    ) from None
            self.coef_, self.intercept_ = path.W.copy(), path.b.copy()
        if not path.converged:
            warnings.warn(
                f"ProbeClassifier did not converge in max_iter={self.max_iter} iterations "
                "per C; raise max_iter or lower C",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.C_ = best_C
        return self

    def _fit_path(self, path_class, X, codes, sample_weight, grid, X_val, val_codes):
        """C search (given, on validation, or cross-validated) then the polished fit at the
        chosen C, with one solver: (path, chosen C). Sets ``search_`` and ``n_iter_``."""
        self._path_class = path_class
        search_tol = self._search_tol()
        if self.C is not None:
            best_C = float(self.C)
            self.search_ = {"method": "given", "Cs": [best_C]}
        elif val_codes is not None:
            scores, states, path = self._path_scores(
                X, codes, sample_weight, grid, X_val, val_codes
            )
            best_C = self._pick(grid, scores, "validation")
            path.restore(states[grid.index(best_C)])
        else:
            best_C = self._cross_validate(X, codes, sample_weight, grid)
        if self.C is not None or val_codes is None:
            path = self._new_path(X, codes, sample_weight)
            start = getattr(self, "_fold_means", {}).get(best_C)
            if start is not None:
                path.start_from(*start)  # the folds' mean fit at that C: near the optimum
            else:
                for C in [c for c in grid if c < best_C]:  # warm starts along the path
                    path.solve(C, search_tol, self.max_iter)
        path.converged = True  # the warning is about the head, not a C the search left
        self.n_iter_ = path.solve(best_C, self.tol, self.max_iter)  # polished to tol
        return path, best_C

    def _new_path(self, X, codes, sample_weight, rows=None):
        """A path on X (``rows`` of the standardised matrix, when a fold's)."""
        path_class = getattr(self, "_path_class", LogisticPath)
        if path_class is not LogisticPath:
            return path_class(X, codes, len(self.classes_), sample_weight, seed=self.random_state)
        shared = getattr(self, "_shared", None)
        if shared is not None and rows is not None:
            shared = shared.within(rows)
        seed, classes = self.random_state, len(self.classes_)
        return path_class(X, codes, classes, sample_weight, seed=seed, shared=shared)

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

    def _path_scores(self, X, codes, sample_weight, grid, X_val, val_codes):
        """Validation (accuracy, log loss) at each C of a warm-started path: (Cs tried, 2);
        the path's state at each C; the path. The path stops early where the loss has turned
        up (``stop_early``); it then solves each C coarsely and refines only the Cs that can
        still win (``refine_next``), the search's tolerance applied where it decides."""
        path = self._new_path(X, codes, sample_weight)
        coarse = self._stops_early()
        scores, states, self._screened, self._refined = [], [], [], [] if coarse else None
        for C in grid:
            best = self._best(grid, scores)
            screen = screen_against(None if best is None else scores[best], X_val, val_codes)
            tol, rtol = (self._search_tol(), self._confirming(scores))
            tol, rtol = (COARSE_TOL, COARSE_RTOL) if coarse else (tol, rtol)
            path.solve(C, tol, self.max_iter, rtol=rtol, screen=screen)
            self._screened.append(int(path.screened))
            scores.append(accuracy_and_log_loss(path.logits(X_val), val_codes, path.binary))
            states.append(path.snapshot())
            if self._stops_early() and turned_up(np.asarray(scores)):
                break
        while coarse and (at := refine_next(scores, self._refined)) is not None:
            path.restore(states[at])
            path.solve(grid[at], self._search_tol(), self.max_iter)
            scores[at] = accuracy_and_log_loss(path.logits(X_val), val_codes, path.binary)
            states[at] = path.snapshot()
            self._refined.append(at)
        return np.asarray(scores), states, path

    def _cross_validate(self, X, codes, sample_weight, grid) -> float:
        """The C search by stratified k-fold: the folds advance together, C by C (so the
        search can stop once the mean held-out loss has turned up), and each fold's held-out
        logits at every C are kept: ``out_of_fold_proba`` then needs no refit."""
        groups = getattr(self, "_groups", None)
        folds = fold_count(codes, self.cv, groups)
        if folds < 2 or len(grid) == 1:
            self.search_ = {"method": "default (too few examples per class to cross-validate)"}
            return 1.0 if len(grid) > 1 else grid[0]
        splits = list(fold_rows(codes, folds, self.random_state, groups))
        paths = [
            self._new_path(X[train], codes[train], sample_weight[train], rows=train)
            for train, _ in splits
        ]
        held_X = [X[held] for _, held in splits]
        # a held-out row of a class its fold never trained on (one of a class's two rows)
        # scores no C: its loss says how far that class's free intercept drifted. Scored: the rest
        known = [np.isin(codes[held], codes[train]) for train, held in splits]
        scored = [
            (rows_X[k], codes[held][k])
            for rows_X, (_, held), k in zip(held_X, splits, known, strict=True)
        ]
        scores, self._held_logits, self._fold_means, self._screened = [], [], {}, []
        per_fold = []  # (folds, 2) held-out scores at each C: a fold is screened on its own

        def solve_fold(fold: int, C: float, rtol, screen=None) -> tuple:
            """Fold ``fold``'s path solved at C: its held-out (logits, (accuracy, loss))."""
            path = paths[fold]
            path.solve(C, self._search_tol(), self.max_iter, rtol=rtol, screen=screen)
            fold_logits = path.logits(held_X[fold])
            held_codes = scored[fold][1]
            score = accuracy_and_log_loss(fold_logits[known[fold]], held_codes, path.binary)
            return fold_logits, score

        for C in grid:
            rtol, best, solved = self._confirming(scores), self._best(grid, scores), []
            for fold, path in enumerate(paths):
                if C == grid[0] and fold > 0:
                    path.start_from(paths[0].W, paths[0].b)  # the folds' optima are close there
                screen = screen_against(
                    None if best is None else per_fold[best][fold], *scored[fold]
                )
                solved.append(solve_fold(fold, C, rtol, screen))
            fold_scores = [fold_score for _, fold_score in solved]
            if best is not None and not beaten(scores[best], np.mean(fold_scores, 0)):
                # screened folds lost on their own, but the mean is close to the best: decide
                # it on finished fits (a partial fit's scores can err either way)
                for fold in [i for i, path in enumerate(paths) if path.screened]:
                    solved[fold] = solve_fold(fold, C, rtol)
                fold_scores = [fold_score for _, fold_score in solved]
            logits = [fold_logits for fold_logits, _ in solved]
            per_fold.append(fold_scores)
            self._screened.append(sum(int(path.screened) for path in paths))
            scores.append(np.mean(fold_scores, axis=0))
            self._held_logits.append(logits)
            self._fold_means[C] = (
                np.mean([p.W for p in paths], 0),
                np.mean([p.b for p in paths], 0),
            )
            if self._stops_early() and turned_up(np.asarray(scores)):
                break
        self._held_rows = [held for _, held in splits]
        self._fold_absent = [getattr(path, "absent", None) for path in paths]
        how = "grouped " if groups is not None else ""
        return self._pick(grid, np.asarray(scores), f"{folds}-fold {how}cross-validation")

    def out_of_fold_proba(self) -> np.ndarray | None:
        """(N, K) probabilities of each training row from the C search's fold fit that did
        not see it, at the chosen C (the search's tolerance); None without a k-fold search."""
        if getattr(self, "_held_logits", None) is None or "accuracy" not in self.search_:
            return None
        index = self.search_["Cs"].index(self.C_)
        n = sum(len(rows) for rows in self._held_rows)
        probabilities = np.zeros((n, len(self.classes_)))
        folds = zip(self._held_rows, self._held_logits[index], self._fold_absent, strict=True)
        for rows, logits, absent in folds:
            if logits.shape[1] == 1:
                from scipy.special import expit

                positive = expit(logits[:, 0])
                probabilities[rows] = np.column_stack([1.0 - positive, positive])
            else:
                fold = softmax(logits)
                if absent is not None:  # a class the fold never saw: 0, as a refit gives it
                    fold[:, absent] = 0.0  # (its frozen intercept left it ~1e-12, varying)
                    fold /= fold.sum(axis=1, keepdims=True)
                probabilities[rows] = fold
        return probabilities

    def _best(self, grid, scores) -> int | None:
        """Position of the best C so far, which a C must clearly lose to to be screened out
        (``screen_against``); None before any, or without ``stop_early`` (every C solved)."""
        return best_index(grid, scores) if self._stops_early() else None

    def _confirming(self, scores):
        """``confirming``'s looser tolerance for a C past a rise, except under ``exact``."""
        return None if self.exact else confirming(scores)

    def _stops_early(self) -> bool:
        return bool(self.stop_early and not self.exact)

    def _search_tol(self) -> float:
        """The tolerance Cs are compared at: the final fit's own under ``exact``."""
        return self.tol if self.exact else max(self.tol, SEARCH_TOL)

    def _pick(self, grid, scores: np.ndarray, method: str) -> float:
        """``pick_C``, with the search recorded in ``search_``."""
        self.search_ = {
            "method": method,
            "Cs": list(grid[: len(scores)]),
            "grid": list(grid),
            "accuracy": [float(s) for s in scores[:, 0]],
            "log_loss": [float(s) for s in scores[:, 1]],
            # per C tried: fits ended once they had clearly lost (``screen_against``); their
            # scores are those of the unfinished fit
            "screened": list(self._screened),
            # validation search: the Cs refined to the search's tolerance (the others' scores
            # are of coarse fits, clearly beaten: ``probe.heads.search.refine_next``)
            "refined": getattr(self, "_refined", None),
            "chosen_by": "held-out log loss",
            "exact": bool(self.exact),
        }
        return pick_C(grid, scores)

    # prediction --------------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """Logits: (n,) for two classes (of classes_[1]), else (n, K).

        Computed in float64, in row blocks, with the standardisation folded into the
        weights: ``((x - mean) / scale) W^T + b == x (W / scale)^T + (b - (mean / scale) W^T)``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        weight, bias = folded_weights(self.coef_, self.intercept_, self.mean_, self.scale_)
        weight = weight.T  # (D, K')
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
        return softmax(scores)

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        best = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[best]
