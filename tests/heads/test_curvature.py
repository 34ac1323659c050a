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
