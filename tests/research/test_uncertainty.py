"""Bootstrap intervals and paired comparisons: what every number's uncertainty rests on.

Every metric of a resample is checked against scikit-learn with the resample's counts as
``sample_weight``; intervals and paired comparisons against simulations of known truth."""

from __future__ import annotations

import warnings

import numpy as np

from probe.heads.metrics import classification_report
from probe.research.selection import select_row
from probe.research.uncertainty import (
    cluster_resample_counts,
    confusion_metrics,
    indistinguishable,
    metric_intervals,
    paired_differences,
    paired_metric_differences,
    resample_counts,
    resampled_metrics,
)


def noisy_predictions(n: int, k: int = 3, accuracy: float = 0.8, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < accuracy, truth, rng.integers(0, k, n))
    return truth, predicted


def test_confusion_metrics_equal_the_classification_report():
    truth, predicted = noisy_predictions(300)
    confusion = np.asarray(classification_report(truth, predicted, [0, 1, 2])["confusion_matrix"])
    found = confusion_metrics(confusion.astype(float))
    accuracy, macro_f1 = found["accuracy"], found["macro_f1"]
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


def imbalanced_scores(n: int, rng, prevalence=0.25, shift=1.5, threshold=1.0):
    """A binary head on imbalanced data: positives score N(shift, 1), negatives N(0, 1);
    it predicts positive above ``threshold``. Returns (truth, predicted, scores)."""
    truth = (rng.random(n) < prevalence).astype(int)
    scores = rng.normal(size=n) + shift * truth
    return truth, (scores > threshold).astype(int), scores


def test_every_resample_metric_equals_scikit_learn_with_counts_as_weights():
    """Each bootstrap resample's metrics equal scikit-learn's with ``sample_weight=counts``,
    for example and sentence (cluster) resamples, tied scores included."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
        roc_auc_score,
    )

    rng = np.random.default_rng(7)
    truth, predicted, scores = imbalanced_scores(150, rng)
    scores = np.round(scores, 1)
    sentences = np.repeat(np.arange(50), 3)
    for counts in (
        next(resample_counts(150, 15, seed=2)),
        next(cluster_resample_counts(sentences, 15, seed=2)),
    ):
        found = resampled_metrics(truth, predicted, 2, counts, positive=scores)
        for i, w in enumerate(counts):
            expected = {
                "accuracy": accuracy_score(truth, predicted, sample_weight=w),
                "macro_f1": f1_score(truth, predicted, average="macro", sample_weight=w),
                "balanced_accuracy": balanced_accuracy_score(truth, predicted, sample_weight=w),
                "auroc": roc_auc_score(truth, scores, sample_weight=w),
                "average_precision": average_precision_score(truth, scores, sample_weight=w),
            }
            for name, value in expected.items():
                assert abs(found[name][i] - value) < 1e-9, (name, i)
    three, guessed = noisy_predictions(200)
    three[three == 2] = 1
    three[:2] = 2  # a rare class, absent from some resamples: the mean runs over the others
    guessed[guessed == 2] = 1
    guessed[:2] = 2  # ... and predicted only there: macro-F1 leaves it out of those resamples
    weights = next(resample_counts(200, 20, seed=4))
    found = resampled_metrics(three, guessed, 3, weights)
    assert set(found) == {"accuracy", "macro_f1", "balanced_accuracy"}  # no ranking: 3 classes
    assert (weights[:, :2].sum(axis=1) == 0).any()
    for i, w in enumerate(weights):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn warns of the absent class
            expected = balanced_accuracy_score(three, guessed, sample_weight=w)
        assert abs(found["balanced_accuracy"][i] - expected) < 1e-9
        rows = np.repeat(np.arange(200), w.astype(int))  # the resample itself
        expected = f1_score(three[rows], guessed[rows], average="macro")
        assert abs(found["macro_f1"][i] - expected) < 1e-9


def test_metric_intervals_of_a_binary_head_hold_every_estimate():
    rng = np.random.default_rng(8)
    truth, predicted, scores = imbalanced_scores(300, rng)
    report = classification_report(truth, predicted, [0, 1], scores=scores)
    ci = metric_intervals(truth, predicted, 2, scores=scores, seed=1)
    assert set(ci) == {"accuracy", "macro_f1", "balanced_accuracy", "auroc", "average_precision"}
    for name, (low, high) in ci.items():
        assert low <= report[name] <= high, name
    assert ci == metric_intervals(truth, predicted, 2, scores=scores, seed=1)
    assert metric_intervals(truth, predicted, 2, seed=1)["accuracy"] == ci["accuracy"]


def test_balanced_accuracy_and_auroc_intervals_cover_95_percent_of_the_time():
    """A head of known balanced accuracy and AUROC on imbalanced data (25% positive), scored
    on 1,000 independent test sets of 300: each bootstrap interval holds the true value for
    93-97% of them."""
    from scipy.stats import norm

    rng = np.random.default_rng(21)
    shift, threshold = 1.5, 1.0
    truths = {
        "auroc": norm.cdf(shift / np.sqrt(2)),  # P(positive score > negative score)
        "balanced_accuracy": (norm.cdf(threshold) + norm.sf(threshold - shift)) / 2,
    }
    held = dict.fromkeys(truths, 0)
    for replication in range(REPLICATIONS):
        truth, predicted, scores = imbalanced_scores(300, rng, shift=shift, threshold=threshold)
        ci = metric_intervals(truth, predicted, 2, scores=scores, seed=replication)
        for name, value in truths.items():
            held[name] += ci[name][0] <= value <= ci[name][1]
    for name, count in held.items():
        assert 0.93 <= count / REPLICATIONS <= 0.97, (name, count)


def test_the_paired_metric_bootstrap_calls_equal_heads_different_5_percent_of_the_time():
    """Two heads of the same balanced accuracy (errors independent) on 1,000 validation sets
    of 200: the paired interval of their difference excludes 0 for 3-7% of them; a head
    that is really better is told apart."""
    rng = np.random.default_rng(31)
    called = 0
    for replication in range(REPLICATIONS):
        truth = (rng.random(200) < 0.25).astype(int)
        heads = []
        for _ in range(2):
            scores = rng.normal(size=200) + 1.5 * truth
            heads.append({"truth": truth, "predicted": (scores > 1.0).astype(int)})
        intervals = paired_metric_differences(heads, 0, "balanced_accuracy", 2, seed=replication)
        called += not indistinguishable(intervals)[1]
    assert 0.03 <= called / REPLICATIONS <= 0.07, called
    better = {"truth": truth, "predicted": truth.copy(), "positive": None}
    intervals = paired_metric_differences([heads[0], better], 0, "balanced_accuracy", 2)
    assert intervals[1, 0] > 0


def test_the_paired_metric_bootstrap_is_the_mean_one_for_accuracy_and_draws_sentences():
    """For accuracy, a difference of metrics is a difference of mean correctness: the paired
    metric bootstrap equals ``paired_differences`` of the 0/1 vectors, and with sentence
    clusters it draws sentences as that does."""
    truth, first = noisy_predictions(300, seed=1)
    _, second = noisy_predictions(300, seed=2)
    second = np.where(np.arange(300) < 40, truth, second)  # a little better
    heads = [{"truth": truth, "predicted": p, "positive": None} for p in (first, second)]
    correct = np.stack([(p == truth).astype(float) for p in (first, second)])
    sentences = np.repeat(np.arange(60), 5)
    for clusters in (None, sentences):
        by_metric = paired_metric_differences(heads, 1, "accuracy", 3, seed=5, clusters=clusters)
        by_mean = paired_differences(correct, 1, seed=5, clusters=clusters)
        np.testing.assert_allclose(by_metric, by_mean, atol=1e-6)
    assert by_metric[1].tolist() == [0.0, 0.0]


def test_selection_by_a_metric_takes_its_highest_row_and_marks_the_ties():
    """Three rows scored on the same 400 examples: the best balanced accuracy is chosen
    though another row has the best accuracy (it always says the majority class), a row one
    example worse is indistinguishable, and prefer_early takes it."""
    rng = np.random.default_rng(9)
    truth = (rng.random(400) < 0.2).astype(int)
    good = np.where(rng.random(400) < 0.75, truth, 1 - truth)
    worse = good.copy()
    worse[np.flatnonzero(good == truth)[0]] ^= 1  # one example worse
    majority = np.zeros(400, int)
    scores = [
        {"truth": truth, "predicted": p, "positive": None, "log_loss": np.ones(400)}
        for p in (majority, good, worse)
    ]
    rows = [{"layer": layer, "pool": "last", "val_accuracy_ci": [0, 1]} for layer in (4, 8, 2)]
    choice = select_row(rows, scores, metric="balanced_accuracy", n_classes=2)
    assert choice["index"] == 1 and choice["highest_metric"] == {"layer": 8, "pool": "last"}
    assert choice["selected_by"] == "validation balanced accuracy"
    assert [row["indistinguishable"] for row in rows] == [False, True, True]
    assert rows[1]["balanced_accuracy_difference_ci"] == [0.0, 0.0]
    assert rows[0]["selection_balanced_accuracy"] == 0.5
    assert np.mean(majority == truth) > np.mean(good == truth)  # accuracy would pick it
    early = select_row(rows, scores, metric="balanced_accuracy", n_classes=2, prefer_early=True)
    assert early["index"] == 2 and early["n_indistinguishable"] == 1


def test_macro_f1_of_many_rare_classes_sits_inside_its_interval():
    """120 classes of one or two test rows each, a fifth of them mispredicted: a resample
    leaves many classes out, and macro-F1 then averages the classes it has (counted as 0,
    the interval fell below the estimate: 0.1165 [0.066, 0.101] on 313 countries)."""
    rng = np.random.default_rng(3)
    truth = rng.permutation(np.concatenate([np.arange(120), np.arange(60)]))
    predicted = np.where(rng.random(len(truth)) < 0.2, rng.integers(0, 150, len(truth)), truth)
    names = list(range(150))  # the head knows classes no test row has
    estimate = classification_report(truth, predicted, names)["macro_f1"]
    low, high = metric_intervals(truth, predicted, 150, n_resamples=1000, seed=0)["macro_f1"]
    assert low < estimate < high
