"""How sure a number is: bootstrap confidence intervals and paired bootstrap comparisons.

A test accuracy of 0.967 on 150 examples says little without its interval; two layers whose
validation scores differ by one example are not different layers. Every resample here is a
vector of *counts* (how often each example was drawn), so a metric of many resamples (and of
many heads at once) is one matrix product, and the same seed draws the same resamples for
every head: the comparisons are paired. Percentile intervals, 1,000 resamples by default.
The metrics of a resample are those of ``probe.heads.metrics`` under the resample's counts as
example weights (AUROC and average precision: ``ranking_metrics``); a resample where a metric
is undefined (AUROC of a resample without positives) is left out of that metric's interval.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from probe.heads.metrics import RANKING, ranking_metrics

RESAMPLES = 1000
LEVEL = 0.95
CHUNK = 250  # resamples per block: (CHUNK, n) float32 counts stay small for big test sets


def resample_counts(
    n: int, n_resamples: int = RESAMPLES, seed: int = 0, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """Blocks of bootstrap count vectors, float32 (r, n); each row sums to n.

    The same (n, n_resamples, seed) always yields the same resamples, whatever the chunk.
    """
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_resamples:
        r = min(chunk, n_resamples - done)
        draws = rng.integers(0, n, size=(r, n))  # (r, n) example indices
        flat = (np.arange(r)[:, None] * n + draws).ravel()
        yield np.bincount(flat, minlength=r * n).reshape(r, n).astype(np.float32)
        done += r


def cluster_resample_counts(
    clusters, n_resamples: int = RESAMPLES, seed: int = 0, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """Like ``resample_counts``, but whole clusters (sentences) are drawn with replacement:
    each example counts as often as its cluster was drawn. Words of one sentence are not
    independent, so their interval must resample sentences (a cluster bootstrap)."""
    _, cluster_of = np.unique(np.asarray(clusters), return_inverse=True)
    for counts in resample_counts(
        int(cluster_of.max()) + 1 if len(cluster_of) else 0, n_resamples, seed, chunk
    ):
        yield counts[:, cluster_of]


def resamples_of(
    n: int, n_resamples: int = RESAMPLES, seed: int = 0, clusters=None
) -> Iterator[np.ndarray]:
    """The resamples of ``n`` examples, or of their ``clusters`` when given (word rows: every
    interval and comparison draws sentences)."""
    if clusters is None:
        return resample_counts(n, n_resamples, seed)
    return cluster_resample_counts(clusters, n_resamples, seed)


def _percentiles(values: np.ndarray, level: float) -> np.ndarray:
    """(columns, 2) percentile intervals of each column of (resamples, columns) values,
    ignoring NaN (a resample where the metric is undefined); NaN where every one is."""
    tail = (1.0 - level) / 2 * 100
    values = np.asarray(values, np.float64)
    defined = ~np.isnan(values).all(axis=0)
    out = np.full((values.shape[1], 2), np.nan)
    if defined.any():
        out[defined] = np.nanpercentile(values[:, defined], [tail, 100 - tail], axis=0).T
    return out


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    low, high = _percentiles(np.asarray(values)[:, None], level)[0]
    return None if np.isnan(low) else [float(low), float(high)]


def class_resamples(true_codes, pred_codes, k: int, counts: np.ndarray) -> tuple:
    """(hits, support, predicted) of each resample, each (r, K): the diagonal, row and column
    sums of its confusion matrix, all the metrics read. Not the (r, K, K) matrices: at 352
    classes their one-hot products were a 3 GB array and 60 s a sweep row."""
    true_codes, pred_codes = np.asarray(true_codes), np.asarray(pred_codes)
    hit = true_codes == pred_codes
    return (
        _code_sums(counts[:, hit], true_codes[hit], k),
        _code_sums(counts, true_codes, k),
        _code_sums(counts, pred_codes, k),
    )


def _code_sums(counts: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """(r, K) float64: each resample's count of the examples of each code (exact integers)."""
    order = np.argsort(codes, kind="stable")
    present, starts = np.unique(codes[order], return_index=True)
    sums = np.zeros((len(counts), k))
    if len(present):
        sums[:, present] = np.add.reduceat(counts[:, order], starts, axis=1)
    return sums


def confusion_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """``class_metrics`` of confusion matrices (..., K, K), rows true, columns predicted."""
    hits = np.diagonal(confusion, axis1=-2, axis2=-1)  # (..., K)
    return class_metrics(hits, confusion.sum(axis=-1), confusion.sum(axis=-2))


def class_metrics(hits, support, predicted) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and balanced accuracy from each class's hits, support and predicted
    count (..., K); zero divisions count as 0, macro F1 averages the classes in the truth or
    the predictions and balanced accuracy those in the truth, as in ``probe.heads.metrics``:
    each resample's value is scikit-learn's on the resampled rows."""
    total = support.sum(axis=-1)
    present = (support > 0).sum(axis=-1)
    seen = (support + predicted > 0).sum(axis=-1)  # the classes macro-F1 averages
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(support + predicted > 0, 2 * hits / (support + predicted), 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        return {
            "accuracy": np.where(total > 0, hits.sum(axis=-1) / total, 0.0),
            "macro_f1": np.where(seen > 0, f1.sum(axis=-1) / np.maximum(seen, 1), 0.0),
            "balanced_accuracy": np.where(present > 0, recall.sum(axis=-1) / present, 0.0),
        }


def resampled_metrics(true_codes, pred_codes, k: int, counts, positive=None) -> dict:
    """Every metric of each resample in ``counts`` (r, n): {name: (r,)}; AUROC and average
    precision too when ``positive`` (each example's score of class 1, two classes) is given."""
    values = class_metrics(*class_resamples(true_codes, pred_codes, k, counts))
    if positive is not None:
        is_positive = np.asarray(true_codes) == 1
        values["auroc"], values["average_precision"] = ranking_metrics(
            is_positive, positive, counts
        )
    return values


def metric_intervals(
    true_codes,
    pred_codes,
    k: int,
    *,
    scores=None,
    n_resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    clusters=None,
) -> dict:
    """95% percentile bootstrap intervals of accuracy, macro F1 and balanced accuracy over
    test examples (over their ``clusters``, e.g. sentences of words, when given), and of
    AUROC and average precision with ``scores`` (two classes: each example's score of class
    1). Every metric is computed on the same resamples.

    Macro F1 is 2TP / (2TP + FP + FN) per class, which equals the harmonic mean of
    precision and recall used by ``classification_report``.
    """
    true_codes, pred_codes = np.asarray(true_codes), np.asarray(pred_codes)
    blocks = [
        resampled_metrics(true_codes, pred_codes, k, counts, scores)
        for counts in resamples_of(len(true_codes), n_resamples, seed, clusters)
    ]
    return {
        name: _interval(np.concatenate([block[name] for block in blocks]), level)
        for name in blocks[0]
    }


def paired_metric_differences(
    samples: list[dict],
    reference: int,
    metric: str,
    k: int,
    *,
    n_resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    clusters=None,
) -> np.ndarray:
    """Bootstrap interval of metric(row) - metric(reference) for every row: (rows, 2).

    Each of ``samples`` holds one head's codes on the same examples: ``truth`` and
    ``predicted`` (n,), and ``positive`` (n,) scores of class 1 for AUROC and average
    precision. Every head is scored on the same resample each time (the paired bootstrap),
    of whole ``clusters`` when given, as ``paired_differences`` does for per-example means.
    """
    ranking = metric in RANKING
    differences = []
    for counts in resamples_of(len(samples[0]["truth"]), n_resamples, seed, clusters):
        values = np.stack(
            [
                resampled_metrics(
                    s["truth"], s["predicted"], k, counts, s["positive"] if ranking else None
                )[metric]
                for s in samples
            ],
            axis=1,
        )  # (r, rows)
        differences.append(values - values[:, [reference]])
    return _percentiles(np.concatenate(differences), level)  # (rows, 2)


def paired_differences(
    scores: np.ndarray,
    reference: int,
    *,
    n_resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    clusters=None,
) -> np.ndarray:
    """Bootstrap interval of mean(score[row]) - mean(score[reference]) for every row.

    ``scores`` is (rows, n): a per-example score of each head on the same examples (0/1
    correctness, or log loss). Returns (rows, 2) intervals; the reference row gets [0, 0].
    Both heads are scored on the same resample each time: the paired bootstrap. With
    ``clusters`` (the sentence of each word) whole clusters are drawn, as for every other
    interval of word rows: a mean over the words drawn.
    """
    scores = np.asarray(scores, np.float64)
    differences = (scores - scores[reference]).astype(np.float32)  # (rows, n)
    n = scores.shape[1]
    means = [
        (counts @ differences.T).astype(np.float64) / counts.sum(axis=1, keepdims=True)
        for counts in resamples_of(n, n_resamples, seed, clusters)
    ]
    return _percentiles(np.concatenate(means), level)  # (n_resamples, rows) -> (rows, 2)


def indistinguishable(intervals: np.ndarray) -> np.ndarray:
    """Rows whose paired-difference interval contains 0: (rows,) bool."""
    intervals = np.asarray(intervals)
    return (intervals[:, 0] <= 0.0) & (intervals[:, 1] >= 0.0)


def per_example_log_loss(probabilities: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """-ln p(true class) per example, clipped at 1e-15 as scikit-learn's log_loss does."""
    picked = np.asarray(probabilities)[np.arange(len(codes)), np.asarray(codes)]
    return -np.log(np.clip(picked, 1e-15, 1.0))


def mean_and_sd(values) -> tuple[float, float]:
    """Mean and sample sd (ddof=1; 0.0 for one value)."""
    values = np.asarray(values, np.float64)
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), sd


# --- written out ---------------------------------------------------------------------------


def with_ci(row: dict, key: str, sign: str = "") -> str:
    """``row[key]`` and its ``_ci`` interval as ``0.9667 [0.933, 0.992]`` (``-`` when absent);
    ``sign="+"`` signs them, for differences."""
    value, interval = row.get(key), row.get(f"{key}_ci")
    if value is None:
        return "-"
    text = format(value, f"{sign}.4f")
    if interval:
        text += f" [{interval[0]:{sign}.3f}, {interval[1]:{sign}.3f}]"
    return text
