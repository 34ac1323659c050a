"""What every probe family does before fitting: the checks ``ProbeClassifier.fit`` makes."""

from __future__ import annotations

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from probe.heads.inputs import InvalidTrainingData, check_finite


def checked(estimator, X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, class codes) after the house's checks; sets ``classes_`` and
    ``n_features_in_``. One class, NaN or inf: a one-line ``InvalidTrainingData``."""
    X, y = validate_data(estimator, X, y, dtype=[np.float32, np.float64], ensure_all_finite=False)
    check_finite(X, "X")
    check_classification_targets(y)
    estimator.classes_, codes = np.unique(y, return_inverse=True)
    if len(estimator.classes_) < 2:
        raise InvalidTrainingData(
            f"the training labels have one class ({estimator.classes_[0]!r}); "
            "a classifier needs at least 2 classes"
        )
    return X, y, codes


def checked_val(estimator, X_val, y_val) -> tuple[np.ndarray, np.ndarray]:
    """Validation (X, class codes); labels the training rows lack are a one-line error."""
    X_val = validate_data(
        estimator, X_val, reset=False, dtype=[np.float32, np.float64], ensure_all_finite=False
    )
    check_finite(X_val, "validation X")
    y_val = np.asarray(y_val).ravel()
    known = np.isin(y_val, estimator.classes_)
    if not known.all():
        unseen = sorted({str(v) for v in y_val[~known]})[:5]
        raise InvalidTrainingData(f"validation labels not in the training labels: {unseen}")
    return X_val, np.searchsorted(estimator.classes_, y_val)


def class_means(Z: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """(k, D) float64 mean of each class's rows."""
    means = np.zeros((k, Z.shape[1]))
    for c in range(k):
        means[c] = Z[codes == c].mean(axis=0, dtype=np.float64)
    return means
