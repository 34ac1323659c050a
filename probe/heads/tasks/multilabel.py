"""Multi-label heads: several yes/no properties per text, one logistic head per label.

``ProbeMultiLabel`` fits L binary heads on standardised features with one shared C (the
labels are read off one representation; a per-label C would make the probe L probes), by
``probe.heads.solver.onevsrest``, and turns probabilities into 0/1 with a per-label
threshold that maximises that label's F1 on held-out probabilities: 0.5 is wrong for rare
labels, whose calibrated probabilities seldom reach it. ``multilabel_report`` and
``resampled_multilabel_metrics`` share one code path (weighted per-label TP/FP/FN), so a
bootstrap interval measures exactly the metric the report shows.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from probe.errors import ProbeError
from probe.heads.estimator import DEFAULT_CS
from probe.heads.inputs import InvalidTrainingData, check_finite, standardise
from probe.heads.maths import folded_weights, pick_C
from probe.heads.search import beaten, checked_groups, confirming, turned_up
from probe.heads.solver import SEARCH_TOL, SolverFailure
from probe.heads.solver.onevsrest import JointReference, OneVsRestPath, Rotation
from probe.heads.tasks.multilabel_metrics import (  # re-exported: the task's measures
    multilabel_report,
    resampled_multilabel_metrics,
)

MULTILABEL_METRICS = ("micro_f1", "macro_f1", "subset_accuracy", "lrap")
NATURAL_METRIC = "macro_f1"
SMALL_PROBLEM = 1 << 22  # entries of X below which BLAS runs single-threaded (as the estimator)


class ProbeMultiLabel(ClassifierMixin, BaseEstimator):
    """One logistic head per label on standardised features, one C for all, chosen without
    test data; per-label decision thresholds chosen on held-out probabilities.

    C: given, else the grid ``Cs`` (default ``DEFAULT_CS``) searched for the lowest held-out
    log loss summed over labels: on validation data passed to ``fit``, else by k-fold
    cross-validation (``cv`` folds; grouped when ``groups`` repeat). Thresholds: each label's
    best F1 on the validation probabilities, else on the out-of-fold ones at the chosen C
    (a given C without validation data still runs its k folds for them; ``cv=None``: none),
    else 0.5. A label constant in training gets a constant head (``constant_labels_``) and
    threshold 0.5. The search skips what ``ProbeClassifier``'s does: it stops once the
    held-out loss has risen at two Cs in a row, and a C's fit stops once it has clearly
    lost (``probe.heads.search``). ``tol``, ``max_iter``: as ``ProbeClassifier``'s.
    ``solver_`` says "probe-ovr", or the scipy fallback and why.
    """

    def __init__(self, C=None, Cs=None, cv=5, random_state=0, copy_X=True, tol=1e-3, max_iter=500):
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.random_state = random_state
        self.copy_X = copy_X
        self.tol = tol
        self.max_iter = max_iter

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        return tags

    # fitting -----------------------------------------------------------------------------
    def fit(self, X, Y, X_val=None, Y_val=None, groups=None):
        """Fit on (X, Y (n, L) of 0/1); C and thresholds on (X_val, Y_val) when given, else
        by k-fold cross-validation keeping each of ``groups`` in one fold."""
        from threadpoolctl import threadpool_limits

        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_all_finite=False)
        check_finite(X, "X")
        Y = indicator(Y, len(X), "Y")
        self.n_labels_ = Y.shape[1]
        if X_val is not None:
            X_val = validate_data(
                self, X_val, reset=False, dtype=[np.float32, np.float64], ensure_all_finite=False
            )
            check_finite(X_val, "validation X")
            Y_val = indicator(Y_val, len(X_val), "Y_val", self.n_labels_)
        with np.errstate(over="ignore", invalid="ignore"):
            standardised, self.mean_, self.scale_ = standardise(X, self.copy_X)
        if X_val is not None:
            X_val = (X_val - self.mean_).astype(np.float32) / self.scale_.astype(np.float32)
        grid = sorted(float(c) for c in (self.Cs if self.Cs is not None else DEFAULT_CS))
        if not grid or min(grid) <= 0 or (self.C is not None and self.C <= 0):
            raise InvalidTrainingData("C values must be positive")
        groups = checked_groups(groups, len(X))
        with threadpool_limits(limits=None if X.size >= SMALL_PROBLEM else 1):
            self.solver_ = "probe-ovr"
            try:
                with np.errstate(all="ignore"):  # non-finite values are checked, not warned
                    rotation = Rotation.of(standardised, self.random_state)
                    rotated = rotation.apply(standardised)  # every fold's and C's features
                    held_out = None if X_val is None else rotation.apply(X_val)
                    path = self._fit(OneVsRestPath, rotated, Y, grid, held_out, Y_val, groups)
                    coef = rotation.back(path.W)
            except ProbeError:
                raise
            except (SolverFailure, ArithmeticError, ValueError) as error:  # LinAlgError too
                self.solver_ = f"scipy-fallback ({type(error).__name__}: {error})"[:200]
                path = self._fit(JointReference, standardised, Y, grid, X_val, Y_val, groups)
                coef = path.W
        if not path.converged:
            message = f"ProbeMultiLabel did not converge in max_iter={self.max_iter} iterations"
            warnings.warn(message + "; raise max_iter or lower C", ConvergenceWarning, stacklevel=2)
        self.coef_, self.intercept_ = coef, path.b.copy()
        self.constant_labels_ = np.flatnonzero(path.constant)
        self.n_iter_ = self._n_iter
        held, truth = self.oof_probabilities_, Y
        if X_val is not None:  # probabilities of the final fit on the validation rows
            held, truth = expit(X_val @ self.coef_.T + self.intercept_), Y_val
        self.thresholds_ = np.full(self.n_labels_, 0.5)
        if held is not None:
            for label in np.flatnonzero(~path.constant):
                self.thresholds_[label] = best_f1_threshold(held[:, label], truth[:, label])
        return self

    def _fit(self, path_class, X, Y, grid, X_val, Y_val, groups):
        """The C search, then the fit at the chosen C polished to ``tol``: the path."""
        self._path_class, self.oof_probabilities_, start = path_class, None, None
        search_tol = max(self.tol, SEARCH_TOL)
        if self.C is None and X_val is not None:
            path, losses, states = self._new_path(X, Y), [], []
            for C in grid:
                screen = _screen(min(losses) if losses else None, X_val, Y_val)
                rtol = confirming(_scored(losses))
                path.solve(C, search_tol, self.max_iter, rtol=rtol, screen=screen)
                losses.append(_log_loss(path.logits(X_val), Y_val))
                states.append(path.snapshot())
                if turned_up(_scored(losses)):
                    break
            self.C_ = pick_C(grid, _scored(losses))
            path.restore(states[grid.index(self.C_)])
            self.search_ = _search("validation", grid, losses, None)
        else:
            Cs = grid if self.C is None else [float(self.C)]
            folded = None  # a given C with validation data: its thresholds need no folds
            if X_val is None:
                folded = self._cross_validate(X, Y, Cs, groups, search_tol)
            if folded is None:
                self.C_ = float(self.C) if self.C is not None else 1.0
                how = "given" if self.C is not None else "default (too few rows for folds)"
                self.search_ = _search(how, [self.C_], [], None)
            else:
                losses, held, means, folds, how = folded
                self.C_ = pick_C(Cs, _scored(losses)) if self.C is None else Cs[0]
                self.oof_probabilities_ = held[Cs.index(self.C_)]
                start = means[Cs.index(self.C_)]
                self.search_ = _search("given" if self.C is not None else how, Cs, losses, folds)
            path = self._new_path(X, Y)
            if start is not None:
                path.start_from(*start)  # the folds' mean fit at that C: near the optimum
            else:
                for C in [c for c in grid if c < self.C_]:  # warm starts along the path
                    path.solve(C, search_tol, self.max_iter)
        path.converged = True
        self._n_iter = path.solve(self.C_, self.tol, self.max_iter)
        return path

    def _new_path(self, X, Y):
        return self._path_class(X, Y, seed=self.random_state)

    def _cross_validate(self, X, Y, Cs, groups, tol):
        """k-fold held-out log loss (summed over labels, mean over folds) at each C, the
        folds advancing together (so the search stops once the loss has turned up):
        (losses, out-of-fold probabilities per C, folds' mean (W, b) per C, k, method);
        None when there cannot be two folds."""
        from sklearn.model_selection import GroupKFold, KFold

        units = len(X) if groups is None else len(np.unique(groups))
        folds = min(int(self.cv or 0), units)
        if folds < 2:
            return None
        if groups is None:
            splits = KFold(folds, shuffle=True, random_state=self.random_state).split(X)
        else:
            splitter = GroupKFold(folds, shuffle=True, random_state=self.random_state)
            splits = splitter.split(X, groups=groups)
        splits = list(splits)
        paths = [self._new_path(X[train], Y[train]) for train, _ in splits]
        held_X, held_Y = [X[rows] for _, rows in splits], [Y[rows] for _, rows in splits]
        losses, held, means, per_fold = [], [], [], []  # per_fold: (Cs, folds) losses
        for C in Cs:
            best = int(np.argmin(losses)) if losses else None
            rtol, solved = confirming(_scored(losses)), []
            for fold, path in enumerate(paths):
                if C == Cs[0] and fold > 0:
                    path.start_from(paths[0].W, paths[0].b)  # the folds' optima are close
                limit = None if best is None else per_fold[best][fold]
                screen = _screen(limit, held_X[fold], held_Y[fold])
                path.solve(C, tol, self.max_iter, rtol=rtol, screen=screen)
                solved.append(path.logits(held_X[fold]))
            fold_losses = [_log_loss(z, y) for z, y in zip(solved, held_Y, strict=True)]
            if best is not None and not _beaten(losses[best], np.mean(fold_losses)):
                # screened folds lost on their own but the mean is close: finish them
                for fold in [i for i, path in enumerate(paths) if path.screened]:
                    paths[fold].solve(C, tol, self.max_iter, rtol=rtol)
                    solved[fold] = paths[fold].logits(held_X[fold])
                fold_losses = [_log_loss(z, y) for z, y in zip(solved, held_Y, strict=True)]
            probabilities = np.zeros(Y.shape)
            for logits, (_, rows) in zip(solved, splits, strict=True):
                probabilities[rows] = expit(logits)
            per_fold.append(fold_losses)
            losses.append(float(np.mean(fold_losses)))
            held.append(probabilities)
            means.append((np.mean([p.W for p in paths], 0), np.mean([p.b for p in paths], 0)))
            if turned_up(_scored(losses)):
                break
        how = f"{folds}-fold {'grouped ' if groups is not None else ''}cross-validation"
        return losses, held, means, folds, how

    # prediction --------------------------------------------------------------------------
    def decision_function(self, X) -> np.ndarray:
        """(n, L) logits, the standardisation folded into the weights (float64)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        weight, bias = folded_weights(self.coef_, self.intercept_, self.mean_, self.scale_)
        scores = np.empty((len(X), len(bias)))
        for start in range(0, len(X), 8192):
            block = np.asarray(X[start : start + 8192], np.float64)
            scores[start : start + 8192] = block @ weight.T + bias
        return scores

    def predict_proba(self, X) -> np.ndarray:
        """(n, L): the probability of each label."""
        return expit(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        """(n, L) int8 0/1: probability at or above the label's threshold."""
        return (self.predict_proba(X) >= self.thresholds_).astype(np.int8)


def _log_loss(logits: np.ndarray, Y: np.ndarray) -> float:
    """Mean log loss of each label, summed over labels."""
    return float(-log_expit(np.where(Y == 1, logits, -logits)).mean(axis=0).sum())


def _beaten(best: float, loss: float) -> bool:
    """``probe.heads.search.beaten`` on summed log losses: ``LOSS_MARGIN`` above the best."""
    return beaten((0.0, best), (0.0, loss))


def _screen(best, X_held, Y_held):
    """A screen for ``OneVsRestPath.solve``: whether its unfinished fit already clearly
    loses to ``best`` (a held-out loss on the same rows); None before there is a best."""
    if best is None:
        return None
    return lambda path: _beaten(best, _log_loss(path.logits(X_held), Y_held))


def _scored(losses) -> np.ndarray:
    """Held-out losses as the (accuracy, log loss) pairs ``pick_C``/``turned_up`` read."""
    return np.column_stack([np.zeros(len(losses)), np.asarray(losses, np.float64)])


def _search(method, Cs, losses, folds) -> dict:
    tried = list(Cs[: len(losses)] if losses else Cs)
    return {"method": method, "Cs": tried, "log_loss": [float(v) for v in losses], "folds": folds}


def best_f1_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The probability cut with the best F1 of one label (predict ``score >= cut``): the
    midpoint below the best-scoring distinct score; 0.5 when the label has no positives."""
    positives = int(np.sum(truth))
    if positives == 0:
        return 0.5
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    f1 = 2.0 * np.cumsum(truth[order]) / (np.arange(1, len(ranked) + 1) + positives)
    f1[np.r_[ranked[:-1] <= ranked[1:], False]] = -1.0  # cut only between distinct scores
    best = int(np.argmax(f1))
    below = ranked[best + 1] if best + 1 < len(ranked) else 0.0
    return float((ranked[best] + below) / 2)


def indicator(Y, n: int, what: str, labels: int | None = None) -> np.ndarray:
    """int8 (n, L) from 0/1 (or bool) labels, or a one-line ``InvalidTrainingData``."""
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] != n or Y.shape[1] < 1:
        raise InvalidTrainingData(f"{what} must be (n, labels) = ({n}, L); got {Y.shape}")
    if labels is not None and Y.shape[1] != labels:
        raise InvalidTrainingData(f"{what} has {Y.shape[1]} labels; training had {labels}")
    if Y.dtype != bool and not np.isin(Y, (0, 1)).all():
        raise InvalidTrainingData(f"{what} must hold only 0 and 1")
    return Y.astype(np.int8)


# metrics ---------------------------------------------------------------------------------------


# --- the task protocol: what fit, sweep, save, predict and export call --------------------------

PENALTY = "C"
PENALTY_RULE = "lowest held-out log loss summed over labels (one C for all labels)"
METRICS = MULTILABEL_METRICS
SELECTABLE = ("macro_f1", "micro_f1", "subset_accuracy", "lrap")
LOWER_IS_BETTER: tuple = ()
CONSTANT_METHOD = "each label at its training prevalence (predicted when above 0.5)"


def make_head(penalty=None, penalties=None, cv=5, copy_X=True) -> ProbeMultiLabel:
    return ProbeMultiLabel(C=penalty, Cs=penalties, cv=cv, copy_X=copy_X)


def penalty_of(head: ProbeMultiLabel) -> float:
    return float(head.C_)


def outputs(head: ProbeMultiLabel, X) -> dict:
    """{"predicted": int8 (n, L) at the head's thresholds, "scores": (n, L) probabilities}."""
    return _at_thresholds(head, head.predict_proba(X))


def out_of_fold(head: ProbeMultiLabel) -> dict | None:
    found = head.oof_probabilities_
    return None if found is None else _at_thresholds(head, found)


def _at_thresholds(head: ProbeMultiLabel, scores) -> dict:
    return {"predicted": (scores >= head.thresholds_).astype(np.int8), "scores": scores}


def split_report(truth, found: dict, names=None) -> dict:
    return multilabel_report(truth, found["predicted"], found["scores"], names)


def resampled(truth, found: dict, counts) -> dict[str, np.ndarray]:
    return resampled_multilabel_metrics(truth, found["predicted"], counts, found["scores"])


def example_loss(truth, found: dict, head=None) -> np.ndarray:
    """Binary log loss per example, summed over labels (clipped at 1e-15)."""
    p = np.clip(found["scores"], 1e-15, 1 - 1e-15)
    Y = np.asarray(truth, np.float64)
    return -(Y * np.log(p) + (1 - Y) * np.log1p(-p)).sum(axis=1)


def constant_outputs(train_truth, n: int) -> dict:
    prevalence = np.asarray(train_truth, np.float64).mean(axis=0)
    scores = np.tile(prevalence, (n, 1))
    return {"predicted": (scores > 0.5).astype(np.int8), "scores": scores}


def tensors(head: ProbeMultiLabel) -> dict[str, np.ndarray]:
    names = ("coef", "intercept", "mean", "scale", "thresholds")
    return {name: getattr(head, f"{name}_") for name in names}


def from_tensors(weights: dict, record: dict) -> ProbeMultiLabel:
    """A fitted head from saved weights (no search): what ``probe predict`` serves."""
    head = ProbeMultiLabel(C=record.get("C"))
    for name in ("coef", "intercept", "mean", "scale", "thresholds"):
        setattr(head, f"{name}_", np.asarray(weights[name], np.float64))
    head.n_features_in_, head.n_labels_ = head.coef_.shape[1], head.coef_.shape[0]
    head.C_ = record.get("C")
    return head


def prediction_rows(found: dict, names: list[str]) -> list[dict]:
    """One {"prediction": [labels], "probabilities": {label: p}} per text."""
    return [
        {
            "prediction": [str(n) for n, hit in zip(names, flags, strict=True) if hit],
            "probabilities": {str(n): float(p) for n, p in zip(names, scores, strict=True)},
        }
        for flags, scores in zip(found["predicted"], found["scores"], strict=True)
    ]
