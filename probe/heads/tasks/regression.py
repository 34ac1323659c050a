"""Regression heads: ``ProbeRegressor`` (ridge on standardised features), its report and the
resampled metrics of bootstrap intervals.

Ridge rather than plain least squares because hidden states are badly conditioned (a few
directions carry most of the variance, many columns nearly repeat one another): without a
penalty a head fits noise. The penalty is chosen without test data, on validation rows or
by k-fold cross-validation, and every penalty of the grid costs one eigendecomposition per
fold (``probe.heads.solver.ridge``), not one fit each.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probe.heads.inputs import InvalidTrainingData, check_finite, standardise
from probe.heads.maths import folded_weights
from probe.heads.search import checked_groups
from probe.heads.solver.ridge import kfold_path, ridge_fit, rotate

REGRESSION_METRICS = ("r2", "pearson_r", "spearman_rho", "mae", "rmse")
NATURAL_METRIC = "r2"

# Absolute penalties (scikit-learn's ``Ridge(alpha)``) on standardised features, two per
# decade, not penalties proportional to n. Measured on SmolLM2-135M hidden states of world
# places (D = 576, latitude and longitude, layers 0, 5, .., 30 x both pools, 5-fold CV on
# n = 100 .. 25,330 training rows; benchmarks/results/ridge_alphas.md): the chosen alpha
# stayed within 32 .. 3,162 (median 316 .. 1,000) at every n, while alpha / n drifted from 3
# to 0.04. The grid centres that range with 2.5 decades on either side: room for wider
# models (D = 4096: larger eigenvalues, smaller coefficients) and near-noiseless targets.
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))  # 0.1 .. 1e6


# --- the estimator ----------------------------------------------------------------------------


class ProbeRegressor(RegressorMixin, BaseEstimator):
    """Ridge regression on standardised features, one or many targets, the penalty chosen
    without test data.

    Parameters
    ----------
    alpha : float or None
        L2 penalty in scikit-learn's ``Ridge`` sense (on standardised features, intercept
        unpenalised). None: search ``alphas``.
    alphas : sequence of float or None
        The penalties searched; None: ``DEFAULT_ALPHAS``.
    cv : int
        Folds of the search when no validation data is given: ``KFold(cv, shuffle=True,
        random_state)``, or ``GroupKFold`` (same shuffle) when ``groups`` repeat; fewer
        when there are fewer rows (groups).
    random_state : int
        Seed of the folds.
    copy_X : bool
        False: a writable float32 C-ordered X is standardised in place.

    The choice: the alpha with the lowest held-out mean squared error averaged over targets,
    each target's error divided by its variance over the training rows (so latitude and
    longitude weigh alike), i.e. the highest mean over targets of R² taken against the
    training variance. Under k-fold that is the R² of the pooled out-of-fold predictions
    (scikit-learn's ``r2_score(y, oof_predictions_)``); on validation rows it differs from
    their own R² only by that denominator. Exact ties go to the larger alpha.

    Attributes: ``mean_``, ``scale_`` (D,) the standardisation; ``coef_`` (T, D) on
    standardised features; ``intercept_`` (T,); ``alpha_``; ``n_targets_``; ``search_``
    {"method", "alphas", "mse", "r2", "folds"} (per alpha, mean over targets, held out);
    ``oof_predictions_`` (n, T) out-of-fold predictions at ``alpha_`` after a k-fold search,
    else None; ``solver_`` "probe-eigen".
    """

    def __init__(self, alpha=None, alphas=None, cv=5, random_state=0, copy_X=True):
        self.alpha = alpha
        self.alphas = alphas
        self.cv = cv
        self.random_state = random_state
        self.copy_X = copy_X

    def fit(self, X, y, X_val=None, y_val=None, groups=None):
        """Fit on (X, y); choose alpha on (X_val, y_val) when given, else by k-fold
        cross-validation whose folds keep each of ``groups`` (one id per row) whole."""
        X = validate_data(self, X, dtype=[np.float32, np.float64], ensure_all_finite=False)
        check_finite(X, "X")
        Y, self.single_target_ = checked_targets(y, len(X), "y")
        grid = self._grid()
        validation = self.alpha is None and (X_val is not None or y_val is not None)
        if validation:
            if X_val is None or y_val is None:
                raise InvalidTrainingData("validation data needs both X_val and y_val")
            X_val = validate_data(
                self, X_val, reset=False, dtype=[np.float32, np.float64], ensure_all_finite=False
            )
            check_finite(X_val, "validation X")
            Y_val, _ = checked_targets(y_val, len(X_val), "y_val")
            if Y_val.shape[1] != Y.shape[1]:
                raise InvalidTrainingData(
                    f"y_val has {Y_val.shape[1]} targets and y has {Y.shape[1]}"
                )
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked: one line
            standardised, self.mean_, self.scale_ = standardise(X, self.copy_X)  # (n, D) f32
        self.n_targets_ = Y.shape[1]
        self.solver_ = "probe-eigen"
        self.oof_predictions_ = None
        if self.alpha is not None:
            self.alpha_ = grid[0]
            self.search_ = {"method": "given", "alphas": grid, "mse": [], "r2": [], "folds": 0}
            coef, self.intercept_ = ridge_fit(standardised, Y, self.alpha_)
        elif validation:  # one eigendecomposition: every alpha's predictions, then the fit
            problem = rotate(standardised, Y)
            held = problem.predictions(problem.projected(self._standardise32(X_val)), grid)
            mse = ((held - Y_val[None]) ** 2).mean(axis=1)  # (A, T)
            self.alpha_ = self._choose(grid, mse, Y.var(axis=0), "validation", 0)
            coef = problem.coef(self.alpha_)
            self.intercept_ = problem.intercepts(coef)
        else:
            folds = regression_folds(len(Y), self.cv, self.random_state, groups)
            path = kfold_path(standardised, Y, folds, grid)
            mse = path.squared_errors / len(Y)
            self.alpha_ = self._choose(grid, mse, Y.var(axis=0), "k-fold", len(folds))
            self.oof_predictions_ = path.out_of_fold(standardised, grid.index(self.alpha_))
            coef, self.intercept_ = path.final_fit(standardised, Y, self.alpha_)
        self.coef_ = coef.T.copy()  # (T, D)
        return self

    def _grid(self) -> list[float]:
        if self.alpha is not None:
            grid = [float(self.alpha)]
        else:
            grid = sorted(
                float(a) for a in (self.alphas if self.alphas is not None else DEFAULT_ALPHAS)
            )
        if not grid or not np.all(np.isfinite(grid)) or min(grid) <= 0:
            raise InvalidTrainingData("alpha values must be positive and finite")
        return grid

    def _choose(self, grid, mse, train_var, method: str, folds: int) -> float:
        """The alpha of the lowest mean variance-scaled held-out MSE (``mse``: (A, T));
        records ``search_``."""
        scaled = (mse / np.where(train_var > 0, train_var, 1.0)).mean(axis=1)  # (A,)
        best = len(scaled) - 1 - int(np.argmin(scaled[::-1]))  # ties: the larger alpha
        self.search_ = {
            "method": method,
            "alphas": grid,
            "mse": [float(v) for v in mse.mean(axis=1)],
            "r2": [float(1 - v) for v in scaled],
            "folds": folds,
        }
        return grid[best]

    def _standardise32(self, X) -> np.ndarray:
        standardised = np.asarray(X, np.float32) - self.mean_.astype(np.float32)
        standardised /= self.scale_.astype(np.float32)
        return standardised

    def predict(self, X) -> np.ndarray:
        """(n,) when fitted on a 1-D y, else (n, T); float64, the standardisation folded
        into the weights as in ``ProbeClassifier.decision_function``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        weight, bias = folded_weights(self.coef_, self.intercept_, self.mean_, self.scale_)
        out = np.empty((len(X), len(bias)))
        for start in range(0, len(X), 8192):
            block = np.asarray(X[start : start + 8192], np.float64)
            out[start : start + 8192] = block @ weight.T + bias
        return out[:, 0] if self.single_target_ else out


def checked_targets(y, n: int, what: str) -> tuple[np.ndarray, bool]:
    """(float64 (n, T) targets, whether y was 1-D); a non-finite value is one line naming
    its first row."""
    try:
        Y = np.asarray(y, np.float64)
    except (TypeError, ValueError):
        raise InvalidTrainingData(f"{what} must be numbers (regression targets)") from None
    if Y.ndim not in (1, 2) or len(Y) != n:
        raise InvalidTrainingData(f"{what} has shape {Y.shape}; expected ({n},) or ({n}, T)")
    single = Y.ndim == 1
    Y = Y.reshape(n, -1)
    bad = np.flatnonzero(~np.isfinite(Y).all(axis=1))
    if len(bad):
        raise InvalidTrainingData(
            f"{what} is not finite (NaN or inf) at row {bad[0]} ({len(bad)} rows in all); "
            "drop or repair those rows"
        )
    return Y, single


def regression_folds(n: int, folds: int, seed: int, groups=None) -> list:
    """(train, held-out) rows of each fold: ``KFold(shuffle=True)``, or ``GroupKFold`` with
    the same shuffle when some group holds several rows (a group is never on both sides).
    Fewer than 2 folds possible: one line, nothing fitted."""
    from sklearn.model_selection import GroupKFold, KFold

    groups = checked_groups(groups, n)
    units = n if groups is None else len(np.unique(groups))
    k = min(int(folds), units)
    if k < 2:
        kind = "rows" if groups is None else "groups"
        raise InvalidTrainingData(
            f"cross-validation needs at least 2 {kind} and {units} were given; "
            "pass alpha or validation data"
        )
    rows = np.zeros((n, 1))
    if groups is None:
        return list(KFold(k, shuffle=True, random_state=seed).split(rows))
    return list(GroupKFold(k, shuffle=True, random_state=seed).split(rows, groups=groups))


# --- metrics ----------------------------------------------------------------------------------


def regression_report(y_true, y_pred, target_names=None) -> dict:
    """R², Pearson r, Spearman rho, MAE and RMSE (scikit-learn's and scipy's definitions),
    averaged over targets (uniform), with ``"targets": {name: {...}}`` when there are
    several, and ``n``. r and rho of a constant target or prediction are None (undefined);
    their average is None when any target's is."""
    Y, P = _paired(y_true, y_pred)
    per_target = _per_target(Y, P, np.ones((1, len(Y))))  # {metric: (1, T)}
    report = {name: _plain(values[0].mean()) for name, values in per_target.items()}
    report["n"] = len(Y)
    if Y.shape[1] > 1:
        names = target_names or [f"target_{t}" for t in range(Y.shape[1])]
        if len(names) != Y.shape[1]:
            raise ValueError(f"{len(names)} target names for {Y.shape[1]} targets")
        report["targets"] = {
            str(name): {metric: _plain(values[0, t]) for metric, values in per_target.items()}
            for t, name in enumerate(names)
        }
    return report


def resampled_regression_metrics(y_true, y_pred, counts) -> dict[str, np.ndarray]:
    """{metric: (R,)} the target-averaged metrics of each bootstrap resample, ``counts``
    (R, n) saying how often each row is drawn (``probe.research.uncertainty``); NaN where
    r or rho is undefined (a resample drawing one distinct value).

    Each metric is the unweighted one of the expanded resample (each row repeated its
    count), computed with weighted sums. Spearman too is exact: each resample's average
    ranks come from the counts of the tied values below and at each row (one sort of the
    full sample), then a weighted Pearson of those ranks.
    """
    Y, P = _paired(y_true, y_pred)
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 2 or counts.shape[1] != len(Y):
        raise ValueError(f"counts has shape {counts.shape}; expected (R, {len(Y)})")
    return {name: values.mean(axis=1) for name, values in _per_target(Y, P, counts).items()}


def _paired(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    Y = np.asarray(y_true, np.float64)
    P = np.asarray(y_pred, np.float64)
    if Y.shape != P.shape or Y.ndim not in (1, 2) or len(Y) == 0:
        raise ValueError(f"y_true {Y.shape} and y_pred {P.shape} must match: (n,) or (n, T)")
    Y, P = Y.reshape(len(Y), -1), P.reshape(len(P), -1)
    if not (np.isfinite(Y).all() and np.isfinite(P).all()):
        raise ValueError("y_true and y_pred must be finite")
    return Y, P


def _per_target(Y: np.ndarray, P: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """{metric: (R, T)} each target's metrics under each resample's counts (R, n)."""
    total = counts.sum(axis=1)  # (R,)
    out = {name: np.empty((len(counts), Y.shape[1])) for name in REGRESSION_METRICS}
    for t in range(Y.shape[1]):
        y, p = Y[:, t], P[:, t]
        y_ranks, y_distinct = _resample_ranks(y, counts)
        p_ranks, p_distinct = _resample_ranks(p, counts)
        defined = (y_distinct > 1) & (p_distinct > 1)
        error = y - p
        residual = counts @ error**2  # (R,)
        spread = _weighted_spread(y, counts, total)
        with np.errstate(divide="ignore", invalid="ignore"):
            # scikit-learn's r2_score: a constant target scores 1 if predicted exactly, else 0
            r2 = np.where(y_distinct > 1, 1 - residual / spread, np.where(residual == 0, 1.0, 0.0))
        out["r2"][:, t] = r2
        out["pearson_r"][:, t] = np.where(defined, _weighted_pearson(y, p, counts, total), np.nan)
        rho = _weighted_pearson(y_ranks, p_ranks, counts, total)
        out["spearman_rho"][:, t] = np.where(defined, rho, np.nan)
        out["mae"][:, t] = counts @ np.abs(error) / total
        out["rmse"][:, t] = np.sqrt(residual / total)
    return out


def _weighted_spread(values, counts, total) -> np.ndarray:
    """(R,) sum of counts x squared deviations from each resample's weighted mean."""
    centred = values - ((counts * values).sum(axis=1) / total)[:, None]
    return (counts * centred**2).sum(axis=1)


def _weighted_pearson(a, b, counts, total) -> np.ndarray:
    """(R,) Pearson r of a and b ((n,) or (R, n)) with row weights ``counts`` (R, n),
    from centred values (two passes: no cancellation), clipped to [-1, 1] as scipy does."""
    da = a - ((counts * a).sum(axis=1) / total)[:, None]
    db = b - ((counts * b).sum(axis=1) / total)[:, None]
    cov = (counts * da * db).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.sqrt((counts * da**2).sum(axis=1) * (counts * db**2).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def _resample_ranks(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((R, n) each row's average rank within each expanded resample, (R,) how many distinct
    values each resample draws). A row's rank is the count drawn below its value plus the
    middle of its ties: (drawn ties + 1) / 2, scipy's ``rankdata`` 'average'."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new_value = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new_value)
    tie_of_sorted = np.cumsum(new_value) - 1  # (n,) tie group of each sorted row
    drawn = np.add.reduceat(counts[:, order], starts, axis=1)  # (R, G) draws per value
    below = np.cumsum(drawn, axis=1) - drawn
    rank_of_tie = below + (drawn + 1) / 2
    ranks = np.empty_like(counts)
    ranks[:, order] = rank_of_tie[:, tie_of_sorted]
    return ranks, (drawn > 0).sum(axis=1)


def _plain(value) -> float | None:
    """A JSON-ready float; None for NaN (an undefined correlation)."""
    value = float(value)
    return None if np.isnan(value) else value


# --- the task protocol: what fit, sweep, save, predict and export call --------------------------

PENALTY = "alpha"
PENALTY_RULE = "lowest held-out MSE, each target scaled by its training variance (highest R²)"
METRICS = REGRESSION_METRICS
SELECTABLE = REGRESSION_METRICS
LOWER_IS_BETTER = ("mae", "rmse")
CONSTANT_METHOD = "the training mean of each target"


def make_head(penalty=None, penalties=None, cv=5, copy_X=True) -> ProbeRegressor:
    return ProbeRegressor(alpha=penalty, alphas=penalties, cv=cv, copy_X=copy_X)


def penalty_of(head: ProbeRegressor) -> float:
    return float(head.alpha_)


def outputs(head: ProbeRegressor, X) -> np.ndarray:
    """Predictions (n, T), one column per target."""
    return np.asarray(head.predict(X), np.float64).reshape(len(X), -1)


def out_of_fold(head: ProbeRegressor) -> np.ndarray | None:
    return head.oof_predictions_


def split_report(truth, predicted, names=None) -> dict:
    return regression_report(truth, predicted, names)


def resampled(truth, predicted, counts) -> dict[str, np.ndarray]:
    return resampled_regression_metrics(truth, predicted, counts)


def example_loss(truth, predicted, head=None) -> np.ndarray:
    """Squared error per example, each target scaled by its variance here (mean over T)."""
    Y, P = _paired(truth, predicted)
    spread = Y.var(axis=0)
    return (((Y - P) ** 2) / np.where(spread > 0, spread, 1.0)).mean(axis=1)


def constant_outputs(train_truth, n: int) -> np.ndarray:
    Y = np.asarray(train_truth, np.float64).reshape(len(train_truth), -1)
    return np.tile(Y.mean(axis=0), (n, 1))


def tensors(head: ProbeRegressor) -> dict[str, np.ndarray]:
    names = ("coef", "intercept", "mean", "scale")
    return {name: getattr(head, f"{name}_") for name in names}


def from_tensors(weights: dict, record: dict) -> ProbeRegressor:
    """A fitted head from saved weights (no search): what ``probe predict`` serves."""
    head = ProbeRegressor(alpha=record.get("C"))
    head.coef_ = np.asarray(weights["coef"], np.float64).reshape(-1, len(weights["mean"]))
    head.intercept_ = np.asarray(weights["intercept"], np.float64).reshape(-1)
    head.mean_, head.scale_ = weights["mean"], weights["scale"]
    head.n_features_in_, head.n_targets_ = head.coef_.shape[1], head.coef_.shape[0]
    head.single_target_, head.alpha_ = False, record.get("C")
    return head


def prediction_rows(predicted: np.ndarray, names: list[str]) -> list[dict]:
    """One {"prediction": {target: value}} per text."""
    return [
        {"prediction": {str(name): float(v) for name, v in zip(names, row, strict=True)}}
        for row in np.asarray(predicted).reshape(len(predicted), -1)
    ]
