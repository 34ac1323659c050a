"""Probe versus fine-tuning on one model and dataset: accuracy, cost and forgetting.

Rows: the best probe of the layer-wise sweep (layer and pool chosen on validation), then
fine-tuning with N = 0, 1, 2 and all blocks unfrozen, each timed with the frozen-prefix
cache and without it (``--no-prefix-cache``; the same run when nothing below the trainable
blocks is frozen). Every fine-tuning run starts from freshly loaded weights. The table is
written as Markdown and JSON, with a PNG plot, to the output folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from probe.data.splits import Splits
from probe.finetune.training import FinetuneConfig, finetune
from probe.jsonable import to_jsonable


def best_probe(model: str, splits: Splits, max_length: int | None, device=None, log=None) -> dict:
    """The layer-wise sweep (every layer x pool) on these splits; the best row on validation.

    The splits are extracted through the feature cache (a second run loads no model) and
    handed to :func:`probe.sweep.run_sweep` as they are, so the probe and fine-tuning see
    exactly the same train, validation and test examples.
    """
    from probe.features.extract import extract
    from probe.features.store import open_cache
    from probe.heads.rows import CachedData, CachedSplit
    from probe.heads.sweep import run_sweep

    log = log or (lambda message: None)
    started, started_wall = time.perf_counter(), time.time()
    paths, parts = {}, {}
    for name in ("train", "val", "test"):
        dataset = getattr(splits, name)
        paths[name] = str(extract(model, dataset, "all", max_length=max_length, device=device))
        parts[name] = CachedSplit(name, [(paths[name], None)], np.asarray(dataset.labels, str))
    extract_seconds = time.perf_counter() - started
    caches = {name: open_cache(path) for name, path in paths.items()}  # each file opened once
    recorded = [opened.meta.get("extract_seconds") for opened in caches.values()]
    hit = all(Path(path).stat().st_mtime < started_wall for path in paths.values())
    cache = caches["train"]
    data = CachedData(
        train=parts["train"], val=parts["val"], test=parts["test"], model=model,
        model_fingerprint=str(cache.meta["model_fingerprint"]),
        max_length=int(cache.meta["max_length"]),
        n_layers_model=int(cache.meta["n_layers_model"]), layers=list(cache.layers),
        cache_keys={name: opened.key for name, opened in caches.items()},
        sources={name: f"{splits.train.source} ({name} split)" for name in paths},
    )  # fmt: skip
    sweep = run_sweep(data)
    best = sweep["best"]
    classifier = sweep["_best_result"].classifier
    log(f"best probe: layer {best['layer']} {best['pool']}, val acc {best['val_accuracy']:.4f}")
    return {
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
        "sweep": [
            {key: row[key] for key in ("layer", "pool", "val_accuracy", "test_accuracy")}
            for row in sweep["entries"]
        ],
    }


def run_comparison(
    model: str,
    splits: Splits,
    base: FinetuneConfig,
    unfreeze=("0", "1", "2", "all"),
    device=None,
    log=None,
) -> dict:
    """The probe row and one row per N; see the module docstring."""
    from probe.features.models import load_backbone

    log = log or (lambda message: None)
    started = time.perf_counter()
    probe_row = best_probe(model, splits, base.max_length, device, log)
    rows = []
    for count in unfreeze:
        log(f"fine-tuning, --unfreeze {count}, with the prefix cache")
        cached = finetune(
            load_backbone(model, device),
            splits,
            replace(base, unfreeze=count, prefix_cache=True),
            log=log,
        ).report
        uncached = cached
        if cached["prefix_cache"]:
            log(f"fine-tuning, --unfreeze {count}, without the prefix cache")
            config = replace(base, unfreeze=count, prefix_cache=False, forgetting_check=False)
            uncached = finetune(load_backbone(model, device), splits, config, log=log).report
        rows.append(_row(cached, uncached))
    return {
        "model": model,
        "data": splits.sizes(),
        "settings": {
            "epochs": base.epochs,
            "batch_size": base.batch_size,
            "max_length": base.max_length,
            "lr_body": base.lr_body,
            "lr_head": base.lr_head,
            "seed": base.seed,
            "pool": base.pool,
            "prefix_dtype": base.prefix_dtype,
        },
        "probe": probe_row,
        "finetune": rows,
        "total_seconds": time.perf_counter() - started,
    }


def _row(cached: dict, uncached: dict) -> dict:
    forgetting = cached["forgetting"] or {}
    with_prefix = cached["time"]["epochs_seconds"]
    without = uncached["time"]["epochs_seconds"]
    return {
        "method": f"fine-tune, unfreeze {cached['unfreeze_arg']}",
        "unfreeze": cached["unfreeze"],
        "trainable_params": cached["trainable_params"],
        "test": cached["test"],
        "test_accuracy_without_prefix": uncached["test"]["accuracy"],
        "best_epoch": cached["best_epoch"],
        "prefix_cache_used": cached["prefix_cache"],
        "prefix_hit": any(p.get("hit") for p in cached["prefix"].values()),
        "prefix_computed_seconds": _total(
            p.get("computed_seconds") for p in cached["prefix"].values()
        ),
        "train_seconds_with_prefix": sum(with_prefix),
        "train_seconds_without_prefix": sum(without),
        "epoch_seconds_with_prefix": with_prefix,
        "epoch_seconds_without_prefix": without,
        "later_epoch_speedup": (
            float(np.mean(without) / np.mean(with_prefix[1:])) if len(with_prefix) > 1 else None
        ),
        "perplexity_before": forgetting.get("perplexity_before"),
        "perplexity_after": forgetting.get("perplexity_after"),
        "perplexity_drift_pct": forgetting.get("perplexity_drift_pct"),
        "continuation_unchanged": forgetting.get("continuation_unchanged"),
        "continuation_after": forgetting.get("continuation_after"),
        "peak_memory_mb": cached["peak_memory_mb"],
    }


def first_time_seconds(probe_row: dict) -> float:
    """The probe's cost on an empty cache: a cache hit's recorded extraction time + the fits."""
    recorded = probe_row.get("extract_seconds_recorded")
    if probe_row.get("extract_hit") and recorded is not None:
        return recorded + probe_row["fit_seconds"]
    return probe_row["seconds"]


def _total(values) -> float | None:
    values = list(values)
    return float(sum(values)) if values and all(v is not None for v in values) else None


def _one_time(recorded: float | None, hit: bool) -> str:
    """' (cache hit; computed once in 96.3 s)' when a cached result hid the one-time cost."""
    if not hit:
        return ""
    cost = "cost not recorded" if recorded is None else f"computed once in {recorded:.1f} s"
    return f" (cache hit; {cost})"


def markdown_table(result: dict) -> str:
    probe_row = result["probe"]
    lines = [
        f"# Probe vs fine-tuning: {result['model']}",
        "",
        f"Data: {result['data']}; settings: {json.dumps(result['settings'])}",
        "",
        "| method | test acc | macro F1 | trainable params | time, prefix cache (s) "
        "| time, no prefix cache (s) | later epoch speed-up | perplexity drift |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {probe_row['method']} | {probe_row['test']['accuracy']:.4f} | "
        f"{probe_row['test']['macro_f1']:.4f} | {probe_row['trainable_params']:,} | "
        f"{probe_row['seconds']:.1f} (extract {probe_row['extract_seconds']:.1f}"
        f"{_one_time(probe_row.get('extract_seconds_recorded'), probe_row.get('extract_hit'))} + "
        f"{probe_row['heads_fitted']} fits {probe_row['fit_seconds']:.1f}) | - | - | 0 |",
    ]
    for row in result["finetune"]:
        speedup = row["later_epoch_speedup"]
        drift = row["perplexity_drift_pct"]
        with_prefix = f"{row['train_seconds_with_prefix']:.1f}" if row["prefix_cache_used"] else "-"
        lines.append(
            f"| {row['method']} | {row['test']['accuracy']:.4f} | {row['test']['macro_f1']:.4f} | "
            f"{row['trainable_params']:,} | {with_prefix} | "
            f"{row['train_seconds_without_prefix']:.1f} | "
            f"{f'{speedup:.1f}x' if speedup and row['prefix_cache_used'] else '-'} | "
            f"{'-' if drift is None else f'{drift:+.3f}%'} |"
        )
    lines += ["", "Seconds per epoch (validation pass included):", ""]
    for row in result["finetune"]:
        with_prefix = ", ".join(f"{s:.1f}" for s in row["epoch_seconds_with_prefix"])
        without = ", ".join(f"{s:.1f}" for s in row["epoch_seconds_without_prefix"])
        if row["prefix_cache_used"]:
            hit = _one_time(row.get("prefix_computed_seconds"), row["prefix_hit"])
            lines.append(
                f"- {row['method']}: with prefix cache {with_prefix}{hit}; without {without}"
            )
        else:
            lines.append(f"- {row['method']}: {without} (nothing frozen below: no prefix)")
    lines += [
        "",
        "Times are training epochs plus the per-epoch validation pass (epoch 1 with the prefix "
        "cache includes computing the prefix); test evaluation and the forgetting check are "
        "excluded. Later epoch speed-up: mean epoch time without the cache over the mean of "
        "epochs 2.. with it. Perplexity drift: the LM head's perplexity on "
        "probe/assets/reference.txt after training, relative to before.",
        "",
    ]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [result["probe"], *result["finetune"]]
    names = ["probe"] + [f"N={r['method'].split()[-1]}" for r in result["finetune"]]
    accuracy = [r["test"]["accuracy"] for r in rows]
    f1 = [r["test"]["macro_f1"] for r in rows]
    x = np.arange(len(rows))
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(x - 0.2, accuracy, 0.4, label="accuracy")
    left.bar(x + 0.2, f1, 0.4, label="macro F1")
    left.set_ylim(min(accuracy + f1) - 0.05, 1.0)
    left.set_xticks(x, names)
    left.set_title("test metrics")
    left.legend(loc="lower right")
    tuned = result["finetune"]
    tx = np.arange(len(tuned))
    cached = [r["train_seconds_with_prefix"] if r["prefix_cache_used"] else 0 for r in tuned]
    right.bar(tx - 0.2, cached, 0.4, label="with prefix cache")
    right.bar(tx + 0.2, [r["train_seconds_without_prefix"] for r in tuned], 0.4,
              label="without")  # fmt: skip
    right.axhline(
        first_time_seconds(result["probe"]), color="gray", linestyle="--",
        label="probe: extract (first time) + every fit",
    )  # fmt: skip
    right.set_xticks(tx, names[1:])
    right.set_yscale("log")
    right.set_ylabel("seconds")
    right.set_title("fine-tuning time")
    right.legend()
    figure.suptitle(f"{result['model']}: probe vs partial fine-tuning")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_outputs(result: dict, out_dir: str | Path, stem: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.md", out / f"{stem}.json", out / f"{stem}.png"]
    paths[0].write_text(markdown_table(result))
    paths[1].write_text(json.dumps(to_jsonable(result), indent=2))
    plot(result, paths[2])
    return paths
