"""The classification report: scikit-learn's numbers, a readable table, plain JSON."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from probe.heads.metrics import classification_report, format_report


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
