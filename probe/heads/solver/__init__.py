"""The solver: penalised logistic regression along a path of Cs, fast and never wrong.

In: a standardised float32 matrix, class codes, sample weights, Cs. Out: a path whose
``W``, ``b`` minimise scikit-learn's objective at each C it was asked to solve. Why ours:
scikit-learn's float64 lbfgs needs hundreds to thousands of passes over the data per fit on
hidden states (they are badly conditioned), and a sweep fits 62 heads with a C search each.

- ``path``: the solver itself (``LogisticPath``);
- ``lbfgs``: the curvature pairs and the inverse-Hessian product;
- ``curvature``: the preconditioner, estimated on a subsample the folds of a search share;
- ``linalg``: guarded factorisations: degenerate features (constant or duplicated columns,
  rank-deficient or wide matrices) make the estimate singular, and every factorisation
  there survives that;
- ``reference``: scikit-learn's lbfgs behind the same interface. A non-finite value anywhere
  raises ``SolverFailure``, on which the estimator refits with it: slower, never wrong.
- ``ridge``: the regression heads' solver, apart from the above: ridge for every penalty and
  target from one eigendecomposition per fold (``probe.heads.tasks.regression``).
"""

from probe.heads.solver.curvature import PRECONDITIONER_ROWS, SharedSubsample
from probe.heads.solver.linalg import SolverFailure
from probe.heads.solver.onevsrest import OneVsRestPath as OneVsRestPath
from probe.heads.solver.path import CONFIRM_RTOL, SEARCH_TOL, LogisticPath
from probe.heads.solver.reference import ReferencePath

__all__ = [
    "CONFIRM_RTOL",
    "PRECONDITIONER_ROWS",
    "SEARCH_TOL",
    "LogisticPath",
    "ReferencePath",
    "SharedSubsample",
    "SolverFailure",
]
