"""``--probe sparse:K``: the K neurons ranked best on the training rows, a logistic head on them.

Ranking uses the training rows only (validation and test data never choose a neuron): two
classes by the absolute difference of the class means in standardised units (an effect
size), K classes by the ANOVA F statistic (scikit-learn's ``f_classif``); constant columns
rank last. A ``ProbeClassifier`` is fitted on the K columns, its C searched as any logistic
head's (on validation data, else by cross-validation on train), and the head is exposed at
full width, zeros beyond its neurons: saved, served and exported as any linear head.
``neurons_`` lists the neurons in rank order.

The C search's out-of-fold probabilities (a sweep without validation data scores rows by
them) come from folds of rows ranked on all the training rows: slightly optimistic for
sparse rows, as any selection done before cross-validation is.
"""

from __future__ import annotations

import numpy as np

from probe.errors import ProbeError
from probe.heads.estimator import ProbeClassifier
from probe.heads.families.common import checked, class_means
from probe.heads.inputs import standardise


def neuron_scores(X: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """(D,) how well each column separates the classes on (X, codes); 0 for constant ones.

    ``X`` standardised; ``k`` classes: 2 -> |mean_1 - mean_0|, more -> ANOVA F."""
    if k == 2:
        means = class_means(X, codes, 2)
        return np.abs(means[1] - means[0])
    from sklearn.feature_selection import f_classif

    with np.errstate(divide="ignore", invalid="ignore"):
        scores = f_classif(X, codes)[0]
    return np.nan_to_num(scores, nan=0.0, posinf=np.finfo(np.float64).max)


def rank_neurons(X: np.ndarray, codes: np.ndarray, k: int, top: int) -> tuple:
    """(the ``top`` best columns in rank order, their scores); ties keep column order."""
    scores = neuron_scores(X, codes, k)
    order = np.argsort(-scores, kind="stable")[:top]
    return order, scores[order]


class SparseProbe(ProbeClassifier):
    """A logistic head on the ``k`` training-ranked neurons, exposed at full width.

    Attributes beyond ``ProbeClassifier``'s: ``neurons_`` (k,) column indices in rank order,
    ``neuron_scores_`` their ranking scores, ``head_`` the logistic head on those columns.
    """

    def __init__(
        self,
        k=1,
        C=None,
        Cs=None,
        class_weight=None,
        cv=5,
        tol=1e-3,
        max_iter=500,
        random_state=0,
        stop_early=True,
        exact=False,
    ):
        self.k = k
        super().__init__(
            C=C,
            Cs=Cs,
            class_weight=class_weight,
            cv=cv,
            tol=tol,
            max_iter=max_iter,
            random_state=random_state,
            stop_early=stop_early,
            exact=exact,
        )

    def fit(self, X, y, X_val=None, y_val=None, groups=None):
        X, y, codes = checked(self, X, y)
        width = X.shape[1]
        if not 1 <= int(self.k) <= width:
            raise ProbeError(f"--probe sparse:{self.k} needs 1 to {width} neurons (features)")
        with np.errstate(over="ignore", invalid="ignore"):
            Z, mean, scale = standardise(X, copy=True)
        self.neurons_, self.neuron_scores_ = rank_neurons(Z, codes, len(self.classes_), self.k)
        del Z
        params = self.get_params()
        params.pop("k")
        head = ProbeClassifier(**params)
        columns = self.neurons_
        X_val = None if X_val is None else np.asarray(X_val)[:, columns]
        head.fit(X[:, columns], y, X_val, y_val, groups=groups)
        self.head_ = head
        self.coef_ = np.zeros((head.coef_.shape[0], width))
        self.coef_[:, columns] = head.coef_
        self.intercept_ = head.intercept_.copy()
        self.mean_, self.scale_ = mean, scale
        self.mean_[columns], self.scale_[columns] = head.mean_, head.scale_
        self.C_, self.search_, self.n_iter_ = head.C_, head.search_, head.n_iter_
        self.solver_, self.fallback_reason_ = head.solver_, head.fallback_reason_
        return self

    def out_of_fold_proba(self):
        """The logistic head's out-of-fold probabilities (see the module's note)."""
        return self.head_.out_of_fold_proba()

    def refit(self):
        """A fresh sparse head with the same K at the chosen C: it ranks its own rows."""
        return SparseProbe(self.k, C=self.C_, random_state=self.random_state, cv=self.cv)
