"""The C search shares its work: held-out scores reused as the out-of-fold selection loss, an
early stop once the held-out loss turns up, Cs that have clearly lost screened out before
their fits finish, one feature basis per fit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from probe.heads.estimator import ProbeClassifier
from probe.heads.search import turned_up
from probe.research.measures import Measures, out_of_fold_probabilities, selection_scores
from probe.research.uncertainty import per_example_log_loss


def noisy_linear(n=400, dim=40, classes=4, seed=0):
    """Hidden-state-like features (offset, uneven scales, a duplicated column), labels from a
    noisy linear rule: few rows per feature, so large Cs overfit and the loss turns up."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)) * rng.uniform(0.2, 5.0, dim) + 3.0
    X[:, 1] = X[:, 0]
    W = rng.normal(size=(classes, dim))
    logits = ((X - 3.0) / X.std(axis=0)) @ W.T + rng.normal(scale=3.0, size=(n, classes))
    return X.astype(np.float32), logits.argmax(axis=1)


@pytest.mark.parametrize(
    ("accuracy", "loss", "stop"),
    [
        ([0.5, 0.7, 0.69, 0.68], [1.0, 0.8, 0.9, 1.0], True),  # loss up twice
        ([0.5, 0.7, 0.69, 0.71], [1.0, 0.8, 0.9, 1.0], True),  # accuracy does not choose
        ([0.5, 0.7, 0.69, 0.68], [1.0, 0.8, 0.9, 0.85], False),  # loss up once
        ([0.5, 0.7], [1.0, 1.1], False),  # too few Cs to tell
    ],
)
def test_the_search_stops_only_once_the_loss_has_turned_up_twice(accuracy, loss, stop):
    assert turned_up(np.column_stack([accuracy, loss])) is stop


@pytest.mark.parametrize(("classes", "seed"), [(2, 0), (4, 1), (6, 2)])
def test_stopping_early_chooses_the_same_C_as_the_whole_grid(classes, seed):
    X, y = noisy_linear(classes=classes, seed=seed)
    whole = ProbeClassifier(stop_early=False).fit(X, y)
    early = ProbeClassifier().fit(X, y)
    assert early.C_ == whole.C_
    tried = len(early.search_["Cs"])
    assert early.search_["grid"] == whole.search_["Cs"] and tried <= len(whole.search_["Cs"])
    assert not any(whole.search_["screened"])  # without stop_early every fit is finished
    solved = [i for i in range(tried) if early.search_["screened"][i] == 0]
    assert solved[: solved.index(whole.search_["Cs"].index(whole.C_)) + 1] == list(
        range(whole.search_["Cs"].index(whole.C_) + 1)
    )  # every C up to the chosen one is solved to the end
    np.testing.assert_allclose(
        np.asarray(early.search_["log_loss"])[solved],
        np.asarray(whole.search_["log_loss"])[solved],
        rtol=1e-3,  # a C after a screened one starts from an unfinished fit: same optimum
    )
    np.testing.assert_allclose(early.coef_, whole.coef_, atol=1e-6)


@pytest.mark.parametrize(("n", "seed"), [(600, 5), (1000, 3), (1500, 1)])
def test_folds_screened_on_their_own_are_finished_when_the_mean_is_near_the_best(n, seed):
    """k-fold: each fold is screened on its own held-out rows, but the choice is the mean's. A
    partial fit's scores can err either way, so a C whose mean is not clearly beaten too is
    decided on finished fits. On these data, without that, the screened search chose another
    C than the whole grid (found by replaying both on 108 noisy_linear cases)."""
    X, y = noisy_linear(n=n, dim=60, classes=6, seed=seed)
    whole = ProbeClassifier(stop_early=False).fit(X, y)
    early = ProbeClassifier().fit(X, y)
    assert early.C_ == whole.C_
    chosen = early.search_["Cs"].index(early.C_)
    assert early.search_["screened"][chosen] == 0  # the chosen C rests on finished fits


def overfitting_with_validation(seed=3):
    """Few rows per feature and a validation set: the held-out loss turns up steeply."""
    X, y = noisy_linear(n=700, dim=60, classes=3, seed=seed)
    return X[:300], y[:300], X[300:], y[300:]


def test_a_C_clearly_beaten_on_held_out_rows_is_screened_out_before_its_fit_finishes():
    """Known answer: the whole grid, every fit finished. The screened Cs are the ones whose
    finished fits lost too, the chosen C and its fit are the same, and fewer passes over X
    were made."""
    from probe.heads.solver import path as solver_path

    X, y, X_val, y_val = overfitting_with_validation()
    counted = []
    original = solver_path.LogisticPath.solve

    def counting(path, *args, **kwargs):
        before = path.passes
        result = original(path, *args, **kwargs)
        counted.append(path.passes - before)
        return result

    solver_path.LogisticPath.solve = counting
    try:
        whole = ProbeClassifier(stop_early=False).fit(X, y, X_val, y_val)
        whole_passes, counted[:] = sum(counted), []
        early = ProbeClassifier().fit(X, y, X_val, y_val)
        early_passes = sum(counted)
    finally:
        solver_path.LogisticPath.solve = original
    screened = [i for i, count in enumerate(early.search_["screened"]) if count]
    assert screened, "the overfitting Cs should have been screened out"
    assert early.C_ == whole.C_ and early_passes < whole_passes
    chosen = whole.search_["Cs"].index(whole.C_)
    for i in screened:  # finished, they lose on log loss as the screen foresaw
        assert whole.search_["log_loss"][i] > whole.search_["log_loss"][chosen]
        assert early.search_["log_loss"][i] > early.search_["log_loss"][chosen]
    # the same optimum, reached by another route (coarse fits, then the chosen C refined):
    # equal to the final tolerance (1e-3 on the decrement), not to the last bit
    np.testing.assert_allclose(early.predict_proba(X_val), whole.predict_proba(X_val), atol=3e-3)


def test_the_screen_needs_a_held_out_loss_clearly_above_the_best():
    """``screen_against`` on a real fitted path: beaten only when the held-out loss is
    LOSS_MARGIN above the best's (the choice is by log loss; accuracy does not enter)."""
    from probe.heads.maths import accuracy_and_log_loss
    from probe.heads.search import LOSS_MARGIN, screen_against
    from probe.heads.solver import LogisticPath

    X, y, X_val, y_val = overfitting_with_validation(seed=5)
    standardised = (X - X.mean(0)) / X.std(0)
    held = (X_val - X.mean(0)) / X.std(0)
    path = LogisticPath(standardised, y, 3, np.ones(len(y)))
    path.solve(1.0, 1e-3, 200)
    accuracy, loss = accuracy_and_log_loss(path.logits(held), y_val, False)
    right = round(accuracy * len(y_val))
    assert screen_against(None, held, y_val) is None  # no best yet: nothing to lose to

    def beaten(best_right, best_loss):
        return screen_against((best_right / len(y_val), best_loss), held, y_val)(path)

    lower_loss = loss / (1 + LOSS_MARGIN) * 0.999
    assert beaten(right, lower_loss)
    assert beaten(right - 3, lower_loss)  # even with fewer right: the loss decides
    assert not beaten(right + 50, loss / (1 + LOSS_MARGIN) * 1.001)  # loss too close


def test_a_search_on_overfitting_data_skips_the_largest_Cs():
    X, y = noisy_linear(n=300, dim=60, classes=3, seed=3)
    clf = ProbeClassifier().fit(X, y)
    assert len(clf.search_["Cs"]) < len(clf.search_["grid"])
    assert clf.search_["log_loss"][-1] > clf.search_["log_loss"][-2] > clf.search_["log_loss"][-3]


@pytest.mark.parametrize("classes", [2, 5])
def test_out_of_fold_scores_from_the_search_match_refitting_each_fold(classes):
    """The selection loss without validation data once came from k more fits at the chosen
    C (each fold standardised on its own rows); the search's own fold fits give the same
    numbers within the solver's tolerance."""
    X, y = noisy_linear(n=500, dim=30, classes=classes, seed=classes)
    clf = ProbeClassifier().fit(X, y)
    reused = clf.out_of_fold_proba()
    refitted = out_of_fold_probabilities(X, y, clf.C_, Measures())
    assert reused.shape == refitted.shape == (len(y), classes)
    np.testing.assert_allclose(reused.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(reused, refitted, atol=0.02)
    reused_loss = per_example_log_loss(reused, y).mean()
    refitted_loss = per_example_log_loss(refitted, y).mean()
    assert abs(reused_loss - refitted_loss) <= 2e-3 * refitted_loss
    # and each fold's held-out rows are scored by a model that never saw them: an
    # independent scikit-learn fit on the other rows, at the same C, agrees with it
    held = clf._held_rows[0]
    train = np.setdiff1d(np.arange(len(y)), held)
    standardised = (X - clf.mean_) / clf.scale_
    theirs = LogisticRegression(C=clf.C_, tol=1e-8, max_iter=5000)
    theirs.fit(standardised[train], y[train])
    np.testing.assert_allclose(reused[held], theirs.predict_proba(standardised[held]), atol=0.01)


def test_the_row_takes_its_selection_loss_from_the_search_only_when_the_folds_match():
    X, y = noisy_linear(n=300, classes=3, seed=4)
    clf = ProbeClassifier().fit(X, y)
    codes = {"train": y}
    same = selection_scores(clf, {"train": X}, codes, Measures(seed=0, cv=5))
    expected = per_example_log_loss(clf.out_of_fold_proba(), y)
    np.testing.assert_array_equal(same["log_loss"], expected)
    other = selection_scores(clf, {"train": X}, codes, Measures(seed=7, cv=5))  # refits
    assert not np.array_equal(other["log_loss"], expected)
    assert abs(other["log_loss"].mean() - expected.mean()) < 0.1
    given = ProbeClassifier(C=1.0).fit(X, y)  # no search: no held-out scores to reuse
    assert given.out_of_fold_proba() is None


def test_folds_and_the_final_fit_share_one_feature_basis_and_subsample():
    from probe.heads.estimator import standardise

    X, y = noisy_linear(n=400, dim=20, classes=4, seed=5)
    clf = ProbeClassifier().fit(X, y)
    shared = clf._shared
    assert shared.basis.shape == (20, 20)
    np.testing.assert_allclose(shared.basis.T @ shared.basis, np.eye(20), atol=1e-10)
    assert ProbeClassifier().fit(X, y % 2)._shared is None  # two classes: exact Hessian
    # a fold reads the shared rows it trains on, projected as if it had projected them itself
    standardised = standardise(X)[0]
    train = np.sort(np.random.default_rng(0).choice(400, 320, replace=False))
    fold = shared.within(train)
    assert 200 < len(fold.rows) < 400 and np.all(np.isin(train[fold.rows], shared.rows))
    assert fold.projected is shared.projected and fold.kept.sum() == len(fold.rows)  # no copy
    rows = standardised[train][fold.rows]
    expected = rows @ shared.basis.astype(np.float32)
    np.testing.assert_allclose(fold.projected[fold.kept], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("classes", [2, 5])
def test_the_final_fit_started_from_the_folds_reaches_the_walked_optimum(classes):
    """The cross-validated fit starts at the folds' mean weights at the chosen C instead of
    walking the C path; it must land on the same optimum as a fit given that C (which walks)."""
    X, y = noisy_linear(n=600, dim=30, classes=classes, seed=9)
    searched = ProbeClassifier(tol=1e-6).fit(X, y)
    assert searched.C_ in searched._fold_means  # the start really came from the folds
    walked = ProbeClassifier(C=searched.C_, tol=1e-6).fit(X, y)
    scale = np.abs(walked.coef_).max()
    np.testing.assert_allclose(searched.coef_, walked.coef_, atol=1e-4 * scale)
    np.testing.assert_allclose(searched.intercept_, walked.intercept_, atol=1e-4 * max(scale, 1))


def test_a_C_after_a_rise_of_the_held_out_loss_is_solved_to_confirm_only():
    from probe.heads.search import confirming
    from probe.heads.solver import CONFIRM_RTOL

    assert confirming([]) is None and confirming([(0.7, 0.9)]) is None
    assert confirming([(0.7, 0.9), (0.8, 0.6)]) is None  # still falling: compare tightly
    assert confirming([(0.8, 0.6), (0.79, 0.65)]) == CONFIRM_RTOL  # rose: the next confirms


def test_C_by_log_loss_equals_scikit_learns_LogisticRegressionCV_with_neg_log_loss():
    """Same grid, same folds, standardised the same way: the same C (``exact`` solves every
    C to the end, as scikit-learn does), and the default fast search agrees here too."""
    from sklearn.linear_model import LogisticRegressionCV

    from probe.heads.search import fold_rows

    for classes, seed in ((2, 0), (4, 1), (6, 2)):
        X, y = noisy_linear(n=300, dim=30, classes=classes, seed=seed)
        grid = [float(c) for c in np.logspace(-4, 2, 13)]
        exact = ProbeClassifier(Cs=grid, exact=True, tol=1e-4).fit(X, y)
        standardised = (X - exact.mean_) / exact.scale_
        folds = list(fold_rows(y, 5, 0))
        reference = LogisticRegressionCV(
            Cs=grid, cv=folds, scoring="neg_log_loss", tol=1e-10, max_iter=10_000
        ).fit(standardised, y)
        assert exact.C_ == pytest.approx(float(reference.C_[0]))
        assert ProbeClassifier(Cs=grid).fit(X, y).C_ == exact.C_


def test_separable_classes_get_confident_probabilities():
    """Four well-separated classes, 120 rows: several Cs tie at full accuracy, and the
    chosen C must not be the smallest (near-uniform probabilities on clear cases)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(4, 20))
    y = np.repeat(np.arange(4), 30)
    X = (centres[y] + rng.normal(size=(120, 20))).astype(np.float32)
    clf = ProbeClassifier().fit(X, y)
    search = clf.search_
    assert search["accuracy"][search["Cs"].index(clf.C_)] == 1.0
    assert clf.C_ > min(search["Cs"])  # not the near-uniform head
    proba = clf.predict_proba(X)
    assert np.median(proba.max(axis=1)) > 0.9


@pytest.mark.parametrize("held_out", ["validation", "folds"])
def test_exact_solves_every_C_of_the_grid_to_the_final_tolerance(held_out):
    """``exact=True`` (``--exact``) is the reference the fast search is measured against: every
    C of the grid tried, each solve to ``tol`` with no screen and no confirm tolerance; on
    data where the fast search stops early it still walks the whole grid, and it chooses the
    C of ``stop_early=False`` (same Cs, compared at the looser search tolerance)."""
    from probe.heads.solver import path as solver_path

    X, y, X_val, y_val = overfitting_with_validation()
    val = (X_val, y_val) if held_out == "validation" else ()
    tol = 1e-6
    solves = []
    original = solver_path.LogisticPath.solve

    def recording(path, C, solve_tol, max_iter, rtol=None, screen=None):
        solves.append((C, solve_tol, rtol, screen))
        return original(path, C, solve_tol, max_iter, rtol=rtol, screen=screen)

    solver_path.LogisticPath.solve = recording
    try:
        exact = ProbeClassifier(exact=True, tol=tol).fit(X, y, *val)
    finally:
        solver_path.LogisticPath.solve = original
    fast = ProbeClassifier(tol=tol).fit(X, y, *val)
    whole = ProbeClassifier(stop_early=False, tol=tol).fit(X, y, *val)
    search = exact.search_
    assert search["exact"] is True and fast.search_["exact"] is False
    assert search["Cs"] == search["grid"] and not any(search["screened"])
    assert len(fast.search_["Cs"]) < len(search["grid"])  # here the fast search stops early
    assert {C for C, *_ in solves} == set(search["grid"])
    assert all(each == (each[0], tol, None, None) for each in solves)  # to tol, nothing skipped
    assert exact.C_ == whole.C_


def test_a_class_with_one_row_does_not_stop_cross_validation_of_the_others():
    """21 classes, one of them a single row, with constant and duplicated columns: the search
    still cross-validates (that row sits in one fold's held-out part), grouped or not, and
    its out-of-fold probabilities are finite."""
    rng = np.random.default_rng(0)
    y = np.append(np.repeat(np.arange(20), 15), 20)
    X = rng.normal(size=(len(y), 30)).astype(np.float32)
    X[:, 3], X[:, 4] = 1.0, X[:, 5]
    X[np.arange(len(y)), y % 30] += 3.0
    clf = ProbeClassifier().fit(X, y)
    assert clf.search_["method"] == "5-fold cross-validation"
    assert np.isfinite(clf.out_of_fold_proba()).all()
    grouped = ProbeClassifier().fit(X, y, groups=np.arange(len(y)) // 3)
    assert grouped.search_["method"] == "5-fold grouped cross-validation"
    single = ProbeClassifier().fit(X[:30], y[:30])  # two classes of 15: still 5 folds
    assert single.search_["method"] == "5-fold cross-validation"
