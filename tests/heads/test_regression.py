"""The regression head against known answers: scikit-learn's ``Ridge`` at every penalty,
independent per-fold refits, a planted linear target's noise ceiling, scikit-learn's and
scipy's metrics, and bootstrap resamples against their expanded rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import KFold

from probe.heads.inputs import InvalidTrainingData, standardise
from probe.heads.solver.ridge import kfold_path, ridge_path, validation_predictions
from probe.heads.tasks.regression import (
    DEFAULT_ALPHAS,
    ProbeRegressor,
    regression_folds,
    regression_report,
    resampled_regression_metrics,
)

ALPHAS = np.logspace(-3, 4, 8)
# Ridge's float64 Cholesky and our float64 eigendecomposition of the same Gram matrix agree
# to rounding; the worst case here (duplicated columns, alpha 1e-3) is ~1e-9 relative.
COEF_RTOL = 1e-6


def hidden_like(n=300, dim=24, targets=2, noise=1.0, seed=0):
    """Features with offsets, uneven scales, a duplicated and a constant column; targets a
    planted linear map of them plus Gaussian noise of variance ``noise**2``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)) * rng.uniform(0.2, 5.0, dim) + 3.0
    X[:, 1] = X[:, 0]
    X[:, 2] = 7.0
    W = rng.normal(size=(dim, targets))
    signal = ((X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1)) @ W
    Y = signal + 10.0 + rng.normal(scale=noise, size=(n, targets))
    return X.astype(np.float32), Y, signal


def sklearn_ridge(X, Y, alpha):
    return Ridge(alpha=alpha).fit(np.asarray(X, np.float64), Y)


@pytest.mark.parametrize(("n", "dim", "targets"), [(300, 24, 1), (300, 24, 3), (40, 120, 2)])
def test_every_alpha_of_the_path_is_sklearns_ridge(n, dim, targets):
    X, Y, _ = hidden_like(n, dim, targets)
    Xs, _, _ = standardise(X)
    coefs, intercepts = ridge_path(Xs, Y, ALPHAS)
    for alpha, coef, intercept in zip(ALPHAS, coefs, intercepts, strict=True):
        reference = sklearn_ridge(Xs, Y, alpha)
        scale = np.abs(reference.coef_).max()
        expected = reference.coef_.reshape(targets, dim)
        np.testing.assert_allclose(coef.T, expected, rtol=COEF_RTOL, atol=1e-9 * scale)
        np.testing.assert_allclose(intercept, np.ravel(reference.intercept_), rtol=1e-9)


def test_the_estimator_at_a_given_alpha_is_sklearns_ridge_on_its_standardisation():
    X, Y, _ = hidden_like(targets=1)
    head = ProbeRegressor(alpha=3.0).fit(X, Y[:, 0])
    Xs = (X - head.mean_.astype(np.float32)) / head.scale_.astype(np.float32)
    reference = sklearn_ridge(Xs, Y[:, 0], 3.0)
    np.testing.assert_allclose(head.coef_[0], reference.coef_, rtol=COEF_RTOL, atol=1e-12)
    assert head.predict(X).shape == (len(X),)
    np.testing.assert_allclose(head.predict(X), reference.predict(Xs), atol=1e-5)
    assert head.search_["method"] == "given" and head.oof_predictions_ is None


@pytest.mark.parametrize(("n", "dim"), [(200, 24), (30, 80)])  # Gram form, kernel form
def test_kfold_held_out_errors_are_per_fold_refits(n, dim):
    X, Y, _ = hidden_like(n, dim, targets=2)
    Xs, _, _ = standardise(X)
    folds = list(KFold(5, shuffle=True, random_state=0).split(Xs))
    path = kfold_path(Xs, Y, folds, ALPHAS)
    refits = np.empty((len(ALPHAS),) + Y.shape)  # (A, n, T) out-of-fold, refitted
    for a, alpha in enumerate(ALPHAS):
        for f, (train, held) in enumerate(folds):
            reference = sklearn_ridge(Xs[train], Y[train], alpha)
            refits[a, held] = reference.predict(Xs[held])
            scale = np.abs(reference.coef_).max()
            np.testing.assert_allclose(
                path.coefs[f][a].T, reference.coef_, rtol=COEF_RTOL, atol=1e-9 * scale
            )
        np.testing.assert_allclose(path.out_of_fold(Xs, a), refits[a], atol=1e-8)
    mse = ((refits - Y) ** 2).mean(axis=1)  # (A, T), from the rows themselves
    np.testing.assert_allclose(path.squared_errors / n, mse, rtol=1e-9)
    head = ProbeRegressor(alphas=ALPHAS).fit(X, Y)
    np.testing.assert_allclose(head.search_["mse"], mse.mean(axis=1), rtol=1e-9)
    chosen = list(ALPHAS).index(head.alpha_)
    np.testing.assert_allclose(head.oof_predictions_, refits[chosen], atol=1e-8)
    # the choice: highest mean R² of the pooled out-of-fold predictions
    r2 = [r2_score(Y, refits[a]) for a in range(len(ALPHAS))]
    np.testing.assert_allclose(head.search_["r2"], r2, rtol=1e-9)
    assert chosen == int(np.argmax(r2)) and head.search_["folds"] == 5
    # the final fit is scikit-learn's on all rows at the chosen alpha
    Xh = (X - head.mean_.astype(np.float32)) / head.scale_.astype(np.float32)
    reference = sklearn_ridge(Xh, Y, head.alpha_)
    np.testing.assert_allclose(head.coef_, reference.coef_, rtol=COEF_RTOL, atol=1e-9)
    np.testing.assert_allclose(head.intercept_, reference.intercept_, rtol=1e-9)


def test_validation_predictions_are_sklearns_for_every_alpha():
    X, Y, _ = hidden_like(n=200, targets=2)
    Xs, _, _ = standardise(X)
    fast = validation_predictions(Xs[:150], Y[:150], Xs[150:], ALPHAS)
    for a, alpha in enumerate(ALPHAS):
        expected = sklearn_ridge(Xs[:150], Y[:150], alpha).predict(Xs[150:])
        np.testing.assert_allclose(fast[a], expected, atol=1e-8)
    head = ProbeRegressor(alphas=ALPHAS).fit(X[:150], Y[:150], X[150:], Y[150:])
    assert head.search_["method"] == "validation" and head.oof_predictions_ is None
    assert head.alpha_ in ALPHAS and len(head.search_["r2"]) == len(ALPHAS)
    mse = ((fast - Y[150:]) ** 2).mean(axis=1) / Y[:150].var(axis=0)  # scaled by train var
    assert head.alpha_ == ALPHAS[int(np.argmin(mse.mean(axis=1)))]
    Xh = (X[:150] - head.mean_.astype(np.float32)) / head.scale_.astype(np.float32)
    reference = sklearn_ridge(Xh, Y[:150], head.alpha_)
    np.testing.assert_allclose(head.coef_, reference.coef_, rtol=COEF_RTOL, atol=1e-9)


def test_grouped_folds_never_split_a_group():
    groups = np.repeat(np.arange(23), 4)[:90]
    folds = regression_folds(len(groups), 5, 0, groups)
    assert len(folds) == 5
    for train, held in folds:
        assert not set(groups[train]) & set(groups[held])
    X, Y, _ = hidden_like(n=90)
    head = ProbeRegressor(alphas=ALPHAS).fit(X, Y, groups=groups)
    assert head.search_["folds"] == 5
    # every row its own group: the row-wise folds, as without groups
    rows = regression_folds(90, 5, 0, np.arange(90))
    plain = regression_folds(90, 5, 0)
    assert all((a[1] == b[1]).all() for a, b in zip(rows, plain, strict=True))


def test_a_planted_target_reaches_its_noise_ceiling_and_shuffled_targets_do_not():
    X, Y, signal = hidden_like(n=3000, dim=64, targets=2, noise=4.0, seed=1)
    train, test = slice(0, 2400), slice(2400, None)
    head = ProbeRegressor().fit(X[train], Y[train])
    assert head.search_["method"] == "k-fold"
    ceiling = 1 - 16.0 / (signal[test].var(axis=0) + 16.0)  # 1 - noise var / total var
    r2 = r2_score(Y[test], head.predict(X[test]), multioutput="raw_values")
    assert np.abs(r2 - ceiling).max() < 0.02, (r2, ceiling)
    shuffled = np.random.default_rng(0).permutation(Y[train])
    null = ProbeRegressor().fit(X[train], shuffled)
    assert r2_score(Y[test], null.predict(X[test])) < 0.05


@pytest.mark.parametrize(("n", "dim"), [(50, 20), (12, 300), (3, 5)])
def test_degenerate_features_fit_and_predict_finitely(n, dim):
    X, Y, _ = hidden_like(n, dim)
    X[:, 4] = X[:, 3] * 2.0 + 1.0  # collinear too
    head = ProbeRegressor(cv=3).fit(X, Y)
    assert np.isfinite(head.predict(X)).all() and np.isfinite(head.coef_).all()
    assert head.coef_.shape == (2, dim) and head.intercept_.shape == (2,)
    # the constant column (standardised to 0) lies in the null space: no weight beyond rounding
    assert np.abs(head.coef_[:, 2]).max() < 1e-12 * np.abs(head.coef_).max()


def test_too_few_rows_for_folds_and_non_finite_targets_are_one_line():
    X, Y, _ = hidden_like(n=20)
    with pytest.raises(InvalidTrainingData, match="at least 2 groups"):
        ProbeRegressor().fit(X, Y, groups=np.zeros(20))
    Y[7, 1] = np.nan
    Y[9, 0] = np.inf
    with pytest.raises(InvalidTrainingData, match="at row 7") as raised:
        ProbeRegressor().fit(X, Y)
    assert "\n" not in str(raised.value)
    assert ProbeRegressor(alpha=1.0).fit(X[:1], Y[:1, 0]).predict(X[:2]).shape == (2,)


def test_the_default_grid_is_positive_and_ascending():
    assert all(a > 0 for a in DEFAULT_ALPHAS) and list(DEFAULT_ALPHAS) == sorted(DEFAULT_ALPHAS)


def reference_metrics(y, p):
    """scikit-learn's and scipy's metrics of one target."""
    return {
        "r2": r2_score(y, p),
        "pearson_r": pearsonr(y, p)[0],
        "spearman_rho": spearmanr(y, p)[0],
        "mae": mean_absolute_error(y, p),
        "rmse": root_mean_squared_error(y, p),
    }


def test_the_report_is_sklearns_and_scipys_metrics():
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(80, 2)) * [20.0, 50.0] + [30.0, -10.0]
    P = Y + rng.normal(scale=15.0, size=Y.shape)
    P[:10, 0] = np.round(P[:10, 0])  # some ties
    report = regression_report(Y, P, ["latitude", "longitude"])
    assert report["n"] == 80
    for t, name in enumerate(["latitude", "longitude"]):
        expected = reference_metrics(Y[:, t], P[:, t])
        for metric, value in expected.items():
            assert report["targets"][name][metric] == pytest.approx(value, rel=1e-10, abs=1e-12)
    averaged = {"r2": r2_score, "mae": mean_absolute_error, "rmse": root_mean_squared_error}
    for metric, reference in averaged.items():
        assert report[metric] == pytest.approx(reference(Y, P), rel=1e-10)
    single = regression_report(Y[:, 0], P[:, 0])
    assert "targets" not in single and single["r2"] == pytest.approx(r2_score(Y[:, 0], P[:, 0]))


def test_a_constant_prediction_or_target_has_no_correlation():
    y = np.arange(10.0)
    report = regression_report(y, np.full(10, 4.5))
    assert report["pearson_r"] is None and report["spearman_rho"] is None
    assert report["r2"] == pytest.approx(r2_score(y, np.full(10, 4.5)))
    assert regression_report(np.full(10, 2.0), y)["pearson_r"] is None


def test_resampled_metrics_are_the_metrics_of_the_expanded_rows():
    rng = np.random.default_rng(5)
    Y = rng.normal(size=(60, 2)) * [20.0, 50.0] + [30.0, -10.0]
    P = Y + rng.normal(scale=25.0, size=Y.shape)
    P[:20, 1] = np.round(P[:20, 1], -1)  # ties in predictions
    Y[:6, 0] = Y[0, 0]  # and in targets
    counts = np.stack([np.bincount(rng.integers(0, 60, 60), minlength=60) for _ in range(6)])
    counts[0] = 1  # the full sample
    values = resampled_regression_metrics(Y, P, counts.astype(np.float32))
    for r, row in enumerate(counts):
        Ye, Pe = np.repeat(Y, row, axis=0), np.repeat(P, row, axis=0)
        per_target = [reference_metrics(Ye[:, t], Pe[:, t]) for t in range(2)]
        for metric in values:
            expected = np.mean([m[metric] for m in per_target])
            assert values[metric][r] == pytest.approx(expected, abs=1e-9), (metric, r)
    # a resample that draws one row only: correlations undefined, not NaN in the report sense
    one = np.zeros((1, 60))
    one[0, 3] = 60
    drawn = resampled_regression_metrics(Y, P, one)
    assert np.isnan(drawn["pearson_r"][0]) and np.isnan(drawn["spearman_rho"][0])
    assert drawn["mae"][0] == pytest.approx(np.abs(Y[3] - P[3]).mean())
