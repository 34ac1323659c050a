"""``probe finetune`` and ``probe compare`` as library calls: options in, a report out.

The commands parse their options, call ``finetune_and_save`` or ``compare_and_save`` and
print what comes back (``format_report`` is the fine-tuning report's text). Keyword
arguments are the commands' options with their defaults: the data options of
``probe.data.splits.load_splits`` and the training options of ``FinetuneConfig``.
"""

from __future__ import annotations

from pathlib import Path

from probe.errors import ProbeError
from probe.messages import say

SPLIT_OPTIONS = {
    "train_file": None,
    "val_file": None,
    "test_file": None,
    "data": None,
    "text_col": "text",
    "label_col": "label",
    "test_size": 0.2,
    "val_size": 0.1,
    "balance": False,
    "seed": 0,
}
TRAINING_OPTIONS = (
    "pool",
    "lr_body",
    "lr_head",
    "weight_decay",
    "grad_clip",
    "epochs",
    "patience",
    "batch_size",
    "max_length",
    "prefix_dtype",
)


def _splits(options: dict):
    """The train/val/test texts the split options name (said on stderr)."""
    from probe.data.splits import load_splits
    from probe.finetune.summary import readable

    o = {**SPLIT_OPTIONS, **{k: v for k, v in options.items() if k in SPLIT_OPTIONS}}
    splits = load_splits(
        train=o["train_file"],
        val=o["val_file"],
        test=o["test_file"],
        data=o["data"],
        text_col=o["text_col"],
        label_col=o["label_col"],
        test_size=o["test_size"],
        val_size=o["val_size"],
        seed=o["seed"],
        balance=o["balance"],
    )
    say(f"texts: {readable(splits.sizes())}")
    return splits


def _config(options: dict, **extra):
    """A ``FinetuneConfig`` of the training options given (its defaults for the rest)."""
    from probe.finetune.training import FinetuneConfig

    given = {key: options[key] for key in TRAINING_OPTIONS if options.get(key) is not None}
    seed = options.get("seed", SPLIT_OPTIONS["seed"])
    return FinetuneConfig(**given, seed=seed, **extra)


def _check_options(options: dict) -> None:
    unknown = set(options) - set(SPLIT_OPTIONS) - set(TRAINING_OPTIONS) - {"device"}
    if unknown:
        raise ProbeError(f"unknown option(s): {', '.join(sorted(unknown))}")


def finetune_and_save(
    model: str,
    *,
    unfreeze="0",
    layer=None,
    init_head="auto",
    prefix_cache: bool = True,
    out=None,
    **options,
) -> dict:
    """Fine-tune the last ``unfreeze`` blocks and a head; save model + head to ``out`` when
    given; return the report (``probe finetune --json``)."""
    from probe.finetune.training import finetune, save_finetuned

    _check_options(options)
    splits = _splits(options)
    config = _config(
        options, unfreeze=unfreeze, layer=layer, init_head=init_head, prefix_cache=prefix_cache
    )
    result = finetune(model, splits, config, device=options.get("device", "auto"))
    if out:
        head_path = save_finetuned(result, out)
        result.report["saved"] = {"model": out, "head": str(head_path)}
    return result.report


def format_report(report: dict) -> str:
    """``probe finetune``'s text report of ``finetune_and_save``'s report."""
    test = report["test"]
    lines = [
        f"model {report['model']}: layer {report['layer']}/{report['num_blocks']}, "
        f"pool {report['pool']}, unfreeze {report['unfreeze']} blocks"
        f"{' + final norm' if report['final_norm_trainable'] else ''}",
        f"trainable parameters {report['trainable_params']:,}; best epoch "
        f"{report['best_epoch']} of {len(report['epochs'])} (validation accuracy "
        f"{report['epochs'][report['best_epoch'] - 1]['val_accuracy']:.4f})",
        f"test accuracy {test['accuracy']:.4f}  macro P {test['macro_precision']:.4f}  "
        f"R {test['macro_recall']:.4f}  F1 {test['macro_f1']:.4f}",
        "confusion (rows true, columns predicted): "
        + "  ".join(
            f"{name}: {row}"
            for name, row in zip(test["labels"], test["confusion_matrix"], strict=True)
        ),
        f"time {report['time']['total_seconds']:.1f} s (epochs "
        + ", ".join(f"{s:.1f}" for s in report["time"]["epochs_seconds"])
        + f"; prefix cache {'on' if report['prefix_cache'] else 'off'}), "
        f"peak memory {report['peak_memory_mb']:.0f} MB",
    ]
    start = report.get("init_head") or {"kind": "zero"}
    if start["kind"] == "probe":
        lines.insert(
            2,
            f"head started at the probe (LP-FT): C {start['C']:g}, validation "
            f"accuracy {start['val_accuracy']:.4f}, {start['seconds']:.1f} s",
        )
    else:
        lines.insert(
            2,
            f"head started at {start.get('path') or 'zero'}"
            + (f" ({start['reason']})" if start.get("reason") else ""),
        )
    forgetting = report.get("forgetting")
    if forgetting:
        lines.append(
            f"perplexity on the reference text {forgetting['perplexity_before']:.3f} -> "
            f"{forgetting['perplexity_after']:.3f} ({forgetting['perplexity_drift_pct']:+.3f}%); "
            f"greedy continuation "
            f"{'unchanged' if forgetting['continuation_unchanged'] else 'changed'}: "
            f"{forgetting['continuation_after']!r}"
        )
    if report.get("saved"):
        lines.append(f"saved {report['saved']['model']} (head {report['saved']['head']})")
    return "\n".join(lines)


def compare_and_save(
    model: str,
    *,
    unfreeze_list="0,1,2,all",
    lr_grid="1e-5,3e-5,1e-4",
    book: bool = True,
    time_without_prefix: bool = False,
    resamples: int = 1000,
    out_dir=None,
    **options,
) -> tuple[dict, list[Path]]:
    """The best probe of the sweep versus fine-tuning with each N of ``unfreeze_list``;
    writes compare.md, .json and .png to ``out_dir`` (default results/reports/...);
    return (the comparison, its files)."""
    from probe.finetune.compare import default_out_dir, run_comparison, write_outputs

    _check_options(options)
    try:
        grid = [float(part) for part in str(lr_grid).split(",") if part.strip()]
    except ValueError:
        raise ProbeError(f"--lr-grid must be comma-separated numbers, not '{lr_grid}'") from None
    if not grid or min(grid) <= 0:
        raise ProbeError("--lr-grid needs at least one positive learning rate")
    splits = _splits(options)
    counts = [part.strip() for part in str(unfreeze_list).split(",") if part.strip()]
    source = options.get("data") or options.get("train_file")
    out = Path(out_dir) if out_dir else default_out_dir(model, source)
    result = run_comparison(
        model,
        splits,
        _config(options),
        counts,
        lr_grid=grid,
        book=book,
        time_without_prefix=time_without_prefix,
        resamples=resamples,
        device=options.get("device", "auto"),
    )
    return result, write_outputs(result, out)
