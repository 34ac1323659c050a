"""Probe versus fine-tuning on one model and dataset, with fine-tuning given a fair chance.

Rows: the best probe of the layer-wise sweep (layer and pool chosen on validation), then
fine-tuning with N = 0, 1, 2 and all blocks unfrozen, and the recipe of the book this project
grew from (last block + final norm, AdamW lr 5e-5 on body and head, weight decay 0.1, 5
epochs, batch 8). One body learning rate for every N made N = 0, 1, 2 look alike (1e-5 barely
moves a block in 2 epochs), so each N > 0 picks its body learning rate from a grid on
validation, trains up to ``epochs`` with early stopping on validation, and is scored on test
once. Every test number carries a 95% bootstrap CI over test examples; each fine-tuning row is
compared with the probe by a paired bootstrap on the same test examples (significant when the
CI of the difference excludes 0). Every run starts from freshly loaded weights and is timed;
the LR search's total cost is reported beside the chosen run's.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from probe.features.pooling import DEFAULT_POOL
from probe.jsonable import to_jsonable
from probe.messages import say
from probe.research.uncertainty import LEVEL, RESAMPLES

if TYPE_CHECKING:
    from probe.data.splits import Splits
    from probe.finetune.training import FinetuneConfig

DEFAULT_LR_GRID = (1e-5, 3e-5, 1e-4)
# Raschka, "Build a Large Language Model (From Scratch)", ch. 6: the spam classifier.
BOOK_RECIPE = {
    "unfreeze": 1,
    "layer": None,
    "pool": DEFAULT_POOL,
    "lr_body": 5e-5,
    "lr_head": 5e-5,
    "weight_decay": 0.1,
    "epochs": 5,
    "batch_size": 8,
    "patience": None,
    "init_head": "zero",  # the book's head starts untrained (here: at zero), not at a probe
}


def best_probe(
    model: str, splits: Splits, max_length: int | None, device=None
) -> tuple[dict, np.ndarray]:
    """The layer-wise sweep on these splits; (the selected row, its test predictions).

    The splits are extracted through the feature cache (a second run loads no model) and
    handed to :func:`probe.research.sweep.run_sweep` as they are, so the probe and fine-tuning see
    exactly the same train, validation and test examples, in the same order.
    """
    from probe.data.splits import dataset_groups
    from probe.features.extract import extract
    from probe.features.store.caches import open_cache
    from probe.heads.cached import CachedData, CachedSplit
    from probe.research.sweep import run_sweep

    started, started_wall = time.perf_counter(), time.time()
    paths, parts = {}, {}
    for name in ("train", "val", "test"):
        dataset = getattr(splits, name)
        paths[name] = str(extract(model, dataset, "all", max_length=max_length, device=device))
        labels = np.asarray(dataset.labels, str)  # groups: the probe's folds keep them whole
        parts[name] = CachedSplit(name, [(paths[name], None)], labels, dataset_groups(dataset))
    extract_seconds = time.perf_counter() - started
    caches = {name: open_cache(path) for name, path in paths.items()}  # each file opened once
    recorded = [opened.meta.get("extract_seconds") for opened in caches.values()]
    hit = all(Path(path).stat().st_mtime < started_wall for path in paths.values())
    cache = caches["train"]
    data = CachedData(
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        model=model,
        model_fingerprint=str(cache.meta["model_fingerprint"]),
        max_length=int(cache.meta["max_length"]),
        n_layers_model=int(cache.meta["n_layers_model"]),
        layers=list(cache.layers),
        cache_keys={name: opened.key for name, opened in caches.items()},
        sources={name: f"{splits.train.source} ({name} split)" for name in paths},
    )
    sweep = run_sweep(data)
    best = sweep["best"]
    classifier = sweep["_best_result"].classifier
    predicted = np.asarray(classifier.predict(data.test.features(best["layer"], best["pool"])))
    say(f"best probe: layer {best['layer']} {best['pool']}, val acc {best['val_accuracy']:.4f}")
    row = {
        "method": f"probe (layer {best['layer']}, {best['pool']})",
        "layer": int(best["layer"]),
        "pool": best["pool"],
        "C": float(best["C"]),
        "val_accuracy": float(best["val_accuracy"]),
        "test": best["test"],
        "trainable_params": int(classifier.coef_.size + classifier.intercept_.size),
        "extract_seconds": extract_seconds,
        "extract_hit": hit,
        # what extracting cost when it ran (a cache hit above costs ~0 s); None: not recorded
        "extract_seconds_recorded": (
            float(sum(recorded)) if all(r is not None for r in recorded) else None
        ),
        "fit_seconds": sweep["seconds"],
        "seconds": extract_seconds + sweep["seconds"],
        "heads_fitted": len(sweep["entries"]),
        "errors": sweep["errors"],  # the sweep's rows that could not be fitted
        "selection": sweep.get("selection"),
    }
    return row, predicted.astype(str)


def run_comparison(
    model: str,
    splits: Splits,
    base: FinetuneConfig,
    unfreeze=("0", "1", "2", "all"),
    lr_grid=DEFAULT_LR_GRID,
    book: bool = True,
    time_without_prefix: bool = False,
    resamples: int = RESAMPLES,
    device=None,
) -> dict:
    """The probe row, one row per N (body LR chosen on validation) and the book's recipe."""
    from probe.data.splits import dataset_groups, has_shared_groups
    from probe.finetune.training import finetune
    from probe.research.uncertainty import indistinguishable, paired_differences

    started = time.perf_counter()
    truth = np.asarray(splits.test.labels, str)
    probe_row, probe_predicted = best_probe(model, splits, base.max_length, device)
    classes = sorted(set(splits.train.labels))
    clusters = dataset_groups(splits.test)  # intervals draw a repeated text's rows together
    clusters = clusters if has_shared_groups(clusters) else None
    probe_row["ci"] = _intervals(classes, truth, probe_predicted, resamples, base.seed, clusters)
    plans = [
        (
            f"fine-tune, unfreeze {count}",
            replace(base, unfreeze=count),
            [None] if str(count).strip() == "0" else list(lr_grid),
        )
        for count in unfreeze
    ]
    if book:
        plans.append(("book recipe (last block + norm)", replace(base, **BOOK_RECIPE), [None]))
    before = _language_check(_fresh(model, device)) if base.forgetting_check else None
    rows, correct = [], [truth == probe_predicted]
    for method, config, grid in plans:
        row, predicted = _search(model, splits, method, config, grid, before, device)
        if time_without_prefix and row["prefix_cache_used"]:
            say(f"{method}: timing the chosen run without the prefix cache")
            config = replace(
                config, lr_body=row["lr_body"], prefix_cache=False, forgetting_check=False
            )
            report = finetune(_fresh(model, device), splits, config).report
            row["train_seconds_without_prefix"] = sum(report["time"]["epochs_seconds"])
            row["test_accuracy_without_prefix"] = report["test"]["accuracy"]
        row["ci"] = _intervals(classes, truth, predicted, resamples, base.seed, clusters)
        rows.append(row)
        correct.append(truth == predicted)
    # paired bootstrap: every row and the probe scored on the same resamples of test examples
    intervals = paired_differences(
        np.stack(correct), 0, n_resamples=resamples, seed=base.seed, clusters=clusters
    )
    same = indistinguishable(intervals)
    for row, hits, interval, alike in zip(rows, correct[1:], intervals[1:], same[1:], strict=True):
        row["vs_probe"] = {
            "accuracy_difference": float(hits.mean() - correct[0].mean()),
            "ci": [float(interval[0]), float(interval[1])],
            "significant": not bool(alike),
        }
    return {
        "model": model,
        "data": splits.sizes(),
        "settings": {
            "epochs": base.epochs,
            "patience": base.patience,
            "batch_size": base.batch_size,
            "max_length": base.max_length,
            "lr_grid": list(lr_grid),
            "lr_head": base.lr_head,
            "weight_decay": base.weight_decay,
            "seed": base.seed,
            "pool": base.pool,
            "prefix_dtype": base.prefix_dtype,
            "book_recipe": BOOK_RECIPE if book else None,
            "bootstrap": {
                "resamples": resamples,
                "seed": base.seed,
                "level": LEVEL,
                "over": f"{len(truth)} test examples",
            },
        },
        "versions": _versions(),
        "probe": probe_row,
        "finetune": rows,
        "total_seconds": time.perf_counter() - started,
    }


def _fresh(model: str, device):
    from probe.features.models.loading import load_backbone

    return load_backbone(model, device)


def _language_check(backbone):
    """The forgetting check's measurements, on the fp32 weights fine-tuning trains."""
    from probe.finetune.forgetting import language_check

    backbone.model.float()
    return language_check(backbone)


def _search(model, splits, method, config, grid, before, device) -> tuple[dict, np.ndarray]:
    """Fine-tune once per body LR in ``grid`` (None: the config's); keep the best on val.

    The forgetting check runs once, on the chosen model (``before``: the fresh weights, the
    same for every run), not on every trial: on a small model it costs more than training.
    """
    from probe.finetune.forgetting import compare_checks
    from probe.finetune.training import finetune

    trials, best, best_key = [], None, None
    for lr in grid:
        trial_config = replace(config, forgetting_check=False)
        trial_config = trial_config if lr is None else replace(trial_config, lr_body=lr)
        say(f"{method}, body lr {trial_config.lr_body:g}")
        result = finetune(_fresh(model, device), splits, trial_config)
        report = result.report
        chosen = report["epochs"][report["best_epoch"] - 1]
        trials.append(
            {
                "lr_body": trial_config.lr_body,
                "val_accuracy": chosen["val_accuracy"],
                "val_loss": chosen["val_loss"],
                "best_epoch": report["best_epoch"],
                "epochs_run": len(report["epochs"]),
                "seconds": report["time"]["total_seconds"],
            }
        )
        key = (chosen["val_accuracy"], -chosen["val_loss"])
        if best_key is None or key > best_key:
            names = np.asarray(result.label_names, dtype=object)
            predicted = names[result.test_logits.argmax(1)].astype(str)
            best_key, best = key, (result, trial_config.lr_body, predicted)
        del result  # at most two models in memory: the best so far and the one training
    result, lr_body, predicted = best
    report = result.report
    if before is not None:
        report["forgetting"] = compare_checks(before, _language_check(result.backbone))
    return _row(method, report, lr_body, trials, searched=len(grid) > 1), predicted


def _row(method: str, report: dict, lr_body: float, trials: list[dict], searched: bool) -> dict:
    forgetting = report["forgetting"] or {}
    config = report["config"]
    return {
        "method": method,
        "init_head": (report.get("init_head") or {"kind": "zero"})["kind"],
        "unfreeze": report["unfreeze"],
        "lr_body": lr_body if report["unfreeze"] > 0 else None,
        "lr_searched": searched,
        "lr_head": config["lr_head"],
        "weight_decay": config["weight_decay"],
        "batch_size": config["batch_size"],
        "trials": trials,
        "trainable_params": report["trainable_params"],
        "val_accuracy": report["epochs"][report["best_epoch"] - 1]["val_accuracy"],
        "test": report["test"],
        "best_epoch": report["best_epoch"],
        "epochs_run": len(report["epochs"]),
        "prefix_cache_used": report["prefix_cache"],
        "train_seconds": sum(report["time"]["epochs_seconds"]),
        "seconds": report["time"]["total_seconds"],
        "search_seconds": sum(trial["seconds"] for trial in trials),
        "epoch_seconds": report["time"]["epochs_seconds"],
        "perplexity_before": forgetting.get("perplexity_before"),
        "perplexity_after": forgetting.get("perplexity_after"),
        "perplexity_drift_pct": forgetting.get("perplexity_drift_pct"),
        "continuation_unchanged": forgetting.get("continuation_unchanged"),
        "peak_memory_mb": report["peak_memory_mb"],
    }


def _intervals(classes, truth, predicted, resamples: int, seed: int, clusters=None) -> dict:
    """95% CIs of test accuracy and macro F1 (over the training classes, as the reports'
    macro F1 is), resampling test examples (their ``clusters``, when given)."""
    from probe.research.uncertainty import metric_intervals

    code = {name: i for i, name in enumerate(classes)}
    true_codes = [code[label] for label in truth]
    pred_codes = [code[label] for label in predicted]
    return metric_intervals(
        true_codes, pred_codes, len(code), n_resamples=resamples, seed=seed, clusters=clusters
    )


def _versions() -> dict:
    import platform

    import torch
    import transformers

    from probe import __version__

    return {
        "probe": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


# --- outputs ----------------------------------------------------------------------------------


def _ci(interval) -> str:
    return "-" if not interval else f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def summary_lines(result: dict) -> list[str]:
    """Which rows differ significantly from the probe, and what each cost."""
    probe_row = result["probe"]
    lines = [
        f"{probe_row['method'].capitalize()}: test accuracy {probe_row['test']['accuracy']:.4f} "
        f"{_ci(probe_row['ci']['accuracy'])}, {probe_row['seconds']:.1f} s "
        f"(extract + {probe_row['heads_fitted']} heads).",
    ]
    for row in result["finetune"]:
        versus = row["vs_probe"]
        verdict = "significantly " + ("better" if versus["accuracy_difference"] > 0 else "worse")
        verdict = verdict if versus["significant"] else "not significantly different"
        search = f"; LR search {row['search_seconds']:.1f} s" if row["lr_searched"] else ""
        lines.append(
            f"{row['method']}: {verdict} (accuracy {versus['accuracy_difference']:+.4f}, "
            f"95% CI {_ci(versus['ci'])}); chosen run {row['seconds']:.1f} s{search}."
        )
    return lines


def markdown_table(result: dict) -> str:
    from probe.finetune.summary import readable

    probe_row = result["probe"]
    bootstrap = result["settings"]["bootstrap"]
    lines = [
        f"# Probe vs fine-tuning: {result['model']}",
        "",
        f"Texts: {readable(result['data'])}. Settings: {readable(result['settings'])}.",
        "",
        "| method | body lr | best epoch / run | test acc [95% CI] | macro F1 [95% CI] "
        "| acc - probe [95% CI] | trainable params | time (s) | LR search (s) "
        "| perplexity drift |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {probe_row['method']} | - | - | {probe_row['test']['accuracy']:.4f} "
        f"{_ci(probe_row['ci']['accuracy'])} | {probe_row['test']['macro_f1']:.4f} "
        f"{_ci(probe_row['ci']['macro_f1'])} | - | {probe_row['trainable_params']:,} | "
        f"{probe_row['seconds']:.1f} | - | 0 |",
    ]
    for row in result["finetune"]:
        drift = row["perplexity_drift_pct"]
        versus = row["vs_probe"]
        marker = " *" if versus["significant"] else ""
        lr_body = "-" if row["lr_body"] is None else f"{row['lr_body']:g}"
        search = f"{row['search_seconds']:.1f}" if row["lr_searched"] else "-"
        start = " (LP-FT)" if row.get("init_head") == "probe" else ""
        lines.append(
            f"| {row['method']}{start} | {lr_body} | "
            f"{row['best_epoch']} / {row['epochs_run']} | {row['test']['accuracy']:.4f} "
            f"{_ci(row['ci']['accuracy'])} | {row['test']['macro_f1']:.4f} "
            f"{_ci(row['ci']['macro_f1'])} | {versus['accuracy_difference']:+.4f} "
            f"{_ci(versus['ci'])}{marker} | {row['trainable_params']:,} | {row['seconds']:.1f} | "
            f"{search} | "
            f"{'-' if drift is None else f'{drift:+.3f}%'} |"
        )
    lines += ["", *summary_lines(result), ""]
    lines += [
        f"CIs: percentile bootstrap, {bootstrap['resamples']} resamples of the "
        f"{bootstrap['over']} (seed {bootstrap['seed']}); * = the paired CI of the difference "
        "excludes 0. Body lr: chosen on validation from the grid (N = 0 trains the head only). "
        "LP-FT: the head starts at the probe of its layer and pool (--init-head). "
        "Time: the chosen run (training epochs with their validation pass, and test "
        "scoring); LR search: every run of the grid. Perplexity drift: the LM "
        "head's perplexity on probe/assets/reference.txt after training, relative to before.",
        "",
    ]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Test accuracy with its CI per row (left), time per row (right, log scale)."""
    from probe.figures import new_figure, save_png

    rows = [result["probe"], *result["finetune"]]
    names = ["probe"] + [r["method"].replace("fine-tune, unfreeze ", "N=") for r in rows[1:]]
    names = [name.split(" (")[0] for name in names]
    accuracy = np.array([r["test"]["accuracy"] for r in rows])
    low = np.array([r["ci"]["accuracy"][0] for r in rows])
    high = np.array([r["ci"]["accuracy"][1] for r in rows])
    x = np.arange(len(rows))
    figure, (left, right) = new_figure(1, 2, size=(11, 4))
    left.errorbar(x, accuracy, yerr=[accuracy - low, high - accuracy], fmt="o", capsize=4)
    left.set_xticks(x, names, rotation=20)
    left.set_ylabel("test accuracy (95% CI)")
    left.grid(alpha=0.3)
    right.bar(x, [r["seconds"] for r in rows], 0.4, label="chosen run")
    right.bar(
        x + 0.4, [r.get("search_seconds", r["seconds"]) for r in rows], 0.4, label="with LR search"
    )
    right.set_xticks(x + 0.2, names, rotation=20)
    right.set_yscale("log")
    right.set_ylabel("seconds")
    right.legend()
    figure.suptitle(f"{Path(str(result['model'])).name}: probe vs fine-tuning")
    save_png(figure, path)


def default_out_dir(model: str, source: str) -> Path:
    """results/reports/compare-MODEL-DATA (under ``$PROBE_OUT`` when set): with the other
    results, never in the store, the package or the checkout's benchmarks/."""
    import re

    from probe.outputs import default_output

    names = [Path(str(model).rstrip("/")).name, Path(str(source)).stem]
    stem = "compare-" + "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", name) for name in names)
    return default_output("reports", stem)


def write_outputs(result: dict, out_dir: str | Path) -> list[Path]:
    """compare.md, compare.json and compare.png in ``out_dir`` (each written atomically)."""
    from probe.errors import ProbeError
    from probe.files import atomic_path, write_atomic

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProbeError(f"cannot create --out-dir {out}: {exc.strerror or exc}") from None
    paths = [out / "compare.md", out / "compare.json", out / "compare.png"]
    write_atomic(paths[0], markdown_table(result))
    write_atomic(paths[1], json.dumps(to_jsonable(result), indent=2) + "\n")
    with atomic_path(paths[2], suffix=".png") as staging:
        plot(result, staging)
    return paths
