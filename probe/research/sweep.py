"""One head on one (layer, pool), and every layer x pool of a cache: the layer sweep.

``fit_one`` fits a head on one (layer, pool); ``run_sweep`` fits every stored layer x pool in
parallel (joblib) and picks the best on validation data (or, without it, by the
cross-validation accuracy on train). Test data are scored, never used to choose.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.features.layers import RowSpec, parse_row_spec
from probe.features.pooling import POOL_NAMES, check_pool
from probe.heads.cached import CachedData
from probe.progress import Progress
from probe.research.uncertainty import RESAMPLES

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
        for split in ("val", "test"):
            report = self.reports.get(split)
            row[f"{split}_accuracy"] = report["accuracy"] if report else None
            row[f"{split}_macro_f1"] = report["macro_f1"] if report else None
        if row["val_accuracy"] is None and "accuracy" in search:  # chosen by cross-validation
            row["val_accuracy"] = max(search["accuracy"])
        row["train_accuracy"] = self.reports["train"]["accuracy"]
        row["seconds"] = self.seconds
        row["cpu_seconds"] = self.cpu_seconds
        row["solver"] = getattr(self.classifier, "solver_", None)  # "sklearn-fallback" says why
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
    return layer, {name: s.features(layer, pool) for name, s in data.splits().items()}, {}, None


def _refits_on_train(measures, data: CachedData) -> bool:
    """Whether the measures fit again on the raw training features (then the fit must not
    standardise them in place)."""
    if measures is None:
        return False
    return bool(measures.repeats or measures.control is not None or measures.mdl
                or data.val is None)  # fmt: skip


def fit_one(
    data: CachedData,
    layer,
    pool: str,
    *,
    C: float | None = None,
    Cs=None,
    class_weight: str | None = None,
    cv: int = 5,
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
    classifier = ProbeClassifier(C=C, Cs=Cs, class_weight=class_weight, cv=cv, copy_X=copy_X)
    classifier.fit(X, data.train.labels, *val)
    seconds = time.perf_counter() - started
    names = [str(c) for c in classifier.classes_]
    reports = {"train": {"n": len(data.train), "accuracy": None}}
    if train_accuracy:
        reports["train"]["accuracy"] = float(np.mean(classifier.predict(X) == data.train.labels))
    predictions = {}
    for split in (data.val, data.test):
        if split is not None:
            predictions[split.name] = predicted = classifier.predict(features[split.name])
            reports[split.name] = classification_report(split.labels, predicted, names)
    fields, scores = {}, None
    if measures is not None:
        from probe.research.measures import row_measures

        labels = {split_name: s.labels for split_name, s in data.splits().items()}
        fields, scores = row_measures(classifier, features, labels, measures)
    return FitResult(name, pool, classifier, reports, seconds, time.process_time() - cpu_started,
                     fields, scores, info, combiner=combiner, predictions=predictions)  # fmt: skip


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
        "train_seconds": result.seconds,
        **result.layers_info,
    }


# --- every layer x pool -----------------------------------------------------------------------


def _numbered_fit(index: int, *args, **kwargs) -> tuple[int, FitResult | str]:
    """``fit_one`` tagged with its task index: results arrive in completion order. A head
    that cannot be fitted comes back as its one-line error: one bad layer loses one row."""
    try:
        return index, fit_one(*args, **kwargs)
    except Exception as error:  # noqa: BLE001  (any failure of this head, reported as a row)
        from probe.errors import short_reason

        return index, f"{type(error).__name__}: {short_reason(error, 160)}"


def _error_row(layer, pool: str, error: str) -> dict:
    """The row of a head that could not be fitted: its error, no metrics."""
    if isinstance(layer, RowSpec):
        layer = layer.name
    return {"layer": layer, "pool": pool, "C": None, "val_accuracy": None, "val_macro_f1": None,
            "test_accuracy": None, "test_macro_f1": None, "error": error}  # fmt: skip


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
    multi=(),
    resamples: int = RESAMPLES,
    seed: int = 0,
    repeats: int = 0,
    control: bool = False,
    mdl: bool = False,
    prefer_early: bool = False,
    baselines=None,
    quiet: bool = True,
) -> dict:
    """Fit every (layer, pool) in parallel, plus ``multi`` heads (row specs such as ``mix`` or
    ``12,18,24``) per pool; choose one row by validation log loss.

    See ``probe.research.selection`` for the choice and ``probe.research.measures`` for what each
    row reports (CIs always; ``repeats``, ``control`` and ``mdl`` on request).
    ``baselines`` (``probe.research.baselines.prepare_baselines``) adds the majority,
    bag-of-words and random-weights rows, and every row's selectivity against them.
    """
    import os

    from joblib import Parallel, delayed

    from probe.research.measures import Measures
    from probe.research.selection import select_row

    if data.val is None and (C is not None or (Cs is not None and len(Cs) < 2)):
        raise ProbeError("with a fixed --C the sweep needs --val data to choose a layer")
    layers = list(data.layers) if layers is None else [data.layer(spec) for spec in layers]
    for pool in pools:
        check_pool(pool)
    multi = [parse_row_spec(spec).resolved(data.layer, layers) for spec in multi]
    labels = None
    if control:
        from probe.research.control import control_task

        labels = control_task(data)
    measures = Measures(resamples=resamples, seed=seed, repeats=repeats, control=labels,
                        mdl=mdl, cv=cv)  # fmt: skip
    if hasattr(data, "word_measures"):  # word rows: sentence clusters, control per word type
        measures = data.word_measures(measures)
    tasks = [(layer, pool) for layer in layers for pool in pools]
    tasks += [(spec, pool) for spec in multi for pool in pools]
    n_jobs = n_jobs or min(len(os.sched_getaffinity(0)), len(tasks))
    started = time.perf_counter()
    results = [None] * len(tasks)
    options = {"C": C, "Cs": Cs, "class_weight": class_weight, "cv": cv,
               "train_accuracy": False, "measures": measures}  # fmt: skip
    finished = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(_numbered_fit)(index, data, layer, pool, **options)
        for index, (layer, pool) in enumerate(tasks)
    )
    with Progress(len(tasks), "sweep", unit="heads", quiet=quiet, workers=n_jobs) as progress:
        for index, result in finished:  # in completion order: one update per finished head
            results[index] = result
            progress.update()
    seconds = time.perf_counter() - started
    fitted = [i for i, result in enumerate(results) if isinstance(result, FitResult)]
    if not fitted:
        raise ProbeError(f"every head of the sweep failed; the first: {results[0]}")
    rows = [result.summary() if isinstance(result, FitResult) else _error_row(*task, result)
            for task, result in zip(tasks, results, strict=True)]  # fmt: skip
    choice = select_row([rows[i] for i in fitted], [results[i].scores for i in fitted],
                        prefer_early=prefer_early, resamples=resamples, seed=seed)  # fmt: skip
    best_index = fitted[choice.pop("index")]
    best = results[best_index]
    chance = float(np.unique(data.train.labels, return_counts=True)[1].max() / len(data.train))
    extra = {}
    if baselines is not None:
        from probe.research.baselines import with_baselines

        extra["baselines"] = with_baselines(data, baselines, rows, results, tasks, C=C, Cs=Cs,
                                            class_weight=class_weight, cv=cv, n_jobs=n_jobs,
                                            resamples=resamples, seed=seed)  # fmt: skip
    return {
        "model": data.model,
        "model_fingerprint": data.model_fingerprint,
        "max_length": data.max_length,
        "data": data.sources,
        "n": {name: len(split) for name, split in data.splits().items()},
        "selection": "validation" if data.val is not None else f"{cv}-fold cross-validation",
        **choice,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95},
        "repeats": repeats,
        "control": control,
        "mdl": mdl,
        "majority_baseline": chance,
        "best": {**rows[best_index], "val": best.reports.get("val"),
                 "test": best.reports.get("test"), "C_search": best.classifier.search_},
        "entries": rows,
        **extra,
        "seconds": seconds,
        "n_jobs": n_jobs,
        "_best_result": best,
    }  # fmt: skip


def public(result: dict) -> dict:
    """The sweep result without in-memory objects: what ``--json`` prints."""
    return {key: value for key, value in result.items() if not key.startswith("_")}


def _is_best(row: dict, best: dict) -> bool:
    return (row["layer"], row["pool"]) == (best["layer"], best["pool"])


def _ci(row: dict, key: str) -> str:
    value, interval = row.get(key), row.get(f"{key}_ci")
    if value is None:
        return "-"
    return f"{value:.4f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def _signed_ci(row: dict, key: str) -> str:
    value, interval = row.get(key), row.get(f"{key}_ci")
    if value is None:
        return "-"
    return f"{value:+.4f}" + (f" [{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else "")


def _number(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(result: dict) -> str:
    """One row per (layer, pool); the selected row in bold; = marks rows indistinguishable
    from the lowest-loss row (paired bootstrap on the selection examples)."""
    best = result["best"]
    entries = result["entries"]
    has_test = any(row["test_accuracy"] is not None for row in entries)
    val_name = "val" if result["selection"] == "validation" else "CV"
    has = lambda key: any(row.get(key) is not None for row in entries)  # noqa: E731
    columns = [("layer", lambda r: str(r["layer"])), ("pool", lambda r: r["pool"]),
               ("C", lambda r: _number(r["C"], "g"))]  # fmt: skip
    if has("selection_log_loss"):
        columns.append((f"{val_name} log-loss", lambda r: _number(r.get("selection_log_loss"))))
        columns.append(("≈ chosen", lambda r: "=" if r.get("indistinguishable") else ""))
    columns.append((f"{val_name} acc", lambda r: _number(r["val_accuracy"])))
    if has_test:
        columns.append(("test acc [95% CI]", lambda r: _ci(r, "test_accuracy")))
        columns.append(("test macro-F1 [95% CI]", lambda r: _ci(r, "test_macro_f1")))
    if has("repeat_accuracy_mean"):
        columns.append((f"acc over {result['repeats']} refits", lambda r: (
            f"{r['repeat_accuracy_mean']:.4f} ± {r['repeat_accuracy_sd']:.4f}"
            if r.get("repeat_accuracy_mean") is not None else "-")))  # fmt: skip
    if has("memorisation_capacity"):
        columns.append(("memorisation (train acc, hashed labels)",
                        lambda r: _number(r.get("memorisation_capacity"))))  # fmt: skip
    for key, title in (("selectivity_vs_random", "acc − random weights [95% CI]"),
                       ("selectivity_vs_bow", "acc − bag of words [95% CI]")):  # fmt: skip
        if has(key):
            columns.append((title, lambda r, key=key: _signed_ci(r, key)))
    if has("mdl_online_bits"):
        columns.append(("MDL bits", lambda r: _number(r.get("mdl_online_bits"), ".1f")))
        columns.append(("compression", lambda r: _number(r.get("mdl_compression"), ".3f")))
    if has("error"):
        columns.append(("error", lambda r: r.get("error") or ""))
    lines = ["| " + " | ".join(name for name, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in entries:
        cells = [cell(row) for _, cell in columns]
        if _is_best(row, best):
            cells = [f"**{cell}**" if cell else cell for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    how = result.get("selected_by", f"{val_name} accuracy")
    lines.append(
        f"Selected by {how}: layer {best['layer']}, pool {best['pool']}, C {best['C']:g}"
        + (f"; test accuracy {_ci(best, 'test_accuracy')}" if has_test else "")
        + f". {result.get('n_indistinguishable', 0)} rows indistinguishable from the lowest "
        f"loss. {len(entries)} heads in {result['seconds']:.1f} s ({result['n_jobs']} jobs)."
    )
    if result.get("baselines"):
        from probe.research.baselines import markdown_baselines

        lines += ["", markdown_baselines(result)]
    return "\n".join(lines)


def plot_sweep(result: dict, path: str | Path) -> Path:
    """Accuracy against layer, one line per pool: validation solid, test dashed with its
    95% CI as a band; multi-layer heads as horizontal dotted lines; the selected row starred."""
    from probe.figures import new_figure, save_png

    figure, axes = new_figure()
    val_name = "val" if result["selection"] == "validation" else "CV"
    single = [r for r in result["entries"] if isinstance(r["layer"], int) and not r.get("error")]
    for pool, colour in zip(POOL_NAMES, ("tab:blue", "tab:orange"), strict=True):
        rows = sorted((r for r in single if r["pool"] == pool), key=lambda r: r["layer"])
        if not rows:
            continue
        layers = [r["layer"] for r in rows]
        axes.plot(layers, [r["val_accuracy"] for r in rows], "-o", color=colour, markersize=3,
                  label=f"{pool} ({val_name})")  # fmt: skip
        if rows[0]["test_accuracy"] is not None:
            axes.plot(layers, [r["test_accuracy"] for r in rows], "--", color=colour,
                      alpha=0.7, label=f"{pool} (test, 95% CI)")  # fmt: skip
            if all(r.get("test_accuracy_ci") for r in rows):
                axes.fill_between(layers, [r["test_accuracy_ci"][0] for r in rows],
                                  [r["test_accuracy_ci"][1] for r in rows], color=colour,
                                  alpha=0.15, linewidth=0)  # fmt: skip
        refits = [r for r in rows if r.get("repeat_accuracy_mean") is not None]
        if refits:
            axes.errorbar([r["layer"] for r in refits], [r["repeat_accuracy_mean"] for r in refits],
                          yerr=[r["repeat_accuracy_sd"] for r in refits], fmt="none",
                          ecolor=colour, capsize=2, alpha=0.8,
                          label=f"{pool} ({result['repeats']} refits, mean ± sd)")  # fmt: skip
        same = [r for r in rows if r.get("indistinguishable")]
        axes.plot([r["layer"] for r in same], [r["val_accuracy"] for r in same], "o",
                  mfc="none", color="black", markersize=7, alpha=0.5)  # fmt: skip
    multi = (r for r in result["entries"] if not isinstance(r["layer"], int) and not r.get("error"))
    for row, style in zip(multi,
                          (":", "-.", (0, (1, 3)), (0, (5, 5))) * 8, strict=False):  # fmt: skip
        value = row["test_accuracy"] if row["test_accuracy"] is not None else row["val_accuracy"]
        axes.axhline(value, linestyle=style, color="grey", linewidth=1,
                     label=f"{row['layer']} {row['pool']}")  # fmt: skip
    if result.get("baselines"):
        from probe.research.baselines import plot_baselines

        plot_baselines(axes, result["baselines"])
    best = result["best"]
    if isinstance(best["layer"], int):
        axes.plot([best["layer"]], [best["val_accuracy"]], "*", color="black", markersize=14,
                  label=f"selected: layer {best['layer']}, {best['pool']}")  # fmt: skip
    axes.set_xlabel("layer (0 = embeddings); open circles: indistinguishable from the chosen")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{Path(str(result['model'])).name}: linear probe per layer")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return save_png(figure, path)
