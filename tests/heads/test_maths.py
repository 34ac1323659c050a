"""Head maths (probe.heads.maths) against independent answers: the plain formulas, by hand."""

from __future__ import annotations

import numpy as np

from probe.heads.estimator import ProbeClassifier, standardise
from probe.heads.maths import constant_columns, folded_weights, pick_C


def test_folded_weights_equal_standardise_then_linear():
    rng = np.random.default_rng(0)
    for classes in (1, 4):  # a binary head's one row, and K rows
        coef = rng.normal(size=(classes, 7))
        intercept = rng.normal(size=classes)
        mean = rng.normal(scale=50.0, size=7)  # hidden states have large-mean columns
        scale = rng.uniform(0.01, 20.0, size=7)
        X = mean + scale * rng.normal(size=(30, 7))
        expected = ((X - mean) / scale) @ coef.T + intercept  # (30, K')
        weight, bias = folded_weights(coef, intercept, mean, scale)
        assert weight.shape == (classes, 7) and bias.shape == (classes,)
        np.testing.assert_allclose(X @ weight.T + bias, expected, rtol=1e-10, atol=1e-10)
    weight, bias = folded_weights(coef, intercept)  # no scaler: the weights as they are
    np.testing.assert_array_equal(weight, coef) and np.testing.assert_array_equal(bias, intercept)


def test_decision_function_is_the_folded_map():
    rng = np.random.default_rng(1)
    X = rng.normal(loc=3.0, scale=2.0, size=(120, 5))
    y = (X[:, 0] + X[:, 1] > 6).astype(int)
    head = ProbeClassifier(C=1.0).fit(X, y)
    standardised = (X - head.mean_) / head.scale_
    expected = (standardised @ head.coef_.T + head.intercept_)[:, 0]
    np.testing.assert_allclose(head.decision_function(X), expected, rtol=1e-10, atol=1e-10)


def test_one_constant_column_rule_for_every_standardisation():
    centre = np.array([0.0, 1e4, 1e4, 5.0])
    spread = np.array([0.0, 1e4 * 4e-7, 1e-2, 1e-20])  # zero, rounding, real, below any float
    np.testing.assert_array_equal(constant_columns(spread, centre), [True, True, False, True])
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 3)).astype(np.float32)
    X[:, 1] = np.float32(1234.567)  # constant, with a mean float32 cannot sum exactly
    _, mean, scale = standardise(X)
    assert scale[1] == 1.0 and abs(mean[1] - 1234.567) < 1e-3 and scale[0] != 1.0


def test_pick_C_takes_the_lowest_held_out_log_loss_whatever_the_accuracy():
    grid = [0.01, 0.1, 1.0, 10.0]
    scores = [[0.80, 0.50], [0.90, 0.40], [0.90, 0.30], [0.85, 0.20]]
    assert pick_C(grid, scores) == 10.0  # lower accuracy, but the better probabilities
    assert pick_C(grid, [[0.9, 0.3], [0.9, 0.3]]) == 0.01  # a full tie: the smaller C
    assert pick_C(grid, [[0.7, 0.5], [0.7, 0.5 - 1e-14]]) == 0.01  # 1e-14 is a tie, not a win
