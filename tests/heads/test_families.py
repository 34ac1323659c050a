"""Probe families (``--probe``): known answers on planted data."""

from __future__ import annotations

import numpy as np
import pytest

from probe.errors import ProbeError
from probe.heads.families import make_probe, new_head, parse_probe, parse_probes, refit_spec
from probe.heads.families.mass_mean import MassMeanProbe
from probe.heads.families.mlp import MLPProbe, from_tensors, serving_layers, tensors
from probe.heads.families.sparse import SparseProbe


def gaussians(n=600, d=20, seed=0, classes=2):
    """Classes as Gaussians with a shared, correlated covariance and distinct means."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    means = rng.normal(size=(classes, d))
    y = np.arange(n) % classes
    X = (rng.normal(size=(n, d)) @ mix + means[y]) * rng.uniform(0.5, 3.0, d) + 5.0
    return X.astype(np.float32), y


def cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --- parsing -------------------------------------------------------------------------------


def test_parse_probe_names_and_errors():
    assert parse_probe("logistic") == ("logistic", {})
    assert parse_probe(" Sparse:8 ") == ("sparse", {"k": 8})
    assert parse_probes("logistic, mass-mean,logistic") == ["logistic", "mass-mean"]
    assert parse_probes("sparse:1,2,4") == ["sparse:1", "sparse:2", "sparse:4"]
    for bad in ("sparse:0", "sparse:x", "sparse", "bogus", "mlp:3", ""):
        with pytest.raises(ProbeError) as found:
            parse_probes(bad)
        assert "\n" not in str(found.value)
    with pytest.raises(ProbeError, match="--C"):
        make_probe("mass-mean", C=1.0)


# --- mass-mean and LDA ---------------------------------------------------------------------


def test_mass_mean_direction_is_the_class_mean_difference():
    X, y = gaussians()
    probe = MassMeanProbe().fit(X, y)
    scale = X.std(axis=0, dtype=np.float64)
    closed = (X[y == 1].mean(0, dtype=np.float64) - X[y == 0].mean(0, dtype=np.float64)) / scale
    assert cosine(probe.direction_, closed) > 0.999
    assert cosine(probe.coef_, closed) > 0.999  # the calibration only scales it
    assert probe.coef_ @ closed > 0  # and keeps its sign
    assert probe.C_ is None and probe.score(X, y) > 0.8
    proba = probe.predict_proba(X)
    assert np.allclose(proba.sum(1), 1.0)
    # calibrated on train: the mean predicted probability of class 1 is its frequency
    assert abs(proba[:, 1].mean() - y.mean()) < 0.02


def test_mass_mean_multiclass_scores_by_centroids():
    X, y = gaussians(n=900, classes=3, seed=1)
    probe = MassMeanProbe().fit(X, y)
    Z = (X - X.mean(0)) / X.std(0)
    centred = np.stack([Z[y == c].mean(0) for c in range(3)]) - Z.mean(0)
    for row, direction in zip(probe.direction_, centred, strict=True):
        assert cosine(row, direction) > 0.999
    assert probe.coef_.shape == (3, X.shape[1]) and probe.score(X, y) > 0.7


@pytest.mark.parametrize("classes", [2, 3])
def test_lda_equals_scikit_learn_on_standardised_features(classes):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X, y = gaussians(classes=classes, seed=2)
    probe = MassMeanProbe(iid=True).fit(X, y)
    Z = (X - probe.mean_) / probe.scale_
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(Z, y)
    assert np.allclose(probe.coef_, lda.coef_, rtol=1e-4, atol=1e-6)
    assert np.allclose(probe.intercept_, lda.intercept_, rtol=1e-4, atol=1e-4)
    assert np.allclose(probe.predict_proba(X), lda.predict_proba(Z), atol=1e-5)


def test_lda_beats_mass_mean_when_the_covariance_misleads():
    """A strong nuisance direction correlated across features: the class-mean difference
    points partly along it, the covariance-corrected direction does not."""
    rng = np.random.default_rng(3)
    n, d = 2000, 10
    y = np.arange(n) % 2
    nuisance = rng.normal(size=n) * 5.0
    X = rng.normal(size=(n, d))
    X[:, 0] += nuisance + y * 1.0
    X[:, 1] += nuisance
    X = X.astype(np.float32)
    assert MassMeanProbe(iid=True).fit(X, y).score(X, y) > MassMeanProbe().fit(X, y).score(X, y)


# --- sparse --------------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 3])
def test_sparse_finds_the_planted_neurons(classes):
    rng = np.random.default_rng(4)
    n, d, planted = 900, 64, [5, 17, 40, 58]
    y = np.arange(n) % classes
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 4.0, d)
    for j, column in enumerate(planted):
        X[:, column] += (y == (j % classes)) * 2.0 * X[:, column].std()
    X = X.astype(np.float32)
    probe = SparseProbe(4).fit(X, y)
    assert sorted(probe.neurons_.tolist()) == planted
    nonzero = np.flatnonzero(np.abs(probe.coef_).sum(0))
    assert sorted(nonzero.tolist()) == planted  # full width, zeros beyond its neurons
    assert probe.C_ is not None and probe.score(X, y) > 0.8
    one = SparseProbe(1).fit(X, y)
    assert one.neurons_[0] in planted
    # the sparse head's own predictions equal its inner logistic head's on its columns
    columns = X[:, probe.neurons_]
    assert np.allclose(probe.predict_proba(X), probe.head_.predict_proba(columns), atol=1e-9)


def test_sparse_uses_validation_for_C_only_and_refuses_a_bad_k():
    X, y = gaussians(seed=5)
    probe = SparseProbe(3).fit(X[:400], y[:400], X[400:], y[400:])
    assert probe.search_["method"] == "validation"
    assert np.array_equal(probe.neurons_, SparseProbe(3).fit(X[:400], y[:400]).neurons_)
    with pytest.raises(ProbeError, match="sparse:99"):
        SparseProbe(99).fit(X, y)


# --- MLP -----------------------------------------------------------------------------------


def xor_data(n=1200, d=10, seed=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    return X, y


def test_mlp_beats_logistic_on_xor_and_is_seeded():
    X, y = xor_data()
    Xv, yv = xor_data(seed=7)
    Xt, yt = xor_data(seed=8)
    mlp = MLPProbe(random_state=0).fit(X, y, Xv, yv)
    again = MLPProbe(random_state=0).fit(X, y, Xv, yv)
    assert np.array_equal(mlp.hidden_weight_, again.hidden_weight_)
    assert mlp.search_["method"] == "early stopping on validation log loss"
    logistic = make_probe("logistic").fit(X, y, Xv, yv)
    assert abs(logistic.score(Xt, yt) - 0.5) < 0.07  # linear: at chance
    assert mlp.score(Xt, yt) > 0.85
    internal = MLPProbe(random_state=0).fit(X, y)  # no validation: scikit-learn's split
    assert "of train" in internal.search_["method"] and internal.score(Xt, yt) > 0.8


def test_mlp_probabilities_match_scikit_learn_and_round_trip():
    X, y = gaussians(n=300, classes=3, seed=9)
    mlp = MLPProbe(hidden=8, max_iter=30).fit(X, y)
    record = {"classes": mlp.classes_.tolist()}
    loaded = from_tensors({k: np.asarray(v) for k, v in tensors(mlp).items()}, record)
    assert np.allclose(loaded.predict_proba(X), mlp.predict_proba(X))
    (w1, b1), (w2, b2) = serving_layers(mlp)
    folded = np.maximum(X.astype(np.float64) @ w1 + b1, 0) @ w2 + b2
    assert np.allclose(folded, mlp.decision_function(X), atol=1e-8)


# --- all families --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["mass-mean", "mass-mean-iid", "sparse:3", "mlp"])
def test_degenerate_columns_and_refits(spec):
    X, y = gaussians(n=200, d=8, seed=10)
    X[:, 2] = 7.0  # a constant column
    X[:, 3] = 0.0
    head = make_probe(spec).fit(X, y)
    proba = head.predict_proba(X)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1.0)
    refit = new_head(refit_spec(head)).fit(X, 1 - y)  # what repeats and the control fit
    assert type(refit) is type(head)
    if spec.startswith("sparse"):
        assert not {2, 3} & set(head.neurons_.tolist())  # constant columns rank last
    with pytest.raises(ProbeError, match="one class"):
        make_probe(spec).fit(X, np.zeros(len(X), int))


def test_logistic_refit_spec_is_its_C():
    X, y = gaussians(n=200, d=8)
    head = make_probe("logistic", C=0.5).fit(X, y)
    assert refit_spec(head) == 0.5 and new_head(0.5).C == 0.5
