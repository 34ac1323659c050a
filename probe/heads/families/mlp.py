"""``--probe mlp``: one hidden layer (ReLU), early stopping on validation, seeded.

scikit-learn's ``MLPClassifier`` (adam) on standardised features; heads stay free of torch.
With validation data, the net is trained an epoch at a time (``partial_fit``) and the epoch
with the lowest validation log loss is kept (training stops ``patience`` epochs after it): the
validation split chooses the epoch as it chooses a logistic head's C. Without it, scikit-learn's
own early stopping holds out ``validation_fraction`` of the training rows (stratified, seeded)
and stops on their accuracy. ``alpha`` (L2) is fixed, not searched.

Prediction is numpy alone: standardise, ``relu(x W1 + b1) W2 + b2``, then a sigmoid (two
classes: one output, for ``classes_[1]``) or a softmax, as the scikit-learn net computes it.
A saved MLP head is its ``TENSOR_NAMES`` in safetensors (no pickle); ``serving_layers`` gives
the export its folded weights.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probe.errors import ProbeError
from probe.heads.families.common import checked, checked_val
from probe.heads.inputs import standardise
from probe.heads.maths import softmax

TENSOR_NAMES = ("hidden_weight", "hidden_bias", "out_weight", "out_bias", "mean", "scale")
MIN_HELD = 20  # fewer training rows: no internal early-stopping split, max_iter epochs


class MLPProbe(ClassifierMixin, BaseEstimator):
    """One-hidden-layer classifier: ``hidden`` ReLU units, L2 ``alpha``, seed ``random_state``.

    Attributes: ``classes_``, ``mean_``, ``scale_``, ``hidden_weight_`` (D, H),
    ``hidden_bias_`` (H,), ``out_weight_`` (H, K'), ``out_bias_`` (K',) with K' = 1 for two
    classes; ``search_`` (how training stopped), ``n_iter_`` (epochs), ``C_`` None.
    """

    def __init__(
        self,
        hidden=64,
        alpha=1e-4,
        max_iter=200,
        patience=10,
        learning_rate_init=1e-3,
        validation_fraction=0.1,
        random_state=0,
    ):
        self.hidden = hidden
        self.alpha = alpha
        self.max_iter = max_iter
        self.patience = patience
        self.learning_rate_init = learning_rate_init
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def _net(self, early_stopping: bool):
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(
            hidden_layer_sizes=(int(self.hidden),),
            alpha=self.alpha,
            max_iter=self.max_iter,
            learning_rate_init=self.learning_rate_init,
            early_stopping=early_stopping,
            validation_fraction=self.validation_fraction,
            n_iter_no_change=self.patience,
            random_state=self.random_state,
        )

    def fit(self, X, y, X_val=None, y_val=None, groups=None):
        """Fit; stop on (X_val, y_val) when given. ``groups`` are not used."""
        from sklearn.exceptions import ConvergenceWarning

        X, y, codes = checked(self, X, y)
        with np.errstate(over="ignore", invalid="ignore"):
            Z, self.mean_, self.scale_ = standardise(X, copy=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if X_val is not None:
                X_val, val_codes = checked_val(self, X_val, y_val)
                net = self._fit_on_validation(Z, codes, self._standardised(X_val), val_codes)
            else:
                early = len(codes) >= MIN_HELD
                net = self._net(early).fit(Z, codes)
                self.n_iter_ = int(net.n_iter_)
                how = f"{self.validation_fraction:g} of train (validation accuracy)"
                self.search_ = {
                    "method": f"early stopping on {how}" if early else "max_iter epochs",
                    "epochs": self.n_iter_,
                }
        self.hidden_weight_, self.out_weight_ = (np.asarray(w, np.float64) for w in net.coefs_)
        self.hidden_bias_, self.out_bias_ = (np.asarray(b, np.float64) for b in net.intercepts_)
        self.C_, self.solver_, self.fallback_reason_ = None, "sklearn-mlp-adam", None
        return self

    def _fit_on_validation(self, Z, codes, Z_val, val_codes):
        """Epoch by epoch; keep the epoch of lowest validation log loss."""
        net = self._net(False)
        every = np.arange(len(self.classes_))
        best, best_epoch, kept, epoch = np.inf, -1, None, 0
        for epoch in range(int(self.max_iter)):
            net.partial_fit(Z, codes, classes=every)
            proba = np.clip(net.predict_proba(Z_val), 1e-15, 1.0)
            loss = float(-np.mean(np.log(proba[np.arange(len(val_codes)), val_codes])))
            if loss < best - 1e-6:
                best, best_epoch = loss, epoch
                kept = (copy.deepcopy(net.coefs_), copy.deepcopy(net.intercepts_))
            elif epoch - best_epoch >= self.patience:
                break
        if kept is None:
            raise ArithmeticError("the MLP's validation loss was never finite")
        net.coefs_, net.intercepts_ = kept
        self.n_iter_ = best_epoch + 1
        self.search_ = {
            "method": "early stopping on validation log loss",
            "epochs": epoch + 1,
            "best_epoch": best_epoch + 1,
            "val_log_loss": best,
        }
        return net

    def _standardised(self, X) -> np.ndarray:
        return (np.asarray(X, np.float64) - self.mean_) / self.scale_

    def decision_function(self, X) -> np.ndarray:
        """Output-layer scores: (n,) for two classes (of classes_[1]), else (n, K)."""
        check_is_fitted(self, "out_weight_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        scores = np.empty((len(X), self.out_weight_.shape[1]))
        for start in range(0, len(X), 8192):
            block = self._standardised(X[start : start + 8192])
            hidden = np.maximum(block @ self.hidden_weight_ + self.hidden_bias_, 0.0)
            scores[start : start + 8192] = hidden @ self.out_weight_ + self.out_bias_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X) -> np.ndarray:
        from scipy.special import expit

        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = expit(scores)
            return np.column_stack([1.0 - positive, positive])
        return softmax(scores)

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        best = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[best]

    def refit(self):
        """A fresh net with the same settings and seed: what repeats and the control task fit."""
        return MLPProbe(**self.get_params())

    def out_of_fold_proba(self):
        return None


def tensors(clf: MLPProbe) -> dict:
    """The arrays a saved MLP head holds (``TENSOR_NAMES``)."""
    return {
        "hidden_weight": clf.hidden_weight_,
        "hidden_bias": clf.hidden_bias_,
        "out_weight": clf.out_weight_,
        "out_bias": clf.out_bias_,
        "mean": clf.mean_,
        "scale": clf.scale_,
    }


def from_tensors(found: dict, record: dict) -> MLPProbe:
    """A fitted ``MLPProbe`` from saved arrays; shapes that disagree are a ``ProbeError``."""
    clf = MLPProbe(hidden=int(found["hidden_weight"].shape[1]))
    clf.classes_ = np.asarray(record["classes"])
    clf.hidden_weight_, clf.hidden_bias_ = found["hidden_weight"], found["hidden_bias"]
    clf.out_weight_, clf.out_bias_ = found["out_weight"], found["out_bias"]
    clf.mean_, clf.scale_ = found["mean"], found["scale"]
    width, hidden = clf.hidden_weight_.shape
    outputs = 1 if len(clf.classes_) == 2 else len(clf.classes_)
    if (
        clf.hidden_bias_.shape != (hidden,)
        or clf.out_weight_.shape != (hidden, outputs)
        or clf.out_bias_.shape != (outputs,)
        or clf.mean_.shape != (width,)
        or clf.scale_.shape != (width,)
    ):
        raise ProbeError("MLP head weights do not fit together")
    clf.n_features_in_, clf.C_, clf.search_ = width, None, record.get("C_search") or {}
    return clf


def serving_layers(clf: MLPProbe) -> tuple[tuple, tuple]:
    """((W1 (D, H), b1 (H,)), (W2 (H, K'), b2 (K',))) with the standardisation folded into the
    first layer: ``((x - mean) / scale) W1 + b1 == x (W1 / scale[:, None]) + (b1 - (mean /
    scale) W1)``."""
    first = clf.hidden_weight_ / clf.scale_[:, None]
    bias = clf.hidden_bias_ - (clf.mean_ / clf.scale_) @ clf.hidden_weight_
    return (first, bias), (clf.out_weight_, clf.out_bias_)
