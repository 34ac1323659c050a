"""The L-BFGS memory against the dense BFGS update it stands for (an independent formula)."""

from __future__ import annotations

import numpy as np

from probe.heads.solver.lbfgs import SCALE_BOUND, CurvaturePairs


def dense_bfgs(pairs, H0):
    """The inverse-Hessian BFGS recursion, written out as matrices."""
    H = H0.copy()
    eye = np.eye(len(H0))
    for s, y in pairs:
        rho = 1.0 / (y @ s)
        H = (eye - rho * np.outer(s, y)) @ H @ (eye - rho * np.outer(y, s)) + rho * np.outer(s, s)
    return H


def test_two_loop_with_a_scaled_preconditioner_equals_dense_bfgs():
    rng = np.random.default_rng(0)
    n, shape = 12, (2, 6)
    root = rng.normal(size=(n, n))
    hessian = root @ root.T + 0.5 * np.eye(n)  # the data term's curvature, SPD
    penalty = np.full(shape, 0.3)
    penalty[:, -1] = 0.0  # the intercept column is not penalised
    preconditioner = np.diag(rng.uniform(0.5, 2.0, n))  # a rough inverse Hessian
    memory = CurvaturePairs(memory=4)
    memory.set_penalty(penalty)
    full_pairs = []
    for _ in range(6):  # more pairs than the memory holds: the oldest are dropped
        step = rng.normal(size=shape)
        data_change = (hessian @ step.ravel()).reshape(shape)
        memory.add(step, data_change)
        full_pairs.append((step.ravel(), (data_change + penalty * step).ravel()))
    kept = full_pairs[-4:]
    s_new, y_new = kept[-1]
    scale = (s_new @ y_new) / (y_new @ preconditioner @ y_new)
    assert 1 / SCALE_BOUND < scale < SCALE_BOUND
    expected_H = dense_bfgs(kept, scale * preconditioner)

    def precondition(q):
        return (preconditioner @ q.ravel()).reshape(q.shape)

    grad = rng.normal(size=shape)
    result = memory.inverse_hessian_times(grad, precondition)
    np.testing.assert_allclose(result.ravel(), expected_H @ grad.ravel(), rtol=1e-10, atol=1e-12)
    # the secant condition of the newest pair holds exactly
    secant = memory.inverse_hessian_times(y_new.reshape(shape), precondition)
    np.testing.assert_allclose(secant.ravel(), s_new, rtol=1e-9, atol=1e-12)


def test_a_new_penalty_changes_every_stored_pair():
    rng = np.random.default_rng(1)
    shape = (1, 5)
    memory = CurvaturePairs(memory=10)
    memory.set_penalty(np.zeros(shape))
    steps = [rng.normal(size=shape) for _ in range(3)]
    for step in steps:
        memory.add(step, 2.0 * step)  # data curvature 2
    penalty = np.full(shape, 3.0)
    memory.set_penalty(penalty)  # curvature now 2 + 3 in every direction

    def identity(q):
        return q.copy()

    grad = rng.normal(size=shape)
    # on a quadratic with curvature 5 I, any pair makes H exactly I / 5 along its span and
    # the scaled identity 1/5 elsewhere: H grad = grad / 5
    np.testing.assert_allclose(memory.inverse_hessian_times(grad, identity), grad / 5, rtol=1e-10)
    snapshot = memory.snapshot()
    memory.clear()
    assert len(memory) == 0
    memory.restore(snapshot)
    assert len(memory) == 3
    np.testing.assert_allclose(memory.inverse_hessian_times(grad, identity), grad / 5, rtol=1e-10)
