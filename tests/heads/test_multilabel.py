"""Multi-label heads: scikit-learn's numbers, planted labels found, degenerate inputs survived,
metrics equal to scikit-learn's (resampled ones too), label columns read, EWT properties."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    hamming_loss,
    label_ranking_average_precision_score,
    precision_recall_fscore_support,
)

from probe.errors import ProbeError
from probe.heads.inputs import standardise
from probe.heads.solver.onevsrest import JointReference, OneVsRestPath
from probe.heads.tasks.multilabel import (
    ProbeMultiLabel,
    multilabel_report,
    resampled_multilabel_metrics,
)
from probe.research.uncertainty import resample_counts

ROOT = Path(__file__).resolve().parents[2]


def planted(n=900, dim=32, labels=5, seed=0, strength=3.0):
    """Each label a planted unit direction of X plus logistic noise, prevalences ~15%..60%:
    (X float32 with offsets and uneven scales, Y, the true probabilities)."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, dim))
    directions = rng.normal(size=(labels, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    offsets = np.linspace(-3.5, 1.0, labels)
    probability = 1.0 / (1.0 + np.exp(-(strength * Z @ directions.T + offsets)))
    Y = (rng.random(probability.shape) < probability).astype(np.int8)
    X = Z * rng.uniform(0.2, 5.0, dim) + rng.normal(scale=3.0, size=dim)
    return X.astype(np.float32), Y, probability


@pytest.mark.parametrize(
    ("C", "n", "dim"), [(0.01, 400, 24), (1.0, 400, 24), (100.0, 400, 24), (1.0, 40, 100)]
)
def test_joint_fit_equals_scikit_learn_per_label(C, n, dim):
    """Also on wide data (D > n), where the rotation keeps only the rows' span."""
    X, Y, _ = planted(n=n, dim=dim, labels=4, seed=1)
    ours = ProbeMultiLabel(C=C, tol=1e-8, cv=None).fit(X, Y)
    standardised = (X.astype(np.float64) - ours.mean_) / ours.scale_
    for label in range(Y.shape[1]):
        theirs = LogisticRegression(C=C, tol=1e-10, max_iter=10_000)
        theirs.fit(standardised, Y[:, label])
        scale = np.abs(theirs.coef_).max()
        np.testing.assert_allclose(ours.coef_[label], theirs.coef_[0], atol=1e-4 * scale)
        np.testing.assert_allclose(
            ours.predict_proba(X)[:, label], theirs.predict_proba(standardised)[:, 1], atol=1e-5
        )
    assert ours.search_["method"] == "given" and ours.solver_ == "probe-ovr"


def test_the_scipy_reference_and_the_fast_path_agree():
    X, Y, _ = planted(n=300, dim=20, labels=3, seed=2)
    standardised = standardise(X)[0]
    fast, joint = OneVsRestPath(standardised, Y), JointReference(standardised, Y)
    for C in (0.001, 0.1, 10.0):  # warm-started along the path, as a search walks it
        fast.solve(C, 1e-8, 500)
        joint.solve(C, 1e-8, 500)
        np.testing.assert_allclose(fast.W, joint.W, atol=1e-5 * np.abs(joint.W).max())
        np.testing.assert_allclose(fast.b, joint.b, atol=1e-5)


def test_thresholds_recover_planted_labels_and_not_shuffled_ones():
    X, Y, probability = planted(n=1500, dim=32, labels=5, seed=3)
    train, test = slice(0, 1000), slice(1000, None)
    model = ProbeMultiLabel().fit(X[train], Y[train])
    assert model.search_["method"] == "5-fold cross-validation"
    assert model.oof_probabilities_.shape == (1000, 5)
    ours = f1_score(Y[test], model.predict(X[test]), average="macro", zero_division=0)
    # the Bayes rule with each label's best threshold, picked on the test rows themselves
    bayes = np.zeros_like(Y[test])
    for label in range(5):
        scores = probability[test, label]
        cuts = np.quantile(scores, np.linspace(0, 1, 201))
        best = max(cuts, key=lambda c: f1_score(Y[test, label], scores >= c, zero_division=0))
        bayes[:, label] = scores >= best
    oracle = f1_score(Y[test], bayes, average="macro", zero_division=0)
    assert oracle - 0.06 <= ours <= oracle + 0.02
    assert ours >= f1_score(Y[test], model.predict_proba(X[test]) >= 0.5, average="macro")
    shuffled = np.random.default_rng(0).permutation(Y[train])
    control = ProbeMultiLabel().fit(X[train], shuffled)
    prevalence = Y[test].mean(axis=0)
    baseline = float(np.mean(2 * prevalence / (1 + prevalence)))  # predict every label
    chance = f1_score(Y[test], control.predict(X[test]), average="macro", zero_division=0)
    assert abs(chance - baseline) <= 0.08 and chance < ours - 0.2


def test_validation_data_choose_C_and_thresholds():
    X, Y, _ = planted(n=600, dim=16, labels=3, seed=4)
    model = ProbeMultiLabel(Cs=(0.01, 0.1, 1.0)).fit(X[:400], Y[:400], X[400:], Y[400:])
    assert model.search_["method"] == "validation" and model.search_["folds"] is None
    assert model.oof_probabilities_ is None and model.C_ in (0.01, 0.1, 1.0)
    losses = model.search_["log_loss"]
    assert model.C_ == model.search_["Cs"][int(np.argmin(losses))]
    assert model.predict(X).dtype == np.int8 and model.predict(X).shape == (600, 3)


def test_groups_keep_repeated_rows_in_one_fold():
    X, Y, _ = planted(n=300, dim=8, labels=2, seed=5)
    X, Y = np.repeat(X, 2, axis=0), np.repeat(Y, 2, axis=0)  # every text twice
    model = ProbeMultiLabel(Cs=(0.1, 1.0), cv=3).fit(X, Y, groups=np.arange(600) // 2)
    assert model.search_["method"] == "3-fold grouped cross-validation"


def test_degenerate_labels_and_features_do_not_break_the_fit():
    X, Y, _ = planted(n=120, dim=10, labels=2, seed=6)
    X = np.hstack([X, np.full((120, 2), 7.0, np.float32), X[:, :3]])  # constant, duplicated
    single = np.zeros(120)
    single[7] = 1  # one positive: constant in the folds that do not train on it
    Y = np.column_stack([np.zeros(120), Y[:, 0], np.ones(120), Y[:, 1], single]).astype(int)
    model = ProbeMultiLabel(Cs=(0.1, 1.0), cv=3).fit(X, Y)
    assert list(model.constant_labels_) == [0, 2] and np.isfinite(model.thresholds_).all()
    assert np.all(model.coef_[[0, 2]] == 0) and np.isfinite(model.coef_).all()
    probabilities = model.predict_proba(X)
    assert np.allclose(probabilities[:, 0], 0.5 / 120) and np.allclose(
        probabilities[:, 2], 1 - 0.5 / 120
    )
    assert (model.predict(X)[:, 0] == 0).all() and (model.predict(X)[:, 2] == 1).all()
    wide = np.random.default_rng(0).normal(size=(40, 200)).astype(np.float32)  # D > n
    wide_model = ProbeMultiLabel(Cs=(0.01, 1.0), cv=2).fit(wide, Y[:40])
    assert np.isfinite(wide_model.predict_proba(wide)).all()


def test_bad_label_matrices_are_one_line_errors():
    X = np.zeros((4, 2), np.float32)
    for Y, words in [
        (np.array([0, 1, 0, 1]), r"must be \(n, labels\)"),
        (np.full((4, 2), 2), "0 and 1"),
    ]:
        with pytest.raises(ProbeError, match=words):
            ProbeMultiLabel(C=1.0).fit(X, Y)


def random_labels(n=60, labels=4, seed=0):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, labels)) < [0.5, 0.2, 0.05, 0.0]).astype(int)
    guess = np.where(rng.random((n, labels)) < 0.7, truth, 1 - truth)
    guess[:, 3] = 0  # a label never true nor predicted: zero_division
    scores = np.round(rng.random((n, labels)), 1)  # ties, as real scores have
    return truth, guess, scores


def test_report_equals_scikit_learn():
    truth, guess, scores = random_labels()
    report = multilabel_report(truth, guess, scores, label_names=list("abcd"))
    assert report["micro_f1"] == pytest.approx(f1_score(truth, guess, average="micro"))
    macro = f1_score(truth, guess, average="macro", zero_division=0)
    assert report["macro_f1"] == pytest.approx(macro)
    assert report["subset_accuracy"] == pytest.approx(accuracy_score(truth, guess))
    assert report["hamming_loss"] == pytest.approx(hamming_loss(truth, guess))
    lrap = label_ranking_average_precision_score(truth, scores)
    assert report["lrap"] == pytest.approx(lrap)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guess, average=None, zero_division=0
    )
    for i, name in enumerate("abcd"):
        row = report["per_label"][name]
        assert row["precision"] == pytest.approx(precision[i])
        assert row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i]) and row["support"] == support[i]
    assert report["n"] == 60 and multilabel_report(truth, guess)["lrap"] is None


def test_resampled_metrics_equal_the_metric_on_expanded_rows():
    truth, guess, scores = random_labels(seed=1)
    counts = next(resample_counts(60, n_resamples=6, seed=2))  # the house bootstrap
    resampled = resampled_multilabel_metrics(truth, guess, counts, scores)
    for r, row_counts in enumerate(counts):
        t, g, s = (np.repeat(a, row_counts.astype(int), axis=0) for a in (truth, guess, scores))
        expected = {
            "micro_f1": f1_score(t, g, average="micro", zero_division=0),
            "macro_f1": f1_score(t, g, average="macro", zero_division=0),
            "subset_accuracy": accuracy_score(t, g),
            "lrap": label_ranking_average_precision_score(t, s),
        }
        for name, value in expected.items():
            assert abs(resampled[name][r] - value) <= 1e-9, name


CONLLU = """\
# text = The dogs were not fed.
1\tThe\tthe\tDET\tDT\tDefinite=Def|PronType=Art\t2\tdet\t_\t_
2\tdogs\tdog\tNOUN\tNNS\tNumber=Plur\t5\tnsubj:pass\t_\t_
3\twere\tbe\tAUX\tVBD\tMood=Ind|Number=Plur|Person=3|Tense=Past|VerbForm=Fin\t5\taux:pass\t_\t_
4\tnot\tnot\tPART\tRB\tPolarity=Neg\t5\tadvmod\t_\t_
5\tfed\tfeed\tVERB\tVBN\tTense=Past|VerbForm=Part|Voice=Pass\t0\troot\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t.\t_\t5\tpunct\t_\t_

1\tHas\thave\tAUX\tVBZ\tMood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin\t3\taux\t_\t_
2\tshe\tshe\tPRON\tPRP\tCase=Nom|Number=Sing|Person=3|PronType=Prs\t3\tnsubj\t_\t_
3\teaten\teat\tVERB\tVBN\tTense=Past|VerbForm=Part\t0\troot\t_\t_
4\tthe\tthe\tDET\tDT\tDefinite=Def|PronType=Art\t5\tdet\t_\t_
5\tcake\tcake\tNOUN\tNN\tNumber=Sing\t3\tobj\t_\t_
6\tthat\tthat\tPRON\tWDT\tPronType=Rel\t8\tobj\t_\t_
7\tI\tI\tPRON\tPRP\tCase=Nom|Number=Sing|Person=1|PronType=Prs\t8\tnsubj\t_\t_
8\tmade\tmake\tVERB\tVBD\tMood=Ind|Tense=Past|VerbForm=Fin\t5\tacl:relcl\t_\t_
9\tand\tand\tCCONJ\tCC\t_\t10\tcc\t_\t_
10\tpie\tpie\tNOUN\tNN\tNumber=Sing\t5\tconj\t_\tSpaceAfter=No
11\t?\t?\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tNo\tno\tINTJ\tUH\tPolarity=Neg\t6\tdiscourse\t_\tSpaceAfter=No
2\t,\t,\tPUNCT\t,\t_\t6\tpunct\t_\t_
3-4\twe're\t_\t_\t_\t_\t_\t_\t_\t_
3\twe\twe\tPRON\tPRP\tCase=Nom|Number=Plur|Person=1|PronType=Prs\t6\tnsubj\t_\t_
4\t're\tbe\tAUX\tVBP\tMood=Ind|Number=Plur|Person=1|Tense=Pres|VerbForm=Fin\t6\tcop\t_\t_
5\tnever\tnever\tADV\tRB\tPronType=Neg\t6\tadvmod\t_\t_
6\thappy\thappy\tADJ\tJJ\tDegree=Pos\t0\troot\t_\tSpaceAfter=No
7\t.\t.\tPUNCT\t.\t_\t6\tpunct\t_\t_

1\tIt\tit\tPRON\tPRP\tCase=Nom|Number=Sing|Person=3|PronType=Prs\t3\tnsubj\t_\t_
2\twas\tbe\tAUX\tVBD\tMood=Ind|Number=Sing|Person=3|Tense=Past|VerbForm=Fin\t3\tcop\t_\t_
3\tnice\tnice\tADJ\tJJ\tDegree=Pos\t0\troot\t_\t_
"""


def test_ewt_property_rules_on_hand_written_trees(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    maker = importlib.import_module("make_ewt_properties")
    rows = maker.table(CONLLU)
    assert [row["text"] for row in rows] == [
        "The dogs were not fed.",
        "Has she eaten the cake that I made and pie?",
        "No, we're never happy.",
        "It was nice",
    ]
    assert [row["labels"] for row in rows] == [
        "past|plural_subject|negation|passive",
        "question|relative_clause|coordination",  # "made" is past, but not the main verb
        "plural_subject|negation",  # "never", not the interjection "No"
        "past",  # the copula carries the tense
    ]
    assert all(row[name] in (0, 1) for row in rows for name in maker.PROPERTIES)
    if maker.SOURCE.is_file():  # the shipped file is what the script writes
        assert maker.main(["--check"]) == 0
