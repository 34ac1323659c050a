"""How good a head is: accuracy, balanced accuracy, per-class and macro precision/recall/F1,
confusion matrix, and for two classes AUROC and average precision of the positive scores.

One function computes a plain, JSON-able dict; another prints it as a table. Both read only
numpy, so a report costs nothing to import. Conventions follow scikit-learn's
``precision_recall_fscore_support(labels=..., zero_division=0)``: a ratio with a zero
denominator is 0, and the macro average runs over every listed class; balanced accuracy is
``balanced_accuracy_score``'s (mean recall over the classes present in ``y_true``). The dict
has the keys of ``probe.finetune.training.classification_metrics``, so probe and fine-tuning
reports compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Every score a sweep row reports per split; the last two need scores and two classes.
METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "auroc", "average_precision")
RANKING = ("auroc", "average_precision")
TITLES = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "balanced_accuracy": "balanced accuracy",
    "auroc": "AUROC",
    "average_precision": "average precision",
}


def classification_report(y_true, y_pred, label_names: Sequence | None = None, scores=None) -> dict:
    """Metrics of predictions ``y_pred`` against ``y_true``.

    ``label_names`` lists the classes in order (default: the sorted union of both label
    sets; labels missing from it are appended); labels are reported as strings. ``scores``
    (two classes only): each example's score of the second class, e.g. ``predict_proba(X)[:,
    1]``; adds ``auroc`` and ``average_precision`` (None when ``y_true`` holds one class).
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

    seen = (support + predicted) > 0  # scikit-learn's default labels: in truth or predicted

    def macro(values):
        """Over the classes seen here: a class of the head with no example and no
        prediction has no F1 (counted as 0, it made a bootstrap's macro-F1 fall whenever a
        rare class was left out of a resample: the estimate sat above its own interval)."""
        return float(values[seen].mean()) if seen.any() else 0.0

    names = [str(label) for label in labels]
    report = {
        "n": int(len(y_true)),
        "accuracy": float(hits.sum() / len(y_true)) if len(y_true) else 0.0,
        "balanced_accuracy": float(recall[support > 0].mean()) if len(y_true) else 0.0,
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
    if scores is not None:
        if k != 2:
            raise ValueError(f"AUROC and average precision need two classes, not {k}")
        ranked = ranking_metrics(true_codes == 1, scores, np.ones((1, len(true_codes))))
        for name, value in zip(RANKING, ranked, strict=True):
            report[name] = None if np.isnan(value[0]) else float(value[0])
    return report


def positive_scores(probabilities) -> np.ndarray | None:
    """The second class's probability (n,) of a two-class task's (n, 2) ``predict_proba``:
    what AUROC and average precision rank. None for more classes."""
    probabilities = np.asarray(probabilities)
    return probabilities[:, 1] if probabilities.shape[1] == 2 else None


def ranking_metrics(is_positive, scores, weights) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision of ``scores`` (n,) for the examples ``is_positive`` (n,),
    under each row of example ``weights`` (r, n): two (r,) arrays, NaN where a row weighs no
    positive (AUROC: or no negative). Equal to scikit-learn's ``roc_auc_score`` and
    ``average_precision_score`` with ``sample_weight``; tied scores share one threshold, so
    AUROC counts a tied (positive, negative) pair as half.

    A bootstrap resample is a row of counts, so the ranks are found once (two sorts) and
    each row costs a cumulative sum over the negatives and over the positives, and a gather
    per positive: for positive i, AUROC sums w_i x the negative weight ranked below it (ties
    half) and average precision w_i x the precision at its score's threshold.
    """
    is_positive = np.asarray(is_positive, bool)
    scores = np.asarray(scores, np.float64)
    weights = np.atleast_2d(np.asarray(weights))
    positives, negatives = np.flatnonzero(is_positive), np.flatnonzero(~is_positive)
    positives = positives[np.argsort(-scores[positives], kind="stable")]  # best first
    negatives = negatives[np.argsort(-scores[negatives], kind="stable")]
    ranked_pos, ranked_neg = -scores[positives], -scores[negatives]  # ascending
    neg_above = np.searchsorted(ranked_neg, ranked_pos, side="left")  # (n_pos,) s_neg > s_i
    neg_through = np.searchsorted(ranked_neg, ranked_pos, side="right")  # s_neg >= s_i
    pos_through = np.searchsorted(ranked_pos, ranked_pos, side="right")  # s_pos >= s_i
    weight_pos = weights[:, positives]  # (r, n_pos)
    cum_neg = _cumulative(weights[:, negatives])  # (r, n_neg + 1): weight of the top k
    cum_pos = _cumulative(weight_pos)
    n_pos, n_neg = cum_pos[:, -1].astype(np.float64), cum_neg[:, -1].astype(np.float64)
    # (r, n_pos) running sums at each positive, float64 from here: products outgrow float32
    neg_strictly_above, neg_tied_or_above, pos_tied_or_above = (
        np.take(cumulative, at, axis=1).astype(np.float64)
        for cumulative, at in ((cum_neg, neg_above), (cum_neg, neg_through), (cum_pos, pos_through))
    )
    below = n_neg[:, None] - (neg_tied_or_above + neg_strictly_above) / 2  # ties count half
    flagged = pos_tied_or_above + neg_tied_or_above  # flagged at threshold s_i
    precision = np.divide(pos_tied_or_above, flagged, np.zeros_like(flagged), where=flagged > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        auroc = (weight_pos * below).sum(axis=1) / (n_pos * n_neg)
        average_precision = (weight_pos * precision).sum(axis=1) / n_pos
    auroc[(n_pos <= 0) | (n_neg <= 0)] = np.nan
    average_precision[n_pos <= 0] = np.nan
    return auroc, average_precision


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """(r, m + 1) running sums of (r, m) weights, starting at 0, in float64, or in float32
    for float32 weights: bootstrap counts, whose sums (at most n) float32 holds exactly."""
    dtype = np.float32 if weights.dtype == np.float32 else np.float64
    out = np.zeros((len(weights), weights.shape[1] + 1), dtype)
    np.cumsum(weights, axis=1, dtype=dtype, out=out[:, 1:])
    return out


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
    summary = [
        f"{TITLES[name]} {report[name]:.4f}"
        for name in ("balanced_accuracy", *RANKING)
        if report.get(name) is not None
    ]
    if summary:
        lines.append("  ".join(summary))
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
