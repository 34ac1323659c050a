"""What a sweep row reports beyond its accuracy: intervals, a selection loss, repeats,
memorisation capacity and codelength. Runs inside the row's worker, on features it already
read.

Repeats and memorisation refit with the row's chosen C (no new search): they describe the
probe the row chose; a ``--probe`` family's row refits its own family (``refit_spec``). MDL
does not: each online block chooses its own C on its own prefix (``probe.research.mdl``),
since a C chosen on all the data would leak into the code. MDL is the logistic head's
codelength: other families' rows leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.heads.families import new_head, refit_spec
from probe.heads.metrics import positive_scores
from probe.research.uncertainty import (
    RESAMPLES,
    mean_and_sd,
    metric_intervals,
    per_example_log_loss,
)


@dataclass(frozen=True)
class Measures:
    """Which measures a row computes, and their seeds."""

    resamples: int = RESAMPLES  # bootstrap resamples of each CI
    seed: int = 0
    repeats: int = 0  # refits on bootstrap resamples of the training rows
    control: dict | None = None  # split -> hashed labels (probe.research.control.control_task)
    mdl: bool = False
    cv: int = 5  # folds of the out-of-fold log loss when there is no validation set
    clusters: dict | None = None  # split -> cluster ids (groups, sentences): CIs draw them
    groups: dict | None = None  # split -> group ids no fold, resample or MDL block parts


def held_out_name(features: dict) -> str | None:
    """The split that scores repeats: test, else validation."""
    return "test" if "test" in features else "val" if "val" in features else None


def row_measures(
    classifier, features: dict, labels: dict, measures: Measures, probabilities: dict | None = None
):
    """(row fields, per-example selection scores or None: see ``selection_scores``).

    ``features`` and ``labels`` map split names to (n, D) arrays and (n,) labels;
    ``probabilities`` the held-out splits to (n, K) ``predict_proba`` (computed when absent).
    Every metric of ``probe.heads.metrics.METRICS`` the task has gets a ``SPLIT_METRIC_ci``.
    """
    fields: dict = {}
    classes = classifier.classes_
    codes = {name: np.searchsorted(classes, np.asarray(y)) for name, y in labels.items()}
    probabilities = dict(probabilities or {})
    for name in ("val", "test"):
        if name in features:
            if name not in probabilities:
                probabilities[name] = classifier.predict_proba(features[name])
            predicted = np.searchsorted(classes, classifier.predict(features[name]))
            ci = metric_intervals(
                codes[name],
                predicted,
                len(classes),
                scores=positive_scores(probabilities[name]),
                n_resamples=measures.resamples,
                seed=measures.seed,
                clusters=(measures.clusters or {}).get(name),
            )
            fields.update({f"{name}_{metric}_ci": ci[metric] for metric in ci})
    scores = selection_scores(classifier, features, codes, measures, probabilities.get("val"))
    fields["selection_log_loss"] = float(scores["log_loss"].mean()) if scores else None
    held = held_out_name(features)
    C = refit_spec(classifier)  # the chosen C; a --probe family's head: its refit
    if measures.repeats and held is not None:
        fields.update(repeat_fits(features, labels, held, C, measures))
    if hasattr(measures.control, "row_fields"):  # word types (probe.research.words.control)
        fields.update(measures.control.row_fields(classifier, features, labels))
    elif measures.control is not None:
        from probe.research.control import memorisation_capacity

        fields.update(memorisation_capacity(features["train"], measures.control, C))
    if measures.mdl and not callable(C):
        from probe.research.mdl import online_codelength

        fields.update(
            online_codelength(
                features["train"],
                labels["train"],
                seed=measures.seed,
                groups=_train_groups(measures),
            )
        )
    return fields, scores


def selection_scores(
    classifier, features, codes, measures: Measures, val_probabilities=None
) -> dict | None:
    """Per-example scores on validation data, or out of fold on train (k-fold at the row's
    C) when there is none; None when too few rows per class. {"log_loss", "correct" (n,)
    float; "truth", "predicted" (n,) class codes; "positive" (n,) scores of class 1, None
    beyond two classes}: what ``probe.research.selection`` compares rows by."""
    if "val" in features:
        probabilities = val_probabilities
        if probabilities is None:
            probabilities = classifier.predict_proba(features["val"])
        y = codes["val"]
    else:
        probabilities = search_out_of_fold(classifier, measures)
        if probabilities is None:
            probabilities = out_of_fold_probabilities(
                features["train"], codes["train"], refit_spec(classifier), measures
            )
        if probabilities is None:
            return None
        y = codes["train"]
    predicted = probabilities.argmax(axis=1)
    return {
        "log_loss": per_example_log_loss(probabilities, y),
        "correct": (predicted == y).astype(np.float64),
        "truth": np.asarray(y, np.int32),
        "predicted": predicted.astype(np.int32),
        "positive": positive_scores(probabilities),
    }


def _train_groups(measures: Measures):
    return (measures.groups or {}).get("train")


def search_out_of_fold(classifier, measures: Measures):
    """The out-of-fold probabilities the C search already computed (its folds are those
    ``out_of_fold_probabilities`` would draw: same stratified (group) split, seed and k), or
    None when C was not searched that way. Saves k fits per row."""
    proba = getattr(classifier, "out_of_fold_proba", None)
    same_folds = getattr(classifier, "random_state", None) == measures.seed and (
        getattr(classifier, "cv", None) == measures.cv
    )
    return proba() if proba is not None and same_folds else None


def out_of_fold_probabilities(X, codes, C, measures: Measures):
    """(n, K) probabilities of each training row from a probe that did not see it (``C``: a
    number, or a family head's ``refit``: see ``probe.heads.families.new_head``)."""
    from probe.heads.search import fold_count, fold_rows

    k = int(codes.max()) + 1
    groups = _train_groups(measures)
    folds = fold_count(codes, measures.cv, groups) if len(np.unique(codes)) == k else 0
    if folds < 2:
        return None
    probabilities = np.zeros((len(codes), k))
    for train_rows, held_rows in fold_rows(codes, folds, measures.seed, groups):
        fold = new_head(C).fit(X[train_rows], codes[train_rows])
        probabilities[np.ix_(held_rows, fold.classes_)] = fold.predict_proba(X[held_rows])
    return probabilities


def repeat_fits(features, labels, held: str, C: float, measures: Measures) -> dict:
    """Mean and sd of held-out accuracy and macro F1 over refits on bootstrap resamples
    of the training rows, whole groups at a time (seeded: seed, seed + 1, ...)."""
    from probe.heads.metrics import classification_report

    X, y = features["train"], np.asarray(labels["train"])
    names = sorted(set(y.tolist()))
    accuracy, macro_f1 = [], []
    for repeat in range(measures.repeats):
        rows = bootstrap_rows(len(y), _train_groups(measures), measures.seed + 1 + repeat)
        if len(np.unique(y[rows])) < 2:
            continue
        refit = new_head(C).fit(X[rows], y[rows])
        report = classification_report(labels[held], refit.predict(features[held]), names)
        accuracy.append(report["accuracy"])
        macro_f1.append(report["macro_f1"])
    if not accuracy:
        return {"repeats": 0}
    (acc_mean, acc_sd), (f1_mean, f1_sd) = mean_and_sd(accuracy), mean_and_sd(macro_f1)
    return {
        "repeats": len(accuracy),
        "repeat_split": held,
        "repeat_accuracy_mean": acc_mean,
        "repeat_accuracy_sd": acc_sd,
        "repeat_macro_f1_mean": f1_mean,
        "repeat_macro_f1_sd": f1_sd,
    }


def bootstrap_rows(n: int, groups, seed: int) -> np.ndarray:
    """Row positions of one bootstrap resample: ``n`` rows drawn with replacement, or, with
    ``groups``, as many groups, each bringing all its rows."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.integers(0, n, n)
    order = np.argsort(groups, kind="stable")
    _, starts, sizes = np.unique(np.asarray(groups)[order], return_index=True, return_counts=True)
    drawn = rng.integers(0, len(starts), len(starts))
    return np.concatenate([order[starts[g] : starts[g] + sizes[g]] for g in drawn])
