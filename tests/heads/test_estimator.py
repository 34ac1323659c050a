"""ProbeClassifier: scikit-learn's contract and numbers; heads saved, loaded and refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

import probe.heads.estimator
from probe.errors import ProbeError
from probe.heads.estimator import InvalidTrainingData, ProbeClassifier
from probe.heads.persistence import load_head, save_head


@parametrize_with_checks([ProbeClassifier(Cs=(0.1, 1.0, 10.0), cv=3)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def noisy_linear(n=600, dim=24, classes=2, seed=0, shift=3.0):
    """Features with an offset and uneven scales (like hidden states), labels from a noisy
    linear rule: not separable, so C matters."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)) * rng.uniform(0.2, 5.0, dim) + shift
    W = rng.normal(size=(classes, dim))
    logits = ((X - shift) / X.std(axis=0)) @ W.T + rng.normal(scale=2.0, size=(n, classes))
    return X.astype(np.float32), logits.argmax(axis=1)


@pytest.mark.parametrize(
    ("classes", "C", "class_weight"),
    [(2, 0.01, None), (2, 1.0, "balanced"), (3, 0.1, None), (4, 10.0, "balanced")],
)
def test_equals_scikit_learn_logistic_regression(classes, C, class_weight):
    X, y = noisy_linear(classes=classes, seed=classes)
    if class_weight:
        y = np.where(np.arange(len(y)) % 3 == 0, y, 0)  # make class 0 dominant
    ours = ProbeClassifier(C=C, class_weight=class_weight, tol=1e-7).fit(X, y)
    standardised = (X - ours.mean_) / ours.scale_
    theirs = LogisticRegression(C=C, class_weight=class_weight, tol=1e-10, max_iter=10_000)
    theirs.fit(standardised, y)
    assert ours.coef_.shape == theirs.coef_.shape == (1 if classes == 2 else classes, X.shape[1])
    scale = np.abs(theirs.coef_).max()
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-4 * scale)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(standardised), atol=1e-5)
    assert (ours.predict(X) == theirs.predict(standardised)).mean() >= 0.995
    spread = X.astype(np.float64).std(axis=0)
    assert np.all(np.abs(ours.mean_ - X.astype(np.float64).mean(axis=0)) <= 1e-6 * spread)
    np.testing.assert_allclose(ours.scale_, spread, rtol=1e-6)


@pytest.mark.parametrize("classes", [2, 4])
def test_separable_features_are_classified_perfectly(classes):
    rng = np.random.default_rng(classes)
    centres = rng.normal(scale=6.0, size=(classes, 32))
    y = rng.integers(0, classes, 800)
    X = centres[y] + rng.normal(size=(800, 32))
    names = np.array(["neg", "pos", "neutral", "mixed"])[:classes]
    clf = ProbeClassifier().fit(X[:600], names[y[:600]])
    assert clf.score(X[600:], names[y[600:]]) >= 0.995
    assert list(clf.classes_) == sorted(names)


def test_validation_not_test_chooses_C(monkeypatch):
    """Validation = the test rows with every label flipped: the C best on validation is the
    one worst on test. If test data chose anything, the two would agree."""
    monkeypatch.setattr(probe.heads.estimator, "SEARCH_TOL", 1e-8)  # the path = separate tight fits
    X, y = noisy_linear(n=300, dim=40, seed=7)
    X_test, y_test = X[200:], y[200:]
    grid = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    test_accuracy = [
        ProbeClassifier(C=C, tol=1e-8).fit(X[:200], y[:200]).score(X_test, y_test) for C in grid
    ]
    assert len(set(test_accuracy)) > 1
    clf = ProbeClassifier(Cs=grid, tol=1e-8, stop_early=False)  # every C scored
    clf.fit(X[:200], y[:200], X_test, 1 - y_test)
    assert clf.search_["method"] == "validation"
    assert clf.C_ == grid[int(np.argmin(test_accuracy))]
    np.testing.assert_allclose(clf.search_["accuracy"], 1 - np.asarray(test_accuracy))


def test_without_validation_C_is_cross_validated():
    X, y = noisy_linear(n=300, seed=3)
    clf = ProbeClassifier(Cs=(0.01, 1.0), cv=4).fit(X, y)
    assert clf.search_["method"] == "4-fold cross-validation"
    assert clf.C_ in (0.01, 1.0) and len(clf.search_["accuracy"]) == 2


def test_one_class_is_a_one_line_error():
    X, _ = noisy_linear(n=20)
    with pytest.raises(ProbeError, match="one class") as caught:
        ProbeClassifier().fit(X, ["spam"] * 20)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, InvalidTrainingData)
    assert "\n" not in str(caught.value)


def test_validation_labels_must_be_known():
    X, y = noisy_linear(n=100)
    with pytest.raises(ProbeError, match="validation labels not in the training labels: 7"):
        ProbeClassifier().fit(X, y, X[:10], [7] * 10)


def test_from_weights_builds_a_fitted_classifier():
    from probe.heads.persistence import classifier_from_weights

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    coef, intercept = rng.normal(size=(1, 6)), np.array([0.3])
    clf = classifier_from_weights(coef, intercept, ["ham", "spam"])
    expected = np.where(X @ coef[0] + 0.3 > 0, "spam", "ham")
    assert list(clf.predict(X)) == list(expected)
    three = classifier_from_weights(rng.normal(size=(3, 6)), np.zeros(3), ["a", "b", "c"])
    assert three.predict_proba(X).shape == (50, 3)
    with pytest.raises(ProbeError, match="do not fit 3 classes"):
        classifier_from_weights(coef, intercept, ["a", "b", "c"])


# --- saved heads ------------------------------------------------------------------------------


META = {
    "model": "/models/tiny",
    "model_fingerprint": "f" * 32,
    "layer": 2,
    "pool": "mean",
    "max_length": 64,
    "cache_key": "k" * 32,
    "metrics": {"test": {"accuracy": 0.9}},
}


@pytest.fixture
def fitted():
    X, y = noisy_linear(n=200, classes=3)
    labels = np.array(["neg", "neu", "pos"])[y]
    return ProbeClassifier().fit(X, labels), X


def test_head_round_trips_exactly(fitted, tmp_path):
    clf, X = fitted
    path = save_head(tmp_path / "heads" / "topic.json", clf, META)
    assert path == tmp_path / "heads" / "topic.json"
    assert (tmp_path / "heads" / "topic.safetensors").is_file()
    loaded, meta = load_head(path)
    for name in ("coef_", "intercept_", "mean_", "scale_", "classes_"):
        assert np.array_equal(getattr(loaded, name), getattr(clf, name)), name
    assert loaded.C_ == clf.C_
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert meta["layer"] == 2 and meta["pool"] == "mean" and meta["cache_key"] == "k" * 32
    assert meta["label_names"] == ["neg", "neu", "pos"] and meta["metrics"] == META["metrics"]
    assert meta["C"] == clf.C_ and "scikit-learn" in meta["versions"]
    record = json.loads(path.read_text())
    assert len(record["weights_sha256"]) == 64


def test_a_directory_holds_head_json(fitted, tmp_path):
    clf, _ = fitted
    path = save_head(tmp_path / "model-dir", clf, META)
    assert path == tmp_path / "model-dir" / "head.json"
    assert load_head(tmp_path / "model-dir")[1]["pool"] == "mean"


def damage(path, how):
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :])


@pytest.mark.parametrize(
    ("target", "how", "message"),
    [
        ("json", "truncate", "damaged"),
        ("json", "edit", "damaged"),
        ("weights", "truncate", "does not match"),
        ("weights", "flip", "does not match"),
        ("weights", "delete", "not found"),
        ("json", "delete", "head file not found"),
    ],
)
def test_damaged_heads_are_refused_in_one_line(fitted, tmp_path, target, how, message):
    clf, _ = fitted
    path = save_head(tmp_path / "head.json", clf, META)
    victim = path if target == "json" else path.with_suffix(".safetensors")
    if how == "delete":
        victim.unlink()
    elif how == "edit":  # valid JSON, one field changed
        record = json.loads(victim.read_text())
        record["layer"] = 3
        victim.write_text(json.dumps(record))
    else:
        damage(victim, how)
    with pytest.raises(ProbeError, match=message) as caught:
        load_head(path)
    assert "\n" not in str(caught.value)


def test_other_json_is_not_a_head(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"n_layer": 2}')
    with pytest.raises(ProbeError, match="not a probe head file"):
        load_head(path)


def test_save_head_needs_the_metadata_predict_needs(fitted, tmp_path):
    clf, _ = fitted
    with pytest.raises(ProbeError, match="lacks model_fingerprint"):
        save_head(
            tmp_path / "h.json", clf, {k: v for k, v in META.items() if k != "model_fingerprint"}
        )


def test_fitting_imports_no_modeling_code():
    code = (
        "import sys, numpy as np\n"
        "from probe.heads.estimator import ProbeClassifier\n"
        "import probe.research.sweep, probe.heads.metrics\n"
        "X = np.random.default_rng(0).normal(size=(60, 5)); y = X[:, 0] > 0\n"
        "ProbeClassifier().fit(X, y)\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_a_one_line_error_with_their_count(bad):
    X, y = noisy_linear(n=100)
    X[[3, 3, 50], [0, 5, 7]] = bad
    with pytest.raises(InvalidTrainingData, match="3 non-finite values .* in 2 rows") as caught:
        ProbeClassifier().fit(X, y)
    assert "\n" not in str(caught.value) and len(str(caught.value)) <= 200
    with pytest.raises(InvalidTrainingData, match="validation X contains 3 non-finite"):
        ProbeClassifier().fit(X[[0, 1]].repeat(50, axis=0) * 0 + 1.0, y, X, y)


def test_float32_overflow_is_a_one_line_error():
    X, y = noisy_linear(n=100)
    X = X.astype(np.float64)
    X[0, 0] = 1e300
    with pytest.raises(InvalidTrainingData, match="too large for float32"):
        ProbeClassifier().fit(X, y)


@pytest.mark.parametrize("classes", [2, 3])
def test_when_the_fast_path_fails_scikit_learn_fits_and_says_so(classes, monkeypatch):
    """The fallback is the reference itself: same objective, so the same coefficients."""
    from probe.heads import solver

    def broken(self, C, tol, max_iter, rtol=None, screen=None):
        raise solver.SolverFailure("forced for the test")

    X, y = noisy_linear(classes=classes, seed=11)
    fast = ProbeClassifier(Cs=(0.01, 1.0), tol=1e-6).fit(X, y)
    assert fast.solver_ == "probe-lbfgs" and fast.fallback_reason_ is None
    monkeypatch.setattr(solver.LogisticPath, "solve", broken)
    slow = ProbeClassifier(Cs=(0.01, 1.0), tol=1e-6).fit(X, y)
    assert slow.solver_ == "sklearn-fallback"
    assert slow.fallback_reason_ == "SolverFailure: forced for the test"
    assert slow.C_ == fast.C_ and slow.search_["method"] == fast.search_["method"]
    np.testing.assert_allclose(slow.coef_, fast.coef_, atol=1e-3 * np.abs(fast.coef_).max())
    assert (slow.predict(X) == fast.predict(X)).mean() >= 0.99
