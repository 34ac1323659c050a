"""One head on one (layer, pool), and every layer x pool of a cache: the layer sweep.

``fit_one`` fits a head on one (layer, pool); ``run_sweep`` fits every stored layer x pool in
parallel (joblib) and picks the best on validation data (or, without it, out of fold on
train: ``probe.research.selection``). Test data are scored, never used to choose. A row that
cannot be fitted (``ROW_FAILURES``) is a row with its error, listed in the result's
``errors``; a bug stops the sweep. The table and figure of a sweep's result are
``probe.research.sweep_report``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from probe.errors import ProbeError, RowsFailed, one_line, short_reason
from probe.features.layers import RowSpec, parse_row_spec
from probe.features.pooling import POOL_NAMES, check_pool
from probe.heads.cached import CachedData
from probe.heads.metrics import METRICS, positive_scores
from probe.messages import progress, say, warn
from probe.research.uncertainty import RESAMPLES

# What one row's fit may raise and leave the other rows standing: its data (ProbeError: NaN or
# inf features, one class), its numbers (ArithmeticError, the solver's SolverFailure among
# them; numpy's LinAlgError and scikit-learn's checks, both ValueErrors) and its size
# (MemoryError: a wide concat row). Anything else (TypeError, AttributeError, KeyError...) is
# a bug: it stops the sweep, with its traceback.
ROW_FAILURES = (ProbeError, ArithmeticError, np.linalg.LinAlgError, ValueError, MemoryError)

# --- one head ---------------------------------------------------------------------------------


@dataclass
class FitResult:
    layer: int | str  # a model layer; "mix" or "12+18+24" for a multi-layer head
    pool: str
    classifier: object  # ProbeClassifier
    reports: dict  # split -> classification report (val and test; train: accuracy only)
    seconds: float  # fit time, C search included, features read excluded
    cpu_seconds: float = 0.0  # CPU time of the whole task, reading and scoring included
    measures: dict = field(default_factory=dict)  # row fields from probe.research.measures
    scores: dict | None = None  # per-example selection scores (val, or out of fold)
    layers_info: dict = field(default_factory=dict)  # multi-layer heads: layers, mix weights
    combiner: object = None  # probe.heads.mix.LayerCombiner of a multi-layer head
    predictions: dict = field(default_factory=dict)  # split -> predicted labels (val, test)

    @property
    def label_names(self) -> list[str]:
        return [str(c) for c in self.classifier.classes_]

    def summary(self) -> dict:
        """One row of a sweep table."""
        row = {"layer": self.layer, "pool": self.pool, "C": self.classifier.C_}
        search = self.classifier.search_
        binary = len(self.classifier.classes_) == 2
        for split in ("val", "test"):
            report = self.reports.get(split)
            for metric in METRICS if binary else METRICS[:3]:  # AUROC, AP: two classes
                row[f"{split}_{metric}"] = report.get(metric) if report else None
        if row["val_accuracy"] is None and "accuracy" in search:  # chosen by cross-validation
            row["val_accuracy"] = search["accuracy"][search["Cs"].index(self.classifier.C_)]
        row["train_accuracy"] = self.reports["train"]["accuracy"]
        row["seconds"] = self.seconds
        row["cpu_seconds"] = self.cpu_seconds
        row["solver"] = getattr(self.classifier, "solver_", None)  # or "sklearn-fallback":
        row["fallback_reason"] = getattr(self.classifier, "fallback_reason_", None)  # why
        row.update(self.layers_info)
        row.update(self.measures)
        return row


def row_features(data: CachedData, layer, pool: str) -> tuple:
    """(row name, {split: float32 (n, D)}, multi-layer info, combiner or None) of one row.

    ``layer`` is a stored model layer, or a resolved multi-layer ``RowSpec``.
    """
    if isinstance(layer, RowSpec):
        from probe.heads.mix import multi_layer_features

        features, info, combiner = multi_layer_features(data, layer, pool)
        return layer.name, features, {"kind": layer.kind, **info}, combiner
    if layer not in data.layers:
        raise ProbeError(
            f"layer {layer} is not in the cache; stored layers: {', '.join(map(str, data.layers))}"
        )
    read = {}  # one file split into train/val/test: its layer read once (0.4 s at 31k rows)
    return (
        layer,
        {name: s.features(layer, pool, read) for name, s in data.splits().items()},
        {},
        None,
    )


def _refits_on_train(measures, data: CachedData) -> bool:
    """Whether the measures fit again on the raw training features (then the fit must not
    standardise them in place)."""
    if measures is None:
        return False
    return bool(
        measures.repeats or measures.control is not None or measures.mdl or data.val is None
    )


def fit_one(
    data: CachedData,
    layer,
    pool: str,
    *,
    C: float | None = None,
    Cs=None,
    class_weight: str | None = None,
    cv: int = 5,
    exact: bool = False,
    train_accuracy: bool = True,
    measures=None,
) -> FitResult:
    """A head on one stored (layer, pool); C chosen on val (or by CV), scored on val and test.

    ``layer`` may be a multi-layer ``RowSpec`` (see ``row_features``). ``measures``
    (``probe.research.measures.Measures``) adds intervals, the selection loss and the research
    measures to the row. ``train_accuracy=False`` (the sweep) skips scoring the training set
    and lets the fit standardise the features in place: on 67k x 576 each saves ~0.1-0.2 s.
    """
    from probe.heads.estimator import ProbeClassifier
    from probe.heads.metrics import classification_report

    check_pool(pool)
    cpu_started = time.process_time()
    name, features, info, combiner = row_features(data, layer, pool)
    X = features["train"]
    val = (features["val"], data.val.labels) if data.val is not None else (None, None)
    started = time.perf_counter()
    copy_X = train_accuracy or _refits_on_train(measures, data)
    classifier = ProbeClassifier(
        C=C, Cs=Cs, class_weight=class_weight, cv=cv, copy_X=copy_X, exact=exact
    )
    classifier.fit(X, data.train.labels, *val, groups=data.train.group_ids())
    seconds = time.perf_counter() - started
    names = [str(c) for c in classifier.classes_]
    reports = {"train": {"n": len(data.train), "accuracy": None}}
    if train_accuracy:
        reports["train"]["accuracy"] = float(np.mean(classifier.predict(X) == data.train.labels))
    predictions, probabilities = {}, {}
    for split in (data.val, data.test):
        if split is not None:
            probabilities[split.name] = proba = classifier.predict_proba(features[split.name])
            predictions[split.name] = predicted = classifier.predict(features[split.name])
            positive = positive_scores(proba)  # two classes: AUROC and average precision
            reports[split.name] = classification_report(split.labels, predicted, names, positive)
    fields, scores = {}, None
    if measures is not None:
        from probe.research.measures import row_measures

        labels = {split_name: s.labels for split_name, s in data.splits().items()}
        fields, scores = row_measures(classifier, features, labels, measures, probabilities)
    return FitResult(
        name,
        pool,
        classifier,
        reports,
        seconds,
        time.process_time() - cpu_started,
        fields,
        scores,
        info,
        combiner=combiner,
        predictions=predictions,
    )


def head_meta(data: CachedData, result: FitResult) -> dict:
    """What ``save_head`` records next to the weights."""
    return {
        "model": data.model,
        "model_fingerprint": data.model_fingerprint,
        "layer": result.layer,
        "pool": result.pool,
        "max_length": data.max_length,
        **data.text_format,
        "label_names": result.label_names,
        "cache_key": data.cache_keys["train"],
        "cache_keys": data.cache_keys,
        "data": data.sources,
        "n": {name: len(split) for name, split in data.splits().items()},
        "metrics": {k: v for k, v in result.reports.items() if k != "train"},
        "train_accuracy": result.reports["train"]["accuracy"],
        "C_search": result.classifier.search_,
        "grouping": getattr(data, "grouping", {}),
        "train_seconds": result.seconds,
        **result.layers_info,
    }


# --- every layer x pool -----------------------------------------------------------------------


def numbered_fit(index: int, *args, **kwargs) -> tuple[int, FitResult | str]:
    """``fit_one`` tagged with its task index: results arrive in completion order. A head
    that cannot be fitted (``ROW_FAILURES``) comes back as its one-line error: one bad layer
    loses one row; a bug stops the sweep."""
    try:
        return index, fit_one(*args, **kwargs)
    except ROW_FAILURES as error:  # this row's data or numbers: reported as the row's error
        return index, f"{type(error).__name__}: {short_reason(error, 160)}"


def row_name(layer, pool: str) -> str:
    """A row as messages name it: ``layer 12 mean``, ``layer 12+18+24 last``, ``layer mix``."""
    return f"layer {layer.name if isinstance(layer, RowSpec) else layer} {pool}"


def row_errors(rows: list[dict], prefix: str = "") -> list[dict]:
    """``{"row": "layer 12 mean", "error": "LinAlgError: ..."}`` per row that failed: the
    ``errors`` of a sweep's result, which ``probe sweep`` prints and exits non-zero on."""
    return [
        {"row": prefix + row_name(row["layer"], row["pool"]), "error": row["error"]}
        for row in rows
        if row.get("error")
    ]


def report_errors(errors: list[dict], keep_going: bool = False) -> None:
    """Each row that could not be fitted as one line (``warn``: shown even with -q), then
    ``RowsFailed`` (exit status 3) unless ``keep_going``. The commands call this once their
    files are written and their result printed; ``run_sweep`` only returns the ``errors``."""
    for error in errors:
        warn(f"failed: {error['row']}: {error['error']}")
    if errors and not keep_going:
        raise RowsFailed(
            f"{len(errors)} row(s) could not be fitted (listed above); the other rows and the "
            "files are written; --keep-going exits 0"
        )


def say_fallback(result: FitResult, prefix: str = "") -> None:
    """One line when scikit-learn's solver fitted a head because the fast one failed (the
    head is right, only slower to fit; its row and head file record why)."""
    classifier = result.classifier
    if getattr(classifier, "solver_", None) == "sklearn-fallback":
        reason = one_line(classifier.fallback_reason_ or "no reason recorded", 120)
        say(
            f"{prefix}{row_name(result.layer, result.pool)}: fast solver failed ({reason}); "
            "fitted with scikit-learn's lbfgs"
        )


def error_row(layer, pool: str, error: str) -> dict:
    """The row of a head that could not be fitted: its error, no metrics."""
    if isinstance(layer, RowSpec):
        layer = layer.name
    return {
        "layer": layer,
        "pool": pool,
        "C": None,
        "val_accuracy": None,
        "val_macro_f1": None,
        "test_accuracy": None,
        "test_macro_f1": None,
        "error": error,
    }


def run_sweep(
    data: CachedData,
    layers: list[int] | None = None,
    pools=POOL_NAMES,
    *,
    n_jobs: int | None = None,
    C: float | None = None,
    Cs=None,
    class_weight: str | None = None,
    cv: int = 5,
    exact: bool = False,
    multi=(),
    resamples: int = RESAMPLES,
    seed: int = 0,
    repeats: int = 0,
    control: bool = False,
    mdl: bool = False,
    prefer_early: bool = False,
    baselines=None,
    metric: str | None = None,
) -> dict:
    """Fit every (layer, pool) in parallel, plus ``multi`` heads (row specs such as ``mix`` or
    ``12,18,24``) per pool; choose one row by validation log loss, or by the highest
    validation ``metric`` (accuracy, macro_f1, balanced_accuracy, auroc), which then heads
    the summary (default: accuracy).

    See ``probe.research.selection`` for the choice and ``probe.research.measures`` for what each
    row reports (CIs always; ``repeats``, ``control`` and ``mdl`` on request).
    ``baselines`` (``probe.research.baselines.inputs.prepare_baselines``) adds the majority,
    bag-of-words and random-weights rows, and every row's selectivity against them.
    Progress goes to ``probe.messages`` (shown where its ``say`` lines are).
    """
    import os

    from joblib import Parallel, delayed

    from probe.research.measures import Measures
    from probe.research.selection import check_metric, select_row

    if data.val is None and (C is not None or (Cs is not None and len(Cs) < 2)):
        raise ProbeError("with a fixed --C the sweep needs --val data to choose a layer")
    n_classes = len(np.unique(data.train.labels))
    check_metric(metric, n_classes)
    layers = list(data.layers) if layers is None else [data.layer(spec) for spec in layers]
    for pool in pools:
        check_pool(pool)
    multi = [parse_row_spec(spec).resolved(data.layer, layers) for spec in multi]
    labels = None
    if control:
        from probe.research.control import control_task

        labels = control_task(data)
    groups = {name: split.group_ids() for name, split in data.splits().items()}
    measures = Measures(
        resamples=resamples,
        seed=seed,
        repeats=repeats,
        control=labels,
        mdl=mdl,
        cv=cv,
        clusters=groups,  # a group is drawn whole by every interval (None: rows)
        groups=groups,
    )
    if hasattr(data, "word_measures"):  # word rows: sentence clusters, control per word type
        measures = data.word_measures(measures)
    tasks = [(layer, pool) for layer in layers for pool in pools]
    tasks += [(spec, pool) for spec in multi for pool in pools]
    n_jobs = n_jobs or min(len(os.sched_getaffinity(0)), len(tasks))
    started = time.perf_counter()
    results = [None] * len(tasks)
    head = {"C": C, "Cs": Cs, "class_weight": class_weight, "cv": cv, "exact": exact}
    finished = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(numbered_fit)(
            index, data, layer, pool, train_accuracy=False, measures=measures, **head
        )
        for index, (layer, pool) in enumerate(tasks)
    )
    with progress(len(tasks), "sweep", unit="heads", workers=n_jobs) as bar:
        for index, result in finished:  # in completion order: one update per finished head
            results[index] = result
            bar.update()
    seconds = time.perf_counter() - started
    fitted = [i for i, result in enumerate(results) if isinstance(result, FitResult)]
    if not fitted:
        first = row_name(*tasks[0])
        raise ProbeError(f"every head of the sweep failed; the first, {first}: {results[0]}")
    for i in fitted:  # in the parent process: the workers' lines would not reach the user
        say_fallback(results[i])
    rows = [
        result.summary() if isinstance(result, FitResult) else error_row(*task, result)
        for task, result in zip(tasks, results, strict=True)
    ]
    selection_split = "val" if data.val is not None else "train"  # where the scores are
    choice = select_row(
        [rows[i] for i in fitted],
        [results[i].scores for i in fitted],
        metric=metric,
        n_classes=n_classes,
        prefer_early=prefer_early,
        resamples=resamples,
        seed=seed,
        clusters=(measures.clusters or {}).get(selection_split),
    )
    best_index = fitted[choice.pop("index")]
    best = results[best_index]
    chance = float(np.unique(data.train.labels, return_counts=True)[1].max() / len(data.train))
    extra, errors = {}, row_errors(rows)
    if baselines is not None:
        from probe.research.baselines.selectivity import with_baselines

        extra["baselines"] = with_baselines(
            data,
            baselines,
            rows,
            results,
            tasks,
            n_jobs=n_jobs,
            resamples=resamples,
            seed=seed,
            **head,
        )
        errors += row_errors(extra["baselines"].get("random_weights", []), "random weights ")
    return {
        "model": data.model,
        "model_fingerprint": data.model_fingerprint,
        "max_length": data.max_length,
        "data": data.sources,
        "n": {name: len(split) for name, split in data.splits().items()},
        "selection": "validation" if data.val is not None else f"{cv}-fold cross-validation",
        "C_rule": "lowest held-out log loss" + (" (exact: every C solved)" if exact else ""),
        "grouping": getattr(data, "grouping", {}),
        "metric": metric or "accuracy",  # the headline; selected_by says what chose the row
        **choice,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95},
        "repeats": repeats,
        "control": control,
        "mdl": mdl,
        "majority_baseline": chance,
        "best": {
            **rows[best_index],
            "val": best.reports.get("val"),
            "test": best.reports.get("test"),
            "C_search": best.classifier.search_,
        },
        "entries": rows,
        **extra,
        "errors": errors,  # the rows that could not be fitted: the CLI lists them, exits 3
        "seconds": seconds,
        "n_jobs": n_jobs,
        "_best_result": best,
    }


def public(result: dict) -> dict:
    """The sweep result without in-memory objects: what ``--json`` prints."""
    return {key: value for key, value in result.items() if not key.startswith("_")}
