"""The bag-of-words baseline: TF-IDF word 1-2 grams and scikit-learn's logistic regression,
C chosen by the probe's rule (``probe.heads.maths.pick_C``) on the probe's grid, so the
comparison differs in the features only.
"""

from __future__ import annotations

import time

import numpy as np

from probe.heads.cached import CachedData
from probe.research.baselines.scoring import held_out_split, scored_row
from probe.research.uncertainty import RESAMPLES

BOW_METHOD = "TF-IDF word 1-2 grams, sublinear tf + scikit-learn LogisticRegression"
BOW_NAME = f"bag of words ({BOW_METHOD})"


def bag_of_words_row(
    data: CachedData,
    texts: dict,
    *,
    C=None,
    Cs=None,
    class_weight=None,
    cv: int = 5,
    exact: bool = False,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """TF-IDF + logistic regression on the training texts, C chosen as the probe's is (on
    validation texts, else by k-fold that keeps every group whole). ``exact`` is accepted
    with the sweep's head options: scikit-learn solves every C to its own tolerance."""
    from probe.heads.estimator import DEFAULT_CS
    from probe.heads.maths import pick_C

    started = time.perf_counter()
    classes = np.unique(data.train.labels)
    train_texts, train_labels = texts["train"], np.asarray(data.train.labels)
    grid = [float(C)] if C is not None else [float(c) for c in (Cs or DEFAULT_CS)]
    search = {"method": "given", "Cs": grid}
    if len(grid) > 1:
        if data.val is not None:
            scores = _path_scores(
                train_texts,
                train_labels,
                texts["val"],
                np.asarray(data.val.labels),
                grid,
                class_weight,
            )
            search = {"method": "validation"}
        else:
            groups = data.train.group_ids()
            scores, search = _cross_validated_scores(
                train_texts, train_labels, grid, class_weight, cv, groups
            )
        search.update(
            {"Cs": grid, "accuracy": scores[:, 0].tolist(), "log_loss": scores[:, 1].tolist()}
        )
        chosen = pick_C(grid, scores)
    else:
        chosen = grid[0]
    model = _bow_pipeline(chosen, class_weight).fit(train_texts, train_labels)
    held = held_out_split(data)
    row = {
        "baseline": "bag of words",
        "method": BOW_NAME,
        "C": chosen,
        "C_search": search.get("method"),
        "vocabulary": len(model.named_steps["tfidf"].vocabulary_),
    }
    if data.val is not None and held is not data.val:
        row["val_accuracy"] = float(np.mean(model.predict(texts["val"]) == data.val.labels))
    scored = scored_row(row, held, model.predict(texts[held.name]), classes, resamples, seed)
    scored["seconds"] = time.perf_counter() - started
    return scored


def _bow_pipeline(C: float, class_weight=None, warm_start: bool = False):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            (
                "logistic",
                LogisticRegression(
                    C=C, class_weight=class_weight, max_iter=1000, warm_start=warm_start
                ),
            ),
        ]
    )


def _path_scores(train_texts, train_labels, held_texts, held_labels, grid, class_weight):
    """(len(grid), 2): accuracy and mean log loss on the held texts, C warm-started upward."""
    from sklearn.metrics import log_loss

    vectoriser = _bow_pipeline(1.0).named_steps["tfidf"].fit(train_texts)
    X, X_held = vectoriser.transform(train_texts), vectoriser.transform(held_texts)
    logistic = _bow_pipeline(1.0, class_weight, warm_start=True).named_steps["logistic"]
    scores = []
    for C in sorted(grid):
        logistic.set_params(C=C).fit(X, train_labels)
        known = np.isin(held_labels, logistic.classes_)
        probabilities = logistic.predict_proba(X_held[known])
        scores.append(
            (
                float(np.mean(logistic.predict(X_held) == held_labels)),
                log_loss(held_labels[known], probabilities, labels=logistic.classes_),
            )
        )
    order = np.argsort(np.argsort(grid))  # back to the grid's order
    return np.asarray(scores)[order]


def _cross_validated_scores(texts, labels, grid, class_weight, cv, groups=None):
    """The probe's folds (``probe.heads.search.fold_rows``, seed 0; grouped when given)."""
    from probe.heads.search import fold_count, fold_rows

    codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    folds = fold_count(codes, cv, groups)
    if folds < 2:
        return np.tile([0.0, 0.0], (len(grid), 1)), {"method": "default (too few per class)"}
    texts = np.asarray(texts, dtype=object)
    total = np.zeros((len(grid), 2))
    for train_rows, held_rows in fold_rows(codes, folds, 0, groups):
        total += _path_scores(
            list(texts[train_rows]),
            labels[train_rows],
            list(texts[held_rows]),
            labels[held_rows],
            grid,
            class_weight,
        )
    return total / folds, {"method": f"{folds}-fold cross-validation"}
