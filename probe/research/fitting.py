"""One head on one (layer, pool): its fit, its row, its record, its failure.

Cut from ``probe.research.sweep`` so that what fits a row (the sweep, the random-weights
baseline, ``probe fit``) imports downward: the sweep and the baselines both call
``numbered_fit``, and neither needs the other to do it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from probe.errors import ProbeError, RowsFailed, one_line, short_reason
from probe.features.layers import RowSpec
from probe.features.pooling import check_pool
from probe.heads.cached import CachedData
from probe.heads.metrics import METRICS, positive_scores
from probe.messages import say, warn

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
    task: object = None  # the target's task module (probe.heads.tasks); None: classes
    target_names: list | None = None  # regression columns, multi-label names
    probe: str | None = None  # --probe family ("mass-mean", "sparse:8"...); None: the default

    @property
    def label_names(self) -> list[str]:
        if self.target_names is not None:
            return list(self.target_names)
        return [str(c) for c in self.classifier.classes_]

    def summary(self) -> dict:
        """One row of a sweep table."""
        if self.task is not None:
            return self._target_summary()
        row = {
            "layer": self.layer,
            "pool": self.pool,
            **self.probe_fields(),
            "C": self.classifier.C_,
        }
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

    def probe_fields(self) -> dict:
        """The row's ``probe`` (and a sparse head's ``neurons``) when ``--probe`` named it."""
        if self.probe is None:
            return {}
        neurons = getattr(self.classifier, "neurons_", None)
        found = {"probe": self.probe}
        return found if neurons is None else {**found, "neurons": [int(n) for n in neurons]}

    def _target_summary(self) -> dict:
        """A regression or multi-label row: its penalty, the task's metrics per split."""
        task = self.task
        row = {"layer": self.layer, "pool": self.pool, "C": task.penalty_of(self.classifier)}
        row["penalty"] = task.PENALTY
        for split in ("val", "test"):
            report = self.reports.get(split) or {}
            for metric in task.METRICS:
                row[f"{split}_{metric}"] = report.get(metric)
        train = self.reports["train"]
        row[f"train_{task.NATURAL_METRIC}"] = train.get(task.NATURAL_METRIC)
        row.update({"seconds": self.seconds, "cpu_seconds": self.cpu_seconds})
        row["solver"] = getattr(self.classifier, "solver_", None)
        row["fallback_reason"] = getattr(self.classifier, "fallback_reason_", None)
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
    probe: str | None = None,
) -> FitResult:
    """A head on one stored (layer, pool); C chosen on val (or by CV), scored on val and test.

    ``probe`` names the head's family (``probe.heads.families``: "logistic", "mass-mean",
    "sparse:8"...); None is the default logistic head, its row without a ``probe`` key.

    ``layer`` may be a multi-layer ``RowSpec`` (see ``row_features``). ``measures``
    (``probe.research.measures.Measures``) adds intervals, the selection loss and the research
    measures to the row. ``train_accuracy=False`` (the sweep) skips scoring the training set
    and lets the fit standardise the features in place: on 67k x 576 each saves ~0.1-0.2 s.
    """
    from probe.heads.estimator import ProbeClassifier
    from probe.heads.metrics import classification_report

    check_pool(pool)
    if data.target != "classification":
        if probe not in (None, "logistic"):
            raise ProbeError(f"--probe {probe} fits classes; a {data.target} head is linear only")
        return fit_target(data, layer, pool, C=C, Cs=Cs, cv=cv, measures=measures)
    cpu_started = time.process_time()
    name, features, info, combiner = row_features(data, layer, pool)
    X = features["train"]
    val = (features["val"], data.val.labels) if data.val is not None else (None, None)
    started = time.perf_counter()
    copy_X = train_accuracy or _refits_on_train(measures, data)
    if probe is None:
        classifier = ProbeClassifier(
            C=C, Cs=Cs, class_weight=class_weight, cv=cv, copy_X=copy_X, exact=exact
        )
    else:
        from probe.heads.families import make_probe

        head = {"C": C, "Cs": Cs, "class_weight": class_weight, "cv": cv, "exact": exact}
        classifier = make_probe(probe, copy_X=copy_X, **head)
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
        probe=probe,
    )


def fit_target(data: CachedData, layer, pool: str, *, C=None, Cs=None, cv=5, measures=None):
    """``fit_one`` for numbers and label sets: the task module's head (``probe.heads.tasks``)
    with its penalty chosen on val (or by k-fold over groups), its report per split, and the
    measures of ``probe.research.targets.measures``."""
    from probe.heads.tasks import task_module

    task = task_module(data.target)
    cpu_started = time.process_time()
    name, features, info, combiner = row_features(data, layer, pool)
    labels = {split_name: s.labels for split_name, s in data.splits().items()}
    started = time.perf_counter()
    head = task.make_head(penalty=C, penalties=Cs, cv=cv, copy_X=True)
    val = (features["val"], labels["val"]) if "val" in features else (None, None)
    head.fit(features["train"], labels["train"], *val, groups=data.train.group_ids())
    seconds = time.perf_counter() - started
    outputs = {split: task.outputs(head, features[split]) for split in features}
    reports = {
        split: task.split_report(labels[split], outputs[split], data.target_names)
        for split in outputs
    }
    fields, scores = {}, None
    if measures is not None:
        from probe.research.targets.measures import target_measures

        held = {split: outputs[split] for split in ("val", "test") if split in outputs}
        fields, scores = target_measures(task, head, features, labels, held, measures, data.target)
    return FitResult(
        name,
        pool,
        head,
        reports,
        seconds,
        time.process_time() - cpu_started,
        fields,
        scores,
        info,
        combiner=combiner,
        predictions={split: outputs[split] for split in ("val", "test") if split in outputs},
        task=task,
        target_names=data.target_names,
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
        "train_accuracy": result.reports["train"].get("accuracy"),
        "C_search": result.classifier.search_,
        "target": getattr(data, "target", "classification"),
        "target_names": getattr(data, "target_names", None),
        "grouping": getattr(data, "grouping", {}),
        "train_seconds": result.seconds,
        **result.layers_info,
        **result.probe_fields(),
    }


# --- rows of a sweep ----------------------------------------------------------------------


def numbered_fit(index: int, *args, **kwargs) -> tuple[int, FitResult | str]:
    """``fit_one`` tagged with its task index: results arrive in completion order. A head
    that cannot be fitted (``ROW_FAILURES``) comes back as its one-line error: one bad layer
    loses one row; a bug stops the sweep."""
    try:
        return index, fit_one(*args, **kwargs)
    except ROW_FAILURES as error:  # this row's data or numbers: reported as the row's error
        return index, f"{type(error).__name__}: {short_reason(error, 160)}"


def row_name(layer, pool: str, probe: str | None = None) -> str:
    """A row as messages name it: ``layer 12 mean``, ``layer 12+18+24 last``, ``layer mix``
    (``layer 12 mean mass-mean`` for a ``--probe`` row)."""
    name = f"layer {layer.name if isinstance(layer, RowSpec) else layer} {pool}"
    return name if probe is None else f"{name} {probe}"


def row_errors(rows: list[dict], prefix: str = "") -> list[dict]:
    """``{"row": "layer 12 mean", "error": "LinAlgError: ..."}`` per row that failed: the
    ``errors`` of a sweep's result, which ``probe sweep`` prints and exits non-zero on."""
    return [
        {
            "row": prefix + row_name(row["layer"], row["pool"], row.get("probe")),
            "error": row["error"],
        }
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


def error_row(layer, pool: str, error: str, probe: str | None = None) -> dict:
    """The row of a head that could not be fitted: its error, no metrics."""
    if isinstance(layer, RowSpec):
        layer = layer.name
    return {
        "layer": layer,
        "pool": pool,
        **({} if probe is None else {"probe": probe}),
        "C": None,
        "val_accuracy": None,
        "val_macro_f1": None,
        "test_accuracy": None,
        "test_macro_f1": None,
        "error": error,
    }
