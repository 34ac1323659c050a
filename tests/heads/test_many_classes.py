"""Hundreds of classes (issue 29 item 3): the solver's start and preconditioner at many classes,
and classes with one or two rows in splits and folds (kept, counted, never dropped)."""

from __future__ import annotations

import numpy as np
import pytest

from probe.heads.estimator import ProbeClassifier


def planted(n=1500, dim=20, classes=60, singletons=8, seed=0):
    """Class means planted in a low-rank subspace, Zipf-like class sizes, ``singletons``
    classes of one row, a constant and a duplicated column: what a country label set on
    hidden states looks like, small."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum(2, (n / np.arange(1, classes + 1) ** 1.1 / 4).astype(int))
    sizes[-singletons:] = 1
    y = rng.permutation(np.repeat(np.arange(classes), sizes))
    means = rng.normal(size=(classes, 8)) @ rng.normal(size=(8, dim))
    X = (means[y] * 0.6 + rng.normal(size=(len(y), dim))).astype(np.float32)
    X[:, 3] = 1.0  # constant
    X[:, 7] = X[:, 6]  # duplicated
    return X, y


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_many_classes_reach_scikit_learns_solution(C):
    """60 classes (8 of one row) with degenerate columns: the same probabilities as
    scikit-learn's multinomial lbfgs, solved to its optimum, on the same standardisation."""
    from sklearn.linear_model import LogisticRegression

    X, y = planted()
    clf = ProbeClassifier(C=C, tol=1e-6).fit(X, y)
    assert clf.solver_ == "probe-lbfgs"
    standardised = (X - clf.mean_) / clf.scale_
    reference = LogisticRegression(C=C, tol=1e-8, max_iter=20000).fit(standardised, y)
    np.testing.assert_allclose(
        clf.predict_proba(X), reference.predict_proba(standardised), atol=1e-4
    )


def test_the_search_on_validation_data_chooses_the_C_of_the_lowest_converged_loss():
    """C chosen on validation data at 60 classes: the C whose fit, solved to its optimum
    (which equals scikit-learn's, above), has the lowest validation log loss."""
    from probe.heads.maths import accuracy_and_log_loss

    X, y = planted(n=2000, seed=1)
    rows = np.random.default_rng(1).permutation(len(y))
    train = rows[400:]
    val = rows[:400][np.isin(y[rows[:400]], y[train])]
    clf = ProbeClassifier(Cs=[0.01, 0.1, 1.0, 10.0], stop_early=False).fit(
        X[train], y[train], X[val], y[val]
    )
    losses = {}
    for C in clf.search_["Cs"]:
        exact = ProbeClassifier(C=C, tol=1e-6).fit(X[train], y[train])
        logits = exact.decision_function(X[val])
        codes = np.searchsorted(exact.classes_, y[val])
        losses[C] = accuracy_and_log_loss(logits, codes, False)[1]
    assert clf.C_ == min(losses, key=losses.get)
    np.testing.assert_allclose(clf.search_["log_loss"], list(losses.values()), atol=2e-3)


def test_singleton_classes_never_crash_a_k_fold_search_nor_cut_its_folds():
    """Classes of one and two rows among 60: 5 folds (a class of two rows no longer makes
    them 2), every training row has out-of-fold probabilities, all finite."""
    X, y = planted(n=1200, seed=2)
    y = y.copy()
    y[np.flatnonzero(y == 0)[:2]] = 60  # a class of two rows
    clf = ProbeClassifier(Cs=[0.01, 0.1, 1.0]).fit(X, y)
    assert clf.search_["method"] == "5-fold cross-validation"
    probabilities = clf.out_of_fold_proba()
    assert probabilities.shape == (len(y), len(clf.classes_))
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(axis=1), 1)
    assert np.isfinite(clf.search_["log_loss"]).all()


@pytest.mark.parametrize("shape", [dict(n=400, classes=120, singletons=30, seed=4), dict()])
def test_k_fold_losses_equal_scikit_learns_fold_fits_when_folds_lack_classes(shape):
    """Each C's held-out log loss under k-fold, where a fold lacks the classes of one row,
    equals the mean over folds of scikit-learn's fit on that fold's classes (a lacking
    class has probability 0 there). Before: such a class kept another fold's intercept
    (+0.016 on 313 countries) or its intercept ran off (a fold's loss 4e4 at C = 0.01)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from probe.heads.search import fold_rows

    X, y = planted(**shape)
    Cs = [0.001, 0.01, 0.1]
    clf = ProbeClassifier(Cs=Cs, exact=True, tol=1e-5).fit(X, y)
    codes = np.searchsorted(clf.classes_, y)
    standardised = (X - clf.mean_) / clf.scale_
    for C, loss in zip(Cs, clf.search_["log_loss"], strict=True):
        per_fold, out_of_fold = [], np.zeros((len(y), len(clf.classes_)))
        for train, held in fold_rows(codes, 5, 0):
            known = held[np.isin(codes[held], codes[train])]
            fold = LogisticRegression(C=C, tol=1e-9, max_iter=20000)
            fold.fit(standardised[train], codes[train])
            probabilities = fold.predict_proba(standardised[known])
            per_fold.append(log_loss(codes[known], probabilities, labels=fold.classes_))
            out_of_fold[np.ix_(held, fold.classes_)] = fold.predict_proba(standardised[held])
        assert abs(loss - np.mean(per_fold)) < 2e-3, (C, loss, np.mean(per_fold))
        if C == clf.C_:  # a class a fold lacks has probability 0 there, as in the refit
            found = clf.out_of_fold_proba()
            np.testing.assert_allclose(found, out_of_fold, atol=2e-3)
            assert np.array_equal(found == 0, out_of_fold == 0)


def test_scikit_learns_fallback_maps_a_folds_missing_class(monkeypatch):
    """When the fast path fails, scikit-learn fits each fold on the classes it has; a class
    that one fold lacks (a singleton) gets probability 0 there, and nothing crashes."""
    from probe.heads import estimator

    def broken(self, *args, **kwargs):
        raise estimator.SolverFailure("test")

    monkeypatch.setattr(estimator.LogisticPath, "solve", broken)
    X, y = planted(n=600, classes=20, singletons=3, seed=3)
    clf = ProbeClassifier(Cs=[0.1, 1.0]).fit(X, y)
    assert clf.solver_ == "sklearn-fallback"
    assert clf.search_["method"] == "5-fold cross-validation"
    assert np.isfinite(clf.out_of_fold_proba()).all()


def test_a_carved_split_keeps_classes_of_one_row_in_training_and_counts_them():
    """Every row is accounted for: train + val + test = all rows, each class of one row in
    training, and the notice names how many there are."""
    from probe.data.splits import train_only_classes, train_only_notice
    from probe.heads.rows import stratified_rows

    _, codes = planted(n=3000, classes=120, singletons=30, seed=4)
    labels = np.asarray([f"c{code}" for code in codes])
    rest, test = stratified_rows(labels, 0.2, seed=0)
    keep, val = stratified_rows(labels[rest], 0.125, seed=0)
    train = rest[keep]
    rows = np.concatenate([train, rest[val], test])
    assert len(rows) == len(labels) and len(np.unique(rows)) == len(labels)
    lone = train_only_classes(labels)
    assert len(lone) == 30 and set(lone) <= set(labels[train])
    assert not set(lone) & set(labels[test]) and not set(lone) & set(labels[rest[val]])
    assert set(labels[test]) == {name for name in set(labels) if name not in lone}
    assert train_only_notice(lone, "test").startswith(
        "30 classes have fewer than 2 examples ('c100', 'c101', 'c102', ...): kept in "
        "training only, not in the test split"
    )
    # rows grouped: a class whose rows form one group stays in training whole
    groups = np.arange(len(labels))
    first = np.flatnonzero(labels == "c0")
    groups[first] = first[0]
    assert "c0" in train_only_classes(labels, groups)
    kept, held = stratified_rows(labels, 0.2, 0, groups)
    assert np.isin(first, kept).all()


def test_the_sweep_report_says_which_classes_stayed_in_training():
    from probe.research.sweep_report import grouping_line

    grouping = {
        "by": "text",
        "splits": {"train": {"rows": 90, "groups": 90, "rows_in_shared_groups": 0}},
        "train_only": {"classes": 69, "rows": 69, "split": "test"},
    }
    assert grouping_line(grouping).endswith(
        "69 classes have fewer than 2 examples: kept in training only, not in the test split."
    )
