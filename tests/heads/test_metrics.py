"""The classification report: scikit-learn's numbers (weighted ranking metrics too), a
readable table, plain JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from probe.heads.metrics import classification_report, format_report, ranking_metrics


def random_labels(seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.choice(["ham", "spam", "eggs"], 200)
    predicted = rng.choice(["ham", "spam"], 200)  # "eggs" is never predicted
    return truth, predicted


def test_numbers_equal_scikit_learn():
    truth, predicted = random_labels()
    names = ["eggs", "ham", "spam"]
    report = classification_report(truth, predicted, names)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=names, zero_division=0
    )
    assert report["n"] == 200
    assert report["accuracy"] == accuracy_score(truth, predicted)
    assert report["labels"] == names
    for i, name in enumerate(names):
        row = report["per_class"][name]
        assert row["precision"] == precision[i] and row["recall"] == recall[i]
        assert np.isclose(row["f1"], f1[i]) and row["support"] == support[i]
    assert np.isclose(report["macro_f1"], f1.mean())
    assert np.isclose(report["macro_precision"], precision.mean())
    assert report["confusion_matrix"] == confusion_matrix(truth, predicted, labels=names).tolist()
    assert report["per_class"]["eggs"]["precision"] == 0.0  # 0/0 is 0, not nan


def test_macro_averages_run_over_the_classes_in_the_truth_or_the_predictions():
    """A class of the head with no test example and no prediction (a rare class kept in
    training) has no F1: the macro averages are scikit-learn's default ones."""
    from sklearn.metrics import f1_score, precision_score

    truth, predicted = random_labels()
    report = classification_report(truth, predicted, ["eggs", "ham", "spam", "toast"])
    assert report["per_class"]["toast"]["support"] == 0
    assert np.isclose(report["macro_f1"], f1_score(truth, predicted, average="macro"))
    expected = precision_score(truth, predicted, average="macro", zero_division=0)
    assert np.isclose(report["macro_precision"], expected)


def test_fine_tuning_reports_in_the_same_format():
    from probe.finetune.training import classification_metrics

    truth, predicted = random_labels(1)
    names = ["eggs", "ham", "spam"]
    codes = {name: i for i, name in enumerate(names)}
    theirs = classification_metrics([codes[v] for v in truth], [codes[v] for v in predicted], names)
    ours = classification_report(truth, predicted, names)
    assert ours == theirs


def test_labels_default_to_the_sorted_union_and_integers_work():
    report = classification_report([2, 1, 1, 0], [2, 1, 0, 0])
    assert report["labels"] == ["0", "1", "2"]
    assert report["accuracy"] == 0.75
    assert report["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_report_is_plain_json_and_a_readable_table():
    truth, predicted = random_labels(2)
    report = classification_report(truth, predicted)
    assert json.loads(json.dumps(report)) == report
    table = format_report(report, title="test:")
    lines = table.splitlines()
    assert lines[0] == "test:"
    assert any(line.startswith("macro avg") for line in lines)
    assert any(
        line.startswith("accuracy") and f"{report['accuracy']:.4f}" in line for line in lines
    )
    matrix_start = lines.index("confusion (rows = true, columns = predicted)")
    assert lines[matrix_start + 1].split() == report["labels"]
    for name, row in zip(report["labels"], report["confusion_matrix"], strict=True):
        assert any(line.split() == [name, *map(str, row)] for line in lines[matrix_start:])


def test_balanced_accuracy_auroc_and_average_precision_equal_scikit_learn():
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score

    truth, predicted = random_labels(3)  # "eggs" is never predicted
    report = classification_report(truth, predicted, ["eggs", "ham", "spam"])
    assert np.isclose(report["balanced_accuracy"], balanced_accuracy_score(truth, predicted))
    assert "auroc" not in report  # no scores, no ranking metrics

    rng = np.random.default_rng(4)
    truth = np.where(rng.random(300) < 0.2, "spam", "ham")  # imbalanced
    scores = np.round(rng.normal(size=300) + (truth == "spam"), 1)  # many tied scores
    predicted = np.where(scores > 0.8, "spam", "ham")
    report = classification_report(truth, predicted, ["ham", "spam"], scores=scores)
    assert np.isclose(report["balanced_accuracy"], balanced_accuracy_score(truth, predicted))
    assert np.isclose(report["auroc"], roc_auc_score(truth == "spam", scores))
    assert np.isclose(report["average_precision"], average_precision_score(truth == "spam", scores))
    assert report["balanced_accuracy"] < report["accuracy"]  # the majority class flatters
    assert "balanced accuracy" in format_report(report) and "AUROC" in format_report(report)

    one_class = classification_report(
        ["ham"] * 5, ["ham"] * 4 + ["spam"], ["ham", "spam"], [0.1] * 5
    )
    assert one_class["auroc"] is None and one_class["average_precision"] is None
    with pytest.raises(ValueError, match="two classes"):
        classification_report(["a", "b", "c"], ["a", "b", "c"], scores=[0.1, 0.2, 0.3])


def test_weighted_ranking_metrics_equal_scikit_learn_with_sample_weight():
    """Integer weights (bootstrap counts, zeros included) and real ones, tied and untied
    scores: every row equals scikit-learn with ``sample_weight`` set to it."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(5)
    for n, decimals in ((80, 1), (200, None)):
        positive = rng.random(n) < 0.3
        scores = rng.normal(size=n) + positive
        scores = np.round(scores, decimals) if decimals else scores
        counts = rng.multinomial(n, np.full(n, 1 / n), size=20).astype(np.float32)
        real = rng.random((5, n))
        for weights in (counts, real):
            auroc, average_precision = ranking_metrics(positive, scores, weights)
            for row, w in enumerate(weights):
                assert np.isclose(auroc[row], roc_auc_score(positive, scores, sample_weight=w))
                expected = average_precision_score(positive, scores, sample_weight=w)
                assert np.isclose(average_precision[row], expected)
    no_positive = ranking_metrics([True, False, False], [0.9, 0.2, 0.1], [[0, 2, 1], [1, 1, 1]])
    assert np.isnan(no_positive[0][0]) and np.isnan(no_positive[1][0])
    assert no_positive[0][1] == 1.0 and no_positive[1][1] == 1.0
