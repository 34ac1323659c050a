"""Every layer x pool of a cache: the layer sweep.

``fit_one`` (``probe.research.fitting``) fits a head on one (layer, pool); ``run_sweep``
fits every stored layer x pool in parallel (joblib) and picks the best on validation data
(or, without it, out of fold on train: ``probe.research.selection``). Test data are scored,
never used to choose. A row that cannot be fitted (``ROW_FAILURES``) is a row with its
error, listed in the result's ``errors``; a bug stops the sweep. The table and figure of a
sweep's result are ``probe.research.sweep_report``.
"""

from __future__ import annotations

import time

import numpy as np

from probe.errors import ProbeError
from probe.features.layers import parse_row_spec
from probe.features.pooling import POOL_NAMES, check_pool
from probe.heads.cached import CachedData
from probe.messages import progress
from probe.research.fitting import (  # re-exported: the sweep's API keeps its names
    ROW_FAILURES,
    FitResult,
    error_row,
    fit_one,
    head_meta,
    numbered_fit,
    report_errors,
    row_errors,
    row_features,
    row_name,
    say_fallback,
)
from probe.research.uncertainty import RESAMPLES

__all__ = [
    "ROW_FAILURES",
    "FitResult",
    "error_row",
    "fit_one",
    "head_meta",
    "numbered_fit",
    "public",
    "report_errors",
    "row_errors",
    "row_features",
    "row_name",
    "run_sweep",
    "say_fallback",
]


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
    probes=None,
) -> dict:
    """Fit every (layer, pool) in parallel, plus ``multi`` heads (row specs such as ``mix`` or
    ``12,18,24``) per pool; choose one row by validation log loss, or by the highest
    validation ``metric`` (accuracy, macro_f1, balanced_accuracy, auroc), which then heads
    the summary (default: accuracy).

    See ``probe.research.selection`` for the choice and ``probe.research.measures`` for what each
    row reports (CIs always; ``repeats``, ``control`` and ``mdl`` on request).
    ``baselines`` (``probe.research.baselines.inputs.prepare_baselines``) adds the majority,
    bag-of-words and random-weights rows, and every row's selectivity against them.
    ``probes`` (``--probe``: "logistic", "mass-mean", "sparse:8"...; ``probe.heads.families``)
    fits every (layer, pool) with each; its rows carry ``probe``. None: the default logistic
    head alone, rows without that key.
    Progress goes to ``probe.messages`` (shown where its ``say`` lines are).
    """
    import os

    from joblib import Parallel, delayed

    from probe.research.measures import Measures
    from probe.research.selection import check_metric, select_row

    if data.val is None and (C is not None or (Cs is not None and len(Cs) < 2)):
        raise ProbeError("with a fixed --C the sweep needs --val data to choose a layer")
    task = None
    if data.target != "classification":
        from probe.heads.tasks import task_module
        from probe.research.targets.selection import check_target_metric

        task = task_module(data.target)
        if probes is not None and list(probes) != ["logistic"]:
            raise ProbeError(
                f"--probe {','.join(probes)} fits classes; {data.target} rows: logistic"
            )
        metric = check_target_metric(task, metric, data.target)
        n_classes = None
    else:
        n_classes = len(np.unique(data.train.labels))
        check_metric(metric, n_classes)
    layers = list(data.layers) if layers is None else [data.layer(spec) for spec in layers]
    for pool in pools:
        check_pool(pool)
    multi = [parse_row_spec(spec).resolved(data.layer, layers) for spec in multi]
    labels = None
    if control and task is not None:
        labels = {"shuffled": True}  # the targets shuffled across texts, row by row
    elif control:
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
    families = [None] if probes is None else list(probes)
    tasks = [(layer, pool, probe) for layer in layers for pool in pools for probe in families]
    tasks += [(spec, pool, probe) for spec in multi for pool in pools for probe in families]
    n_jobs = n_jobs or min(len(os.sched_getaffinity(0)), len(tasks))
    started = time.perf_counter()
    results = [None] * len(tasks)
    head = {"C": C, "Cs": Cs, "class_weight": class_weight, "cv": cv, "exact": exact}
    finished = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(numbered_fit)(
            index, data, layer, pool, train_accuracy=False, measures=measures, probe=probe, **head
        )
        for index, (layer, pool, probe) in enumerate(tasks)
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
        result.summary() if isinstance(result, FitResult) else error_row(*spec[:2], result, spec[2])
        for spec, result in zip(tasks, results, strict=True)
    ]
    selection_split = "val" if data.val is not None else "train"  # where the scores are
    choose = select_row if task is None else _target_chooser(task, data)
    choice = choose(
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
    chance = None if task is not None else _majority(data.train.labels)
    extra, errors = {}, row_errors(rows)
    if baselines is not None and task is not None:
        from probe.research.targets.baselines import target_baselines

        extra["baselines"] = target_baselines(data, task, baselines, rows, rows[best_index], cv=cv)
    elif baselines is not None:
        from probe.research.baselines.selectivity import with_baselines

        extra["baselines"] = with_baselines(
            data,
            baselines,
            rows,
            results,
            _rows_once(tasks),
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
        "C_rule": (
            task.PENALTY_RULE
            if task is not None
            else "lowest held-out log loss" + (" (exact: every C solved)" if exact else "")
        ),
        "target": data.target,
        "target_names": data.target_names,
        "grouping": getattr(data, "grouping", {}),
        "metric": metric or "accuracy",  # the headline; selected_by says what chose the row
        "metrics": list(task.METRICS) if task is not None else None,
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
            **_held_predictions(data, best),
        },
        "entries": rows,
        **extra,
        "errors": errors,  # the rows that could not be fitted: the CLI lists them, exits 3
        "seconds": seconds,
        "n_jobs": n_jobs,
        "_best_result": best,
    }


def _held_predictions(data: CachedData, best, limit: int = 2000) -> dict:
    """A regression row's held-out predictions beside the truth (the first ``limit`` rows):
    what the report's predicted-vs-true scatter draws. Empty for other rows."""
    if data.target != "regression":
        return {}
    split = "test" if data.test is not None else "val" if data.val is not None else None
    if split is None or split not in best.predictions:
        return {}
    truth = getattr(data, split).labels[:limit]
    predicted = best.predictions[split][:limit]
    names = data.target_names
    return {"predictions": {"split": split, "names": names, "truth": truth, "predicted": predicted}}


def _rows_once(tasks) -> list[tuple]:
    """Each (layer, pool) of the tasks once: the random-weights baseline fits a logistic head
    per row, whichever probes the sweep compares."""
    found = []
    for layer, pool, _ in tasks:
        if (layer, pool) not in found:
            found.append((layer, pool))
    return found


def _majority(labels) -> float:
    return float(np.unique(labels, return_counts=True)[1].max() / len(labels))


def _target_chooser(task, data: CachedData):
    """``select_row``'s stand-in for regression and multi-label rows."""
    from probe.research.targets.selection import select_target_row

    where = "validation" if data.val is not None else "out-of-fold"

    def choose(rows, scores, *, metric, n_classes, **bootstrap):
        return select_target_row(task, rows, scores, metric, where=where, **bootstrap)

    return choose


def public(result: dict) -> dict:
    """The sweep result without in-memory objects: what ``--json`` prints."""
    return {key: value for key, value in result.items() if not key.startswith("_")}
