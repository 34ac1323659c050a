"""``--probe mass-mean`` and ``mass-mean-iid``: class-mean directions, and shrinkage LDA.

``mass-mean`` (Marks & Tegmark's mass-mean probe): on features standardised as every head's
are, the direction is the difference of the two class means; with K classes, each class
mean minus the grand mean (a nearest-centroid-style linear score per class). The directions
are fixed by the means alone; a logistic regression on the projections (1 number per row for
two classes, K for K classes; scikit-learn, weakly regularised) then sets their scale and the
biases, so the probabilities are calibrated on the training rows. The head is linear:
``coef_`` = calibration weights x unit directions.

``mass-mean-iid`` corrects the direction for the features' covariance: scikit-learn's
``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")`` (Ledoit-Wolf shrinkage) on the
standardised features; its ``coef_``, ``intercept_`` and its Gaussian-model probabilities.

Neither searches anything: ``C_`` is None and validation data only score the head.
"""

from __future__ import annotations

import numpy as np

from probe.heads.estimator import ProbeClassifier
from probe.heads.families.common import checked, class_means
from probe.heads.inputs import standardise

CALIBRATION_C = 1e4  # the calibrating regression's C: a few numbers, barely regularised


class MassMeanProbe(ProbeClassifier):
    """Difference-of-means (``iid=False``) or shrinkage-LDA (``iid=True``) linear head.

    Attributes beyond ``ProbeClassifier``'s: ``direction_`` (K', D) the unit class-mean
    directions in standardised units (mass-mean only).
    """

    def __init__(self, iid=False, class_weight=None, random_state=0):
        self.iid = iid
        self.class_weight = class_weight
        self.random_state = random_state

    def fit(self, X, y, X_val=None, y_val=None, groups=None):
        """Fit on the training rows; validation data and groups are not used (nothing is
        chosen)."""
        X, y, codes = checked(self, X, y)
        with np.errstate(over="ignore", invalid="ignore"):
            Z, self.mean_, self.scale_ = standardise(X, copy=True)
        if self.iid:
            self._fit_lda(Z, codes)
        else:
            self._fit_mass_mean(Z, codes)
        self.C_, self.n_iter_, self.fallback_reason_ = None, 0, None
        return self

    def _fit_mass_mean(self, Z, codes) -> None:
        from sklearn.linear_model import LogisticRegression

        k = len(self.classes_)
        means = class_means(Z, codes, k)
        if k == 2:
            directions = (means[1] - means[0])[None]  # (1, D)
        else:
            directions = means - Z.mean(axis=0, dtype=np.float64)  # (K, D)
        norms = np.linalg.norm(directions, axis=1, keepdims=True)
        directions = directions / np.where(norms > 0, norms, 1.0)
        projection = Z @ directions.T.astype(np.float32)  # (N, K')
        calibration = LogisticRegression(C=CALIBRATION_C, class_weight=self.class_weight)
        calibration.fit(projection.astype(np.float64), codes)
        self.direction_ = directions
        self.coef_ = calibration.coef_ @ directions  # (K', K') @ (K', D)
        self.intercept_ = calibration.intercept_.astype(np.float64)
        self.solver_ = "mass-mean"
        self.search_ = {
            "method": "mass-mean: class-mean difference of standardised features; scale and "
            "bias by a logistic regression on the projection (train)",
        }

    def _fit_lda(self, Z, codes) -> None:
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        k = len(self.classes_)
        priors = np.full(k, 1.0 / k) if self.class_weight == "balanced" else None
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto", priors=priors)
        lda.fit(Z, codes)
        self.coef_ = np.asarray(lda.coef_, np.float64)
        self.intercept_ = np.asarray(lda.intercept_, np.float64)
        self.solver_ = "lda-lsqr-ledoit-wolf"
        self.search_ = {
            "method": "shrinkage LDA (scikit-learn, lsqr, Ledoit-Wolf) on standardised features"
        }

    def refit(self):
        """A fresh head of the same kind: what repeats and the control task fit."""
        return MassMeanProbe(iid=self.iid, random_state=self.random_state)

    def out_of_fold_proba(self):
        return None
