"""Degenerate matrices, and every layer of a real cache: the solver fits, predicts, and
reaches scikit-learn's optimum.

Each case is fitted as a user would (C searched by cross-validation), then scikit-learn's
``LogisticRegression`` (lbfgs, tight tolerance) is fitted at the chosen C on the same
standardised features. Pass: the same regularised objective, ``C * sum(loss) + ||W||^2 / 2``,
within 1e-4 relative, and test accuracy within 0.5 point on a held-out set from the same
distribution (at least 200 rows, so 0.5 point is one row).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_expit, logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from probe.heads.estimator import DEFAULT_CS, ProbeClassifier

OBJECTIVE_RTOL = 1e-4
ACCURACY_POINTS = 0.5


def clusters(n, dim, classes, seed, spread=1.5):
    """Gaussian classes with overlapping centres: separable only in part, so C matters.
    Returns a sampler ``rows -> (X, y)`` with fixed centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread / np.sqrt(dim) * 3, size=(classes, dim))

    def sample(rows, weights=None):
        y = rng.choice(classes, size=rows, p=weights)
        return centres[y] + rng.normal(size=(rows, dim)), y

    return sample


def split(sample, n_train, n_test=300, **kw):
    X, y = sample(n_train, **kw)
    X_test, y_test = sample(n_test, **kw)
    return X, y, X_test, y_test


def constant_column():
    X, y, Xt, yt = split(clusters(0, 24, 3, 1), 300)
    X[:, :4], Xt[:, :4] = 7.0, 7.0
    return X, y, Xt, yt


def duplicated_columns():
    X, y, Xt, yt = split(clusters(0, 20, 3, 2), 300)

    def twice(A):
        return np.hstack([A, A, 2 * A[:, :5]])

    return twice(X), y, twice(Xt), yt


def rank_deficient():
    """Rank 3 in 256 dimensions (plus an offset): an embedding layer's few directions."""
    rng = np.random.default_rng(3)
    lift = rng.normal(size=(3, 256))
    sample = clusters(0, 3, 4, 3)

    def lifted(rows):
        latent, y = sample(rows)
        return latent @ lift + 5.0, y

    return split(lifted, 400)


def wide():
    X, y, Xt, yt = split(clusters(0, 2000, 3, 4, spread=3.0), 40)
    return X, y, Xt, yt


def wide_binary():
    return split(clusters(0, 2000, 2, 5, spread=3.0), 40)


def tiny():
    """Two examples per class."""
    sample = clusters(0, 16, 4, 6, spread=3.0)
    X, y = sample(400)
    train = np.concatenate([np.flatnonzero(y == k)[:2] for k in range(4)])
    test = np.setdiff1d(np.arange(400), train)
    return X[train], y[train], X[test], y[test]


def rare_class():
    """3 of 300 training rows in class 2."""
    sample = clusters(0, 32, 3, 7, spread=3.0)
    X, y = sample(2000, weights=[0.6, 0.39, 0.01])
    train = np.concatenate([np.flatnonzero(y != 2)[:297], np.flatnonzero(y == 2)[:3]])
    test = np.setdiff1d(np.arange(2000), train)
    return X[train], y[train], X[test], y[test]


def scaled(factor, offset):
    def case():
        X, y, Xt, yt = split(clusters(0, 32, 3, 8), 300)
        column_scale = factor * np.logspace(-1, 1, 32)
        return X * column_scale + offset, y, Xt * column_scale + offset, yt

    return case


def many_classes():
    return split(clusters(0, 48, 24, 9, spread=4.0), 960, n_test=480)


def float16_input():
    X, y, Xt, yt = split(clusters(0, 64, 3, 10), 400)
    return (X * 3 + 20).astype(np.float16), y, (Xt * 3 + 20).astype(np.float16), yt


CASES = {
    "constant_column": constant_column,
    "duplicated_columns": duplicated_columns,
    "rank_3_in_256": rank_deficient,
    "wide_40x2000": wide,
    "wide_40x2000_binary": wide_binary,
    "tiny_2_per_class": tiny,
    "rare_class_3_of_300": rare_class,
    "huge_scale_1e6": scaled(1e6, 3e6),
    "tiny_scale_1e-6": scaled(1e-6, 0.0),
    "many_classes_24": many_classes,
    "float16_input": float16_input,
}


def objective(W, b, X, codes, C) -> float:
    """scikit-learn's objective: C * sum of log losses + ||W||^2 / 2 (intercept free)."""
    Z = X @ W.T + b  # (n, K')
    if W.shape[0] == 1:  # binary: one weight vector for class 1
        loss = -log_expit(np.where(codes == 1, Z[:, 0], -Z[:, 0])).sum()
    else:
        loss = (logsumexp(Z, axis=1) - Z[np.arange(len(Z)), codes]).sum()
    return float(C * loss + 0.5 * np.sum(W * W))


def check_against_reference(X, y, X_test, y_test):
    """Fit ours (C searched), the reference at our C; compare objective and test accuracy."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # ours must converge
        ours = ProbeClassifier().fit(X, y)
    # the fast path must pass on its own; the fallback has its own test (test_estimator.py)
    assert ours.solver_ == "probe-lbfgs", ours.fallback_reason_

    def standardise(A):
        return (np.asarray(A, np.float64) - ours.mean_) / ours.scale_

    reference = LogisticRegression(C=ours.C_, tol=1e-10, max_iter=100_000)
    with threadpool_limits(1):  # tiny problems: BLAS threads only contend on a shared machine
        reference.fit(standardise(X), y)
    codes = np.searchsorted(ours.classes_, y)
    mine = objective(ours.coef_, ours.intercept_, standardise(X), codes, ours.C_)
    theirs = objective(reference.coef_, reference.intercept_, standardise(X), codes, ours.C_)
    assert abs(mine - theirs) <= OBJECTIVE_RTOL * theirs, (mine, theirs, ours.C_, ours.solver_)
    predicted = ours.predict(X_test)
    assert predicted.shape == (len(y_test),) and set(predicted) <= set(ours.classes_)
    assert np.isfinite(ours.predict_proba(X_test)).all()
    accuracy_gap = ours.score(X_test, y_test) - reference.score(standardise(X_test), y_test)
    assert abs(accuracy_gap) * 100 <= ACCURACY_POINTS, (accuracy_gap, ours.C_)
    return ours


@pytest.mark.parametrize("case", list(CASES))
def test_degenerate_features_fit_like_scikit_learn(case):
    X, y, X_test, y_test = CASES[case]()
    check_against_reference(X, y, X_test, y_test)


# --- every layer x pool of a real cache -------------------------------------------------------

QUESTION_TYPES = {
    "person": ["who wrote", "who painted", "who founded", "which author described"],
    "place": ["where is", "where was", "in which city is", "where can I find"],
    "number": ["how many people saw", "how much does", "how many pages has", "what number is"],
    "date": ["when was", "in what year did", "when did", "on which day was"],
    "reason": ["why is", "why did", "what caused", "for what reason was"],
    "thing": ["what colour is", "which animal is on", "what food goes with", "what tool made"],
}
SUBJECTS = [
    "the old bridge",
    "Hamlet",
    "the first telephone",
    "the river Nile",
    "jazz",
    "the tallest tower",
    "a famous painting",
    "the moon landing",
    "chess",
    "the museum",
    "the local team",
    "this song",
    "the castle",
    "the novel",
    "a new vaccine",
]


def question_texts(rows: int, seed: int) -> pd.DataFrame:
    """Six-class question-type texts (like TREC's), one label in ten replaced at random so
    the classes overlap: a small, real, multi-class probing task."""
    rng = np.random.default_rng(seed)
    names = sorted(QUESTION_TYPES)
    labels = rng.choice(names, size=rows)
    texts = [
        f"{rng.choice(QUESTION_TYPES[label])} {rng.choice(SUBJECTS)} {rng.choice(SUBJECTS)}?"
        for label in labels
    ]
    noisy = rng.random(rows) < 0.1
    labels[noisy] = rng.choice(names, size=int(noisy.sum()))
    return pd.DataFrame({"text": texts, "label": labels})


@pytest.fixture(scope="module")
def question_cache(tiny_gpt2_dir, tmp_path_factory):
    """train (360) / val (240) / test (300) question texts, extracted with the tiny GPT-2."""
    from probe.heads.rows import prepare

    folder = tmp_path_factory.mktemp("questions")
    paths = {}
    for seed, (split_name, rows) in enumerate([("train", 360), ("val", 240), ("test", 300)]):
        paths[split_name] = str(folder / f"{split_name}.csv")
        question_texts(rows, seed).to_csv(paths[split_name], index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROBE_CACHE", str(folder / "store"))
        return prepare(str(tiny_gpt2_dir), max_length=32, **paths)


@pytest.mark.parametrize("pool", ["last", "mean"])
@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_every_layer_of_a_real_cache_fits_like_scikit_learn(question_cache, layer, pool):
    data = question_cache
    check_against_reference(
        data.train.features(layer, pool),
        data.train.labels,
        data.test.features(layer, pool),
        data.test.labels,
    )


def test_validation_selected_sweep_matches_an_independent_scikit_learn_probe(question_cache):
    """The whole sweep on held-out six-class data: no error row, and the test accuracy of its
    validation-chosen head within 2 points of scikit-learn's own choice (StandardScaler +
    LogisticRegression over the same layers, pools and Cs, chosen on the same validation)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from probe.research.sweep import run_sweep

    data = question_cache
    result = run_sweep(data, n_jobs=1)
    assert len(result["entries"]) == 8
    assert all(row.get("error") is None for row in result["entries"])
    ours = result["best"]["test_accuracy"]
    candidates = []
    with threadpool_limits(1):
        for layer in data.layers:
            for pool in ("last", "mean"):
                for C in DEFAULT_CS:
                    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
                    model.fit(data.train.features(layer, pool), data.train.labels)
                    val = model.score(data.val.features(layer, pool), data.val.labels)
                    test = model.score(data.test.features(layer, pool), data.test.labels)
                    candidates.append((val, -layer, test))
    theirs = max(candidates)[2]
    assert ours >= 0.5  # the question type is learnable from the tiny model's features
    assert abs(ours - theirs) <= 0.02, (ours, theirs, result["best"]["layer"])


def poison(data, layers, pool="last"):
    """Write inf into one training row of ``layers`` in the cache file (what fp16 overflow
    in a real model leaves): those heads cannot be fitted."""
    import h5py

    ((path, rows),) = data.train.parts
    with h5py.File(path, "r+") as handle:
        stored = [int(x) for x in handle["layers"][()]]
        for layer in layers:
            block = handle[pool][stored.index(layer)]
            block[0 if rows is None else rows[0], 0] = np.inf
            handle[pool][stored.index(layer)] = block


def test_a_head_that_cannot_be_fitted_is_a_row_and_the_sweep_goes_on(tiny_gpt2_dir, sms_labelled):
    from probe.errors import ProbeError
    from probe.heads.rows import prepare
    from probe.research.sweep import run_sweep
    from probe.research.sweep_report import markdown_table

    data = prepare(str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48)
    poison(data, [1])
    result = run_sweep(data, n_jobs=1)
    failed = [row for row in result["entries"] if row.get("error")]
    assert [(row["layer"], row["pool"]) for row in failed] == [(1, "last")]
    assert "1 non-finite values" in failed[0]["error"] and "\n" not in failed[0]["error"]
    assert failed[0]["val_accuracy"] is None and failed[0]["C"] is None
    assert (result["best"]["layer"], result["best"]["pool"]) != (1, "last")
    assert len(result["entries"]) == 8 and "non-finite" in markdown_table(result)

    poison(data, [0, 2, 3])
    poison(data, [0, 1, 2, 3], pool="mean")
    with pytest.raises(ProbeError, match="every head of the sweep failed") as caught:
        run_sweep(data, n_jobs=1)
    assert "\n" not in str(caught.value)
