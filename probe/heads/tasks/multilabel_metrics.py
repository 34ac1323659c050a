"""The measures of a multi-label head: micro- and macro-F1, subset accuracy, Hamming loss,
label ranking average precision (scikit-learn's definitions), per label and under bootstrap
resampling. Cut from ``probe.heads.tasks.multilabel`` (the head and its protocol) because the
research layer's intervals call these alone, many times over."""

from __future__ import annotations

import numpy as np

from probe.errors import ProbeError


def _counts(Y_true, Y_pred, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted per-label TP, FP, FN (R, L) and the weight of exact rows and mismatches (R,)."""
    truth, guess = Y_true.astype(bool), Y_pred.astype(bool)
    weights = np.asarray(weights, np.float64)
    return {
        "tp": weights @ (truth & guess).astype(np.float64),
        "fp": weights @ (~truth & guess).astype(np.float64),
        "fn": weights @ (truth & ~guess).astype(np.float64),
        "exact": weights @ (truth == guess).all(axis=1).astype(np.float64),
        "wrong": weights @ (truth != guess).sum(axis=1).astype(np.float64),
        "total": weights.sum(axis=1),
    }


def _ratio(top, bottom) -> np.ndarray:
    """top / bottom, 0 where bottom is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(top, bottom, out=np.zeros(np.shape(top)), where=bottom > 0)


def row_lrap(Y_true, scores) -> np.ndarray:
    """(n,) each row's label ranking average precision (1 where all or no labels are
    relevant): ``label_ranking_average_precision_score`` is their mean."""
    truth, scores = np.asarray(Y_true).astype(bool), np.asarray(scores, np.float64)
    out = np.ones(len(truth))
    for start in range(0, len(truth), 2048):
        t, s = truth[start : start + 2048], scores[start : start + 2048]
        above = s[:, None, :] >= s[:, :, None]  # [i, j, k]: label k scores at least j's
        precision = (above & t[:, None, :]).sum(axis=2) / above.sum(axis=2)
        relevant = t.sum(axis=1)
        ranked = (relevant > 0) & (relevant < t.shape[1])
        mean = (precision * t).sum(axis=1) / np.maximum(relevant, 1)
        out[start : start + 2048] = np.where(ranked, mean, 1.0)
    return out


def _check_pair(Y_true, Y_pred, scores=None) -> tuple:
    Y_true, Y_pred = np.asarray(Y_true), np.asarray(Y_pred)
    if Y_true.ndim != 2 or Y_true.shape != Y_pred.shape:
        raise ProbeError(f"label matrices differ in shape: {Y_true.shape} vs {Y_pred.shape}")
    if scores is not None and np.shape(scores) != Y_true.shape:
        raise ProbeError(f"scores are {np.shape(scores)}, labels {Y_true.shape}")
    return Y_true, Y_pred


def resampled_multilabel_metrics(Y_true, Y_pred, counts, scores=None) -> dict[str, np.ndarray]:
    """Each metric of ``MULTILABEL_METRICS`` (lrap only with ``scores``) on R resamples at
    once: ``counts`` (R, n) says how often each row is drawn (the house bootstrap).
    One matrix product per count, no resampled copies of the rows."""
    Y_true, Y_pred = _check_pair(Y_true, Y_pred, scores)
    weights = np.atleast_2d(np.asarray(counts, np.float64))
    c = _counts(Y_true, Y_pred, weights)
    per_label = _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])
    tp, errors = c["tp"].sum(axis=1), (c["fp"] + c["fn"]).sum(axis=1)
    out = {
        "micro_f1": _ratio(2 * tp, 2 * tp + errors),
        "macro_f1": per_label.mean(axis=1),
        "subset_accuracy": _ratio(c["exact"], c["total"]),
    }
    if scores is not None:
        out["lrap"] = _ratio(weights @ row_lrap(Y_true, scores), c["total"])
    return out


def multilabel_report(Y_true, Y_pred, scores=None, label_names=None) -> dict:
    """The test report of a multi-label head: micro/macro F1, subset accuracy, Hamming loss,
    LRAP (with ``scores``), per-label F1/precision/recall/support, n."""
    Y_true, Y_pred = _check_pair(Y_true, Y_pred, scores)
    n, labels = Y_true.shape
    names = [str(i) for i in range(labels)] if label_names is None else list(label_names)
    if len(names) != labels:
        raise ProbeError(f"{len(names)} label names for {labels} labels")
    c = _counts(Y_true, Y_pred, np.ones((1, n)))
    metrics = resampled_multilabel_metrics(Y_true, Y_pred, np.ones((1, n)), scores)
    report = {name: float(values[0]) for name, values in metrics.items()}
    report["lrap"] = report.get("lrap")
    report["hamming_loss"] = float(_ratio(c["wrong"], c["total"] * labels)[0])
    tp, fp, fn = c["tp"][0], c["fp"][0], c["fn"][0]
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    support = np.round(tp + fn).astype(int)
    report["per_label"] = {
        name: {"f1": float(f1[i]), "precision": float(precision[i]), "recall": float(recall[i])}
        | {"support": int(support[i])}
        for i, name in enumerate(names)
    }
    report["n"] = int(n)
    return report
