"""How good a head is: accuracy, per-class and macro precision/recall/F1, confusion matrix.

One function computes a plain, JSON-able dict; another prints it as a table. Both read only
numpy, so a report costs nothing to import. Conventions follow scikit-learn's
``precision_recall_fscore_support(labels=..., zero_division=0)``: a ratio with a zero
denominator is 0, and the macro average runs over every listed class. The dict has the keys
of ``probe.finetune.training.classification_metrics``, so probe and fine-tuning reports compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_report(y_true, y_pred, label_names: Sequence | None = None) -> dict:
    """Metrics of predictions ``y_pred`` against ``y_true``.

    ``label_names`` lists the classes in order (default: the sorted union of both label
    sets; labels missing from it are appended); labels are reported as strings.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-d")
    labels = list(label_names) if label_names is not None else []
    labels += sorted((set(y_true.tolist()) | set(y_pred.tolist())) - set(labels), key=str)
    index = {label: i for i, label in enumerate(labels)}
    true_codes = np.asarray([index[v] for v in y_true.tolist()], dtype=np.int64)
    pred_codes = np.asarray([index[v] for v in y_pred.tolist()], dtype=np.int64)
    k = len(labels)
    confusion = np.bincount(true_codes * k + pred_codes, minlength=k * k).reshape(k, k)
    hits = np.diag(confusion)  # (K,)
    support = confusion.sum(axis=1)  # true count per class
    predicted = confusion.sum(axis=0)
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)

    def macro(values):
        return float(values.mean())

    names = [str(label) for label in labels]
    return {
        "n": int(len(y_true)),
        "accuracy": float(hits.sum() / len(y_true)) if len(y_true) else 0.0,
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": confusion.tolist(),  # rows true, columns predicted
        "labels": names,
    }


def format_report(report: dict, title: str | None = None) -> str:
    """The report as aligned text: a per-class table, macro and accuracy, confusion matrix."""
    names = list(report["labels"])
    width = max([len(name) for name in names] + [len("macro avg"), 5])
    lines = [title] if title else []
    lines.append(f"{'':<{width}}  {'precision':>9}  {'recall':>6}  {'f1':>6}  {'support':>7}")
    for name in names:
        row = report["per_class"][name]
        lines.append(
            f"{name:<{width}}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  "
            f"{row['f1']:>6.4f}  {row['support']:>7d}"
        )
    lines.append(
        f"{'macro avg':<{width}}  {report['macro_precision']:>9.4f}  "
        f"{report['macro_recall']:>6.4f}  {report['macro_f1']:>6.4f}  {report['n']:>7d}"
    )
    lines.append(
        f"{'accuracy':<{width}}  {'':>9}  {'':>6}  {report['accuracy']:>6.4f}  {report['n']:>7d}"
    )
    matrix = report["confusion_matrix"]
    cell = max([len(str(v)) for row in matrix for v in row] + [len(name) for name in names])
    lines.append("")
    lines.append("confusion (rows = true, columns = predicted)")
    lines.append(f"{'':<{width}}  " + "  ".join(f"{name:>{cell}}" for name in names))
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
