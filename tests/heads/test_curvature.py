"""The preconditioner's shortcut ``quadratic`` against the solve it shortens."""

from __future__ import annotations

import numpy as np
import pytest

from probe.heads.solver import curvature


@pytest.mark.parametrize("rows", [300, 8])  # more rows than features, and a thin (wide) basis
def test_quadratic_equals_q_dot_solve_q(rows):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(rows, 10)).astype(np.float32)
    Z = rng.normal(size=(rows, 4))
    weight = np.full(rows, 1.0 / rows)
    estimate = curvature.estimate(X, Z, weight, binary=False, shared=None)
    solve = curvature.inverse(estimate, lam=0.05, dim=10)
    q = rng.normal(size=(4, 11))
    assert np.isclose(solve.quadratic(q), float(np.vdot(q, solve(q))), rtol=1e-8)
    # and the solve inverts the Kronecker estimate: positive along every direction that
    # changes a prediction (the all-ones class direction changes none)
    assert solve.quadratic(q - q.mean(axis=0)) > 0


def test_a_folds_share_of_the_subsample_gives_the_scales_of_its_own_copy():
    """A fold reads the shared projected rows in place (``kept``); the scales must equal those
    from a copy of just its rows."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 12)).astype(np.float32)
    shared = curvature.SharedSubsample.of(X, seed=0)
    train = np.sort(rng.choice(500, 400, replace=False))
    fold = shared.within(train)
    copy = curvature.SharedSubsample(fold.rows, shared.basis, shared.projected[fold.kept])
    sub = X[train][fold.rows]
    Z = rng.normal(size=(len(sub), 3))
    weight = np.full(len(sub), 1.0 / len(sub))
    in_place = curvature.estimate(sub, Z, weight, binary=False, shared=fold)
    copied = curvature.estimate(sub, Z, weight, binary=False, shared=copy)
    np.testing.assert_allclose(in_place[0], copied[0], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(in_place[2], copied[2])


@pytest.mark.parametrize("classes", [2, 5])
def test_a_step_pass_gives_the_loss_and_gradient_the_separate_formulas_give(classes):
    """The pass computes the loss after the full step block by block, from the residual's
    own exponentials; it must equal the whole-matrix loss and gradient."""
    from probe.heads.solver import LogisticPath

    rng = np.random.default_rng(4)
    X = rng.normal(size=(1000, 9)).astype(np.float32)  # 1,000 rows: several 256-row blocks
    codes = rng.integers(0, classes, size=1000)
    path = LogisticPath(X, codes, classes, rng.uniform(0.5, 2.0, size=1000))
    direction = rng.normal(size=(path.k, 10))
    along, grad, loss = path._step_pass(direction)
    expected_along = X.astype(np.float64) @ direction[:, :-1].T + direction[:, -1]
    np.testing.assert_allclose(along, expected_along, rtol=1e-4, atol=1e-5)  # float32 X
    assert np.isclose(loss, path._loss(path.Z + along), rtol=1e-12)
    residual = path._residual(path.Z + along)
    expected = np.hstack([residual.T @ X.astype(np.float64), residual.sum(axis=0)[:, None]])
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)
