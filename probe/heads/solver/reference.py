"""scikit-learn's lbfgs behind the path's interface: the fast path's fallback and reference.

Cut from the path because it shares no code with it, only the contract (``solve``,
``snapshot``, ``restore``, ``logits``, ``W``, ``b``, ``converged``), which the estimator relies
on when the fast path meets a value it cannot use.
"""

from __future__ import annotations

import numpy as np

ABSENT_LOGIT = -1e3  # a class the rows do not have: probability 0, no overflow


class ReferencePath:
    """scikit-learn's lbfgs behind ``LogisticPath``'s interface: the fallback and reference.

    Same objective, same parametrisation (binary: one row; K classes: K rows, multinomial),
    warm-started from C to C. Its ``tol`` is a bound on the largest gradient entry of the
    mean-form objective, so ours (a Newton decrement) is mapped to a tighter one.
    """

    def __init__(self, X: np.ndarray, codes: np.ndarray, n_classes: int, sample_weight, seed=0):
        self.X, self.codes, self.sample_weight = X, codes, np.asarray(sample_weight, np.float64)
        self.binary = n_classes == 2
        self.k = 1 if self.binary else n_classes
        self.W = np.zeros((self.k, X.shape[1]))
        self.b = np.zeros(self.k)
        self.converged = True
        self.screened = False  # it has no screen: every C is solved to the end
        self._model = None

    def solve(
        self, C: float, tol: float, max_iter: int, rtol: float | None = None, screen=None
    ) -> int:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        if self._model is None:
            self._model = LogisticRegression(warm_start=True)
        self._model.set_params(C=C, tol=min(1e-4, 1e-2 * tol), max_iter=max(max_iter, 2000))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            self._model.fit(self.X, self.codes, sample_weight=self.sample_weight)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            self.converged = False
        self.W, self.b = self._full(self._model.coef_, self._model.intercept_)
        return int(np.max(self._model.n_iter_))

    def _full(self, coef, intercept) -> tuple[np.ndarray, np.ndarray]:
        """(W, b) over all K classes: scikit-learn fits the classes present (a fold may miss
        one, e.g. a class of two rows); a missing class gets weights 0 and a logit of
        ``ABSENT_LOGIT``, where its unpenalised intercept heads (probability 0)."""
        present = self._model.classes_.astype(int)
        if self.binary or len(present) == self.k:
            return coef.astype(np.float64), intercept.astype(np.float64)
        W, b = np.zeros((self.k, coef.shape[1])), np.full(self.k, ABSENT_LOGIT)
        W[present], b[present] = coef, intercept
        return W, b

    def start_from(self, W: np.ndarray, b: np.ndarray) -> None:
        """Start the next solve at (W, b), as ``LogisticPath.start_from`` does."""
        self.restore({"W": np.array(W, np.float64), "b": np.array(b, np.float64)})

    def snapshot(self) -> dict:
        return {"W": self.W.copy(), "b": self.b.copy()}

    def restore(self, state: dict) -> None:
        self.W, self.b = state["W"].copy(), state["b"].copy()
        if self._model is not None:  # the next solve warm-starts from here
            present = slice(None) if self.binary else self._model.classes_.astype(int)
            self._model.coef_, self._model.intercept_ = self.W[present], self.b[present]

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W.T + self.b  # (n, K')
