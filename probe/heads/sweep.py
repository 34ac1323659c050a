"""One head on one (layer, pool), and every layer x pool of a cache: the layer sweep.

``fit_one`` fits a head on one (layer, pool); ``run_sweep`` fits every stored layer x pool in
parallel (joblib) and picks the best on validation data (or, without it, by the
cross-validation accuracy on train). Test data are scored, never used to choose.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES as POOLS
from probe.features.pooling import check_pool
from probe.heads.rows import CachedData

# --- one head ---------------------------------------------------------------------------------


@dataclass
class FitResult:
    layer: int
    pool: str
    classifier: object  # ProbeClassifier
    reports: dict  # split -> classification report (val and test; train: accuracy only)
    seconds: float  # fit time, C search included, features read excluded
    cpu_seconds: float = 0.0  # CPU time of the whole task, reading and scoring included

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
        return row


def fit_one(
    data: CachedData,
    layer: int,
    pool: str,
    *,
    C: float | None = None,
    Cs=None,
    class_weight: str | None = None,
    cv: int = 5,
    train_accuracy: bool = True,
) -> FitResult:
    """A head on one stored (layer, pool); C chosen on val (or by CV), scored on val and test.

    ``train_accuracy=False`` (the sweep) skips scoring the training set and lets the fit
    standardise the features in place: on 67k x 576 each saves ~0.1-0.2 s.
    """
    from probe.heads.estimator import ProbeClassifier
    from probe.heads.metrics import classification_report

    check_pool(pool)
    if layer not in data.layers:
        raise ProbeError(
            f"layer {layer} is not in the cache; stored layers: {', '.join(map(str, data.layers))}"
        )
    cpu_started = time.process_time()
    X = data.train.features(layer, pool)
    val = (
        (data.val.features(layer, pool), data.val.labels) if data.val is not None else (None, None)
    )
    started = time.perf_counter()
    classifier = ProbeClassifier(
        C=C, Cs=Cs, class_weight=class_weight, cv=cv, copy_X=train_accuracy
    )
    classifier.fit(X, data.train.labels, *val)
    seconds = time.perf_counter() - started
    names = [str(c) for c in classifier.classes_]
    reports = {"train": {"n": len(data.train), "accuracy": None}}
    if train_accuracy:
        reports["train"]["accuracy"] = float(np.mean(classifier.predict(X) == data.train.labels))
    for split in (data.val, data.test):
        if split is not None:
            X_split = val[0] if split is data.val else split.features(layer, pool)
            predicted = classifier.predict(X_split)
            reports[split.name] = classification_report(split.labels, predicted, names)
    return FitResult(layer, pool, classifier, reports, seconds, time.process_time() - cpu_started)


def head_meta(data: CachedData, result: FitResult) -> dict:
    """What ``save_head`` records next to the weights."""
    return {
        "model": data.model,
        "model_fingerprint": data.model_fingerprint,
        "layer": result.layer,
        "pool": result.pool,
        "max_length": data.max_length,
        "label_names": result.label_names,
        "cache_key": data.cache_keys["train"],
        "cache_keys": data.cache_keys,
        "data": data.sources,
        "n": {name: len(split) for name, split in data.splits().items()},
        "metrics": {k: v for k, v in result.reports.items() if k != "train"},
        "train_accuracy": result.reports["train"]["accuracy"],
        "C_search": result.classifier.search_,
        "train_seconds": result.seconds,
    }


# --- every layer x pool -----------------------------------------------------------------------


def run_sweep(
    data: CachedData,
    layers: list[int] | None = None,
    pools=POOLS,
    *,
    n_jobs: int | None = None,
    C: float | None = None,
    Cs=None,
    class_weight: str | None = None,
    cv: int = 5,
) -> dict:
    """Fit every (layer, pool) in parallel; the best is chosen on validation (or CV).

    Ties go to the higher macro F1, then the lower layer (cheaper to serve: ``probe predict``
    runs the backbone only up to it), then ``last``.
    """
    import os

    from joblib import Parallel, delayed

    if data.val is None and (C is not None or (Cs is not None and len(Cs) < 2)):
        raise ProbeError("with a fixed --C the sweep needs --val data to choose a layer")
    layers = list(data.layers) if layers is None else [data.layer(spec) for spec in layers]
    for pool in pools:
        check_pool(pool)
    n_jobs = n_jobs or min(len(os.sched_getaffinity(0)), len(layers) * len(pools))
    started = time.perf_counter()
    results = Parallel(n_jobs=n_jobs)(
        delayed(fit_one)(
            data, layer, pool, C=C, Cs=Cs, class_weight=class_weight, cv=cv, train_accuracy=False
        )  # fmt: skip
        for layer in layers
        for pool in pools
    )
    seconds = time.perf_counter() - started
    rows = [result.summary() for result in results]
    rank = lambda i: (rows[i]["val_accuracy"], rows[i]["val_macro_f1"] or 0.0,  # noqa: E731
                      -rows[i]["layer"], -POOLS.index(rows[i]["pool"]))  # fmt: skip
    best_index = max(range(len(rows)), key=rank)
    best = results[best_index]
    return {
        "model": data.model,
        "model_fingerprint": data.model_fingerprint,
        "max_length": data.max_length,
        "data": data.sources,
        "n": {name: len(split) for name, split in data.splits().items()},
        "selection": "validation" if data.val is not None else f"{cv}-fold cross-validation",
        "best": {**rows[best_index], "val": best.reports.get("val"),
                 "test": best.reports.get("test"), "C_search": best.classifier.search_},
        "entries": rows,
        "seconds": seconds,
        "n_jobs": n_jobs,
        "_best_result": best,
    }  # fmt: skip


def public(result: dict) -> dict:
    """The sweep result without in-memory objects: what ``--json`` prints."""
    return {key: value for key, value in result.items() if not key.startswith("_")}


def markdown_table(result: dict) -> str:
    """One row per (layer, pool); the selected row in bold."""
    best = result["best"]
    has_test = any(row["test_accuracy"] is not None for row in result["entries"])
    val_name = "val" if result["selection"] == "validation" else "CV"
    header = ["layer", "pool", "C", f"{val_name} acc"]
    header += ["val macro-F1"] if val_name == "val" else []
    header += ["test acc", "test macro-F1"] if has_test else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["entries"]:
        cells = [str(row["layer"]), row["pool"], f"{row['C']:g}", f"{row['val_accuracy']:.4f}"]
        cells += [f"{row['val_macro_f1']:.4f}"] if val_name == "val" else []
        cells += [f"{row['test_accuracy']:.4f}", f"{row['test_macro_f1']:.4f}"] if has_test else []
        if (row["layer"], row["pool"]) == (best["layer"], best["pool"]):
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Best on {result['selection']}: layer {best['layer']}, pool {best['pool']}, "
        f"C {best['C']:g}"
        + (f"; test accuracy {best['test_accuracy']:.4f}" if has_test else "")
        + f". {len(result['entries'])} heads in {result['seconds']:.1f} s "
        f"({result['n_jobs']} jobs)."
    )
    return "\n".join(lines)


def plot_sweep(result: dict, path: str | Path) -> Path:
    """Accuracy against layer, one line per pool (validation solid, test dashed), best marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    val_name = "val" if result["selection"] == "validation" else "CV"
    for pool, colour in zip(POOLS, ("tab:blue", "tab:orange"), strict=True):
        rows = sorted((r for r in result["entries"] if r["pool"] == pool), key=lambda r: r["layer"])
        if not rows:
            continue
        layers = [r["layer"] for r in rows]
        axes.plot(layers, [r["val_accuracy"] for r in rows], "-o", color=colour, markersize=3,
                  label=f"{pool} ({val_name})")  # fmt: skip
        if rows[0]["test_accuracy"] is not None:
            axes.plot(layers, [r["test_accuracy"] for r in rows], "--", color=colour,
                      alpha=0.6, label=f"{pool} (test)")  # fmt: skip
    best = result["best"]
    axes.plot([best["layer"]], [best["val_accuracy"]], "*", color="black", markersize=14,
              label=f"best: layer {best['layer']}, {best['pool']}")  # fmt: skip
    axes.set_xlabel("layer (0 = embeddings)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{Path(str(result['model'])).name}: linear probe per layer")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
