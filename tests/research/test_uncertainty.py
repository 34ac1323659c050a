"""Bootstrap intervals and paired comparisons: what every number's uncertainty rests on."""

from __future__ import annotations

import numpy as np

from probe.heads.metrics import classification_report
from probe.research.selection import select_row
from probe.research.uncertainty import (
    accuracy_and_macro_f1,
    indistinguishable,
    metric_intervals,
    paired_differences,
    resample_counts,
)


def noisy_predictions(n: int, k: int = 3, accuracy: float = 0.8, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < accuracy, truth, rng.integers(0, k, n))
    return truth, predicted


def test_confusion_metrics_equal_the_classification_report():
    truth, predicted = noisy_predictions(300)
    confusion = np.asarray(classification_report(truth, predicted, [0, 1, 2])["confusion_matrix"])
    accuracy, macro_f1 = accuracy_and_macro_f1(confusion.astype(float))
    report = classification_report(truth, predicted, [0, 1, 2])
    assert abs(accuracy - report["accuracy"]) < 1e-12
    assert abs(macro_f1 - report["macro_f1"]) < 1e-12


def test_interval_contains_the_estimate_is_seeded_and_shrinks_with_n():
    for n in (50, 500):
        truth, predicted = noisy_predictions(n, seed=n)
        report = classification_report(truth, predicted, [0, 1, 2])
        ci = metric_intervals(truth, predicted, 3, seed=1)
        assert ci["accuracy"][0] <= report["accuracy"] <= ci["accuracy"][1]
        assert ci["macro_f1"][0] <= report["macro_f1"] <= ci["macro_f1"][1]
        assert ci == metric_intervals(truth, predicted, 3, seed=1)
    small = metric_intervals(*noisy_predictions(50), 3)["accuracy"]
    large = metric_intervals(*noisy_predictions(5000), 3)["accuracy"]
    assert large[1] - large[0] < (small[1] - small[0]) / 4  # ~ 1 / sqrt(n)


def test_resamples_are_count_vectors_independent_of_chunking():
    blocks = list(resample_counts(40, 130, seed=3, chunk=50))
    assert [len(b) for b in blocks] == [50, 50, 30]
    counts = np.concatenate(blocks)
    assert (counts.sum(axis=1) == 40).all() and (counts == np.round(counts)).all()
    # each example is drawn Binomial(40, 1/40) times: absent from ~(39/40)^40 = 36% of resamples
    assert abs((counts == 0).mean() - (39 / 40) ** 40) < 0.02


def test_paired_bootstrap_tells_a_real_difference_from_a_tie():
    truth, predicted = noisy_predictions(400)
    correct = (truth == predicted).astype(float)
    rng = np.random.default_rng(1)
    one_flip = correct.copy()
    one_flip[np.flatnonzero(correct)[0]] = 0.0  # one example worse: noise
    coin = (rng.random(400) < 0.5).astype(float)  # much worse
    intervals = paired_differences(np.stack([correct, one_flip, coin]), 0)
    assert intervals[0].tolist() == [0.0, 0.0]
    assert indistinguishable(intervals).tolist() == [True, True, False]
    assert intervals[2, 1] < 0


REPLICATIONS = 1000


def test_95_percent_intervals_cover_95_percent_of_the_time():
    """A classifier of known accuracy 0.8, scored on 1,000 independent test sets of 200: the
    bootstrap interval holds 0.8 for 93-97% of them. Vectorised: every replication is a row
    resampled with the same count vectors (what ``metric_intervals`` draws for that seed)."""
    rng = np.random.default_rng(11)
    n, accuracy = 200, 0.8
    correct = (rng.random((REPLICATIONS, n)) < accuracy).astype(np.float64)  # (reps, n)
    intervals = paired_differences(np.vstack([np.zeros(n), correct]), 0, seed=3)[1:]
    for i in range(3):  # the same numbers metric_intervals gives each replication
        truth = np.zeros(n, int)
        predicted = np.where(correct[i] == 1, 0, 1)
        ci = metric_intervals(truth, predicted, 2, seed=3)["accuracy"]
        assert np.allclose(ci, intervals[i], atol=1e-9), (ci, intervals[i])
    coverage = float(((intervals[:, 0] <= accuracy) & (accuracy <= intervals[:, 1])).mean())
    assert 0.93 <= coverage <= 0.97, coverage


def test_the_paired_bootstrap_calls_equal_heads_different_5_percent_of_the_time():
    """Two heads of the same accuracy (0.8, errors independent) on 1,000 test sets of 200:
    the paired interval of their difference excludes 0 for 3-7% of them."""
    rng = np.random.default_rng(12)
    n = 200
    first = (rng.random((REPLICATIONS, n)) < 0.8).astype(np.float64)
    second = (rng.random((REPLICATIONS, n)) < 0.8).astype(np.float64)
    intervals = paired_differences(np.vstack([np.zeros(n), second - first]), 0, seed=4)[1:]
    for i in range(3):  # the same as comparing the two heads of that replication directly
        direct = paired_differences(np.stack([first[i], second[i]]), 0, seed=4)[1]
        assert np.allclose(direct, intervals[i], atol=1e-9)
    false_positives = float((~indistinguishable(intervals)).mean())
    assert 0.03 <= false_positives <= 0.07, false_positives
    shifted = (rng.random((REPLICATIONS, n)) < 0.9).astype(np.float64)  # a real difference
    power = paired_differences(np.vstack([np.zeros(n), shifted - first]), 0, seed=4)[1:]
    assert (~indistinguishable(power)).mean() > 0.8


def test_the_paired_bootstrap_of_word_rows_draws_sentences():
    """Known answer: 20 sentences of 10 words, each word carrying its sentence's loss
    difference (mean 0.08, sd 0.3). Drawing sentences gives exactly the interval of the 20
    sentence means, about 2 x 1.96 x 0.3 / sqrt(20) wide, which contains 0; drawing words
    takes 200 copies of 20 numbers for independent and gives one sqrt(10) times narrower
    that wrongly excludes 0. The sweep's selection must draw sentences too."""
    noise = np.random.default_rng(0).normal(size=20)
    per_sentence = 0.08 + 0.3 * (noise - noise.mean()) / noise.std()
    words, sentences = np.repeat(per_sentence, 10), np.repeat(np.arange(20), 10)
    loss = np.stack([np.ones(200), 1.0 + words])  # row 1 minus row 0: the words' differences
    clustered = paired_differences(loss, 0, n_resamples=2000, seed=4, clusters=sentences)[1]
    direct = paired_differences(
        np.stack([np.zeros(20), per_sentence]), 0, n_resamples=2000, seed=4
    )[1]
    by_word = paired_differences(loss, 0, n_resamples=2000, seed=4)[1]
    np.testing.assert_allclose(clustered, direct, atol=1e-6)
    width = clustered[1] - clustered[0]
    assert abs(width - 2 * 1.96 * 0.3 / np.sqrt(20)) < 0.04
    assert 2.6 < width / (by_word[1] - by_word[0]) < 3.8  # sqrt(10) = 3.16
    assert indistinguishable(np.stack([clustered, by_word])).tolist() == [True, False]

    scores = [{"log_loss": row} for row in loss]
    for clusters, alike in ((sentences, True), (None, False)):
        rows = [{"layer": 1, "pool": "last"}, {"layer": 2, "pool": "last"}]
        select_row(rows, scores, resamples=2000, seed=4, clusters=clusters)
        assert rows[1]["indistinguishable"] is alike
    np.testing.assert_allclose(rows[1]["loss_difference_ci"], by_word, atol=1e-9)
