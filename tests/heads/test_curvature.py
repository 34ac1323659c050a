"""The preconditioner's shortcut ``quadratic`` against the solve it shortens."""

from __future__ import annotations

import numpy as np
import pytest

from probe.heads.solver import curvature


def blocks_of(X, Z, shared=None):
    """The per-class blocks of X's rows at logits Z (weights 1/n, softmax curvature)."""
    from probe.heads.maths import softmax

    p = softmax(Z)
    c = p * (1 - p) / len(X)
    shared = curvature.SharedSubsample.of(X, seed=0) if shared is None else shared
    return curvature.class_blocks(c, shared, len(X))


@pytest.mark.parametrize("rows", [300, 8])  # more rows than features, and a thin (wide) basis
def test_quadratic_equals_q_dot_solve_q(rows):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(rows, 10)).astype(np.float32)
    Z = rng.normal(size=(rows, 4))
    solve = curvature.inverse(blocks_of(X, Z), lam=0.05, dim=10)
    q = rng.normal(size=(4, 11))
    assert np.isclose(solve.quadratic(q), float(np.vdot(q, solve(q))), rtol=1e-8)
    # and the solve inverts the blocks: positive along every direction that changes a
    # prediction (the all-ones class direction changes none), symmetric
    assert solve.quadratic(q - q.mean(axis=0)) > 0
    other = rng.normal(size=(4, 11))
    assert np.isclose(np.vdot(other, solve(q)), np.vdot(q, solve(other)), rtol=1e-8)


def test_the_sheared_blocks_invert_each_class_block_exactly():
    """With the dense part as wide as the basis, the preconditioner is the exact inverse of
    each class's Hessian block ``sum_i c_ik x~_i x~_i^T + lam P`` (intercept free): the shear
    moves the intercept out of the weights' block and changes nothing else."""
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(400, 6)) + 2.0).astype(np.float32)  # off-centre: the shear matters
    Z = rng.normal(size=(400, 3)) * 2
    p = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    c = p * (1 - p) / 400
    shared = curvature.SharedSubsample.of(X, seed=0)
    solve = curvature.inverse(curvature.class_blocks(c, shared, 10**9), lam=0.01, dim=6)
    augmented = np.hstack([X, np.ones((400, 1))]).astype(np.float64)
    penalty = np.diag([0.01] * 6 + [0.0])
    q = rng.normal(size=(3, 7))
    q -= q.mean(axis=0)
    expected = np.stack(
        [
            np.linalg.solve((augmented * c[:, k, None]).T @ augmented + penalty, q[k])
            for k in range(3)
        ]
    )
    expected -= expected.mean(axis=0)
    np.testing.assert_allclose(solve(q), expected, rtol=2e-3, atol=1e-6 * np.abs(expected).max())


def test_a_folds_share_of_the_subsample_gives_the_blocks_of_its_own_copy():
    """A fold reads the shared projected rows in place (``kept``); its blocks must equal those
    from a copy of just its rows."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 12)).astype(np.float32)
    shared = curvature.SharedSubsample.of(X, seed=0)
    train = np.sort(rng.choice(500, 400, replace=False))
    fold = shared.within(train)
    copy = curvature.SharedSubsample(fold.rows, shared.basis, shared.projected[fold.kept])
    Z = rng.normal(size=(len(fold.rows), 3))
    c = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True) / 400
    in_place = curvature.class_blocks(c, fold, 400)
    copied = curvature.class_blocks(c, copy, 400)
    for name in ("s", "mean", "scales", "values"):
        np.testing.assert_allclose(
            getattr(in_place, name), getattr(copied, name), rtol=1e-5, atol=1e-9
        )


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
