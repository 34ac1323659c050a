"""``probe finetune`` and ``probe compare``: the end-to-end baseline and the comparison."""

from __future__ import annotations

import json
from pathlib import Path

import click

from probe.cli.common import fail_cleanly, model_option, verbosity_options


def split_data_options(command):
    """--train/--val/--test, or --data (with a split column, or split here)."""
    options = [
        click.option("--train", "train_file", help="Training data file."),
        click.option("--val", "val_file", help="Validation data (default: carved from train)."),
        click.option("--test", "test_file", help="Test data (default: carved from train)."),
        click.option("--data", help="One file: split by its 'split' column, or stratified here."),
        click.option("--text-col", default="text", show_default=True),
        click.option("--label-col", default="label", show_default=True),
        click.option("--test-size", type=float, default=0.2, show_default=True),
        click.option("--val-size", type=float, default=0.1, show_default=True),
        click.option(
            "--balance", is_flag=True, help="Draw every class down to the rarest one's size."
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Splits and training."),
        click.option("--max-length", type=click.IntRange(min=1), help="Tokens per text."),
        click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto."),
    ]
    for decorator in reversed(options):
        command = decorator(command)
    return command


def training_options(command):
    options = [
        click.option(
            "--pool", type=click.Choice(["last", "mean"]), default="last", show_default=True
        ),
        click.option("--lr-body", type=float, default=1e-5, show_default=True),
        click.option("--lr-head", type=float, default=1e-3, show_default=True),
        click.option("--weight-decay", type=float, default=0.01, show_default=True),
        click.option("--grad-clip", type=float, default=1.0, show_default=True, help="0: off."),
        click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True),
        click.option(
            "--patience",
            type=click.IntRange(min=1),
            help="Stop after this many epochs without a better validation score (default: off).",
        ),  # fmt: skip
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True),
        click.option(
            "--prefix-dtype",
            type=click.Choice(["float16", "float32"]),
            default="float16",
            show_default=True,
            help="How the frozen prefix's hidden states are stored.",
        ),
    ]
    for decorator in reversed(options):
        command = decorator(command)
    return command


def _load_splits(options: dict):
    from probe.data.splits import load_splits

    return load_splits(
        train=options["train_file"], val=options["val_file"], test=options["test_file"],
        data=options["data"], text_col=options["text_col"], label_col=options["label_col"],
        test_size=options["test_size"], val_size=options["val_size"], seed=options["seed"],
        balance=options["balance"],
    )  # fmt: skip


def _config(options: dict, **extra):
    from probe.finetune.training import FinetuneConfig

    return FinetuneConfig(
        pool=options["pool"], lr_body=options["lr_body"], lr_head=options["lr_head"],
        weight_decay=options["weight_decay"], grad_clip=options["grad_clip"],
        epochs=options["epochs"], patience=options["patience"], batch_size=options["batch_size"],
        seed=options["seed"],
        max_length=options["max_length"], prefix_dtype=options["prefix_dtype"],
        quiet=options["quiet"], **extra,
    )  # fmt: skip


@click.command()
@model_option
@split_data_options
@click.option(
    "--unfreeze", default="0", show_default=True,
    help="Blocks below the head to train: 0 (head only), 1, 2, ... or all.",
)  # fmt: skip
@click.option("--layer", help="Hidden-state layer the head reads (default: final); -1 = last.")
@training_options
@click.option(
    "--init-head", default="auto", show_default=True,
    help="Where the head starts: probe (LP-FT: the probe of --layer/--pool fitted on cached "
    "features, C on validation), zero, a 'probe fit' head file, or auto (probe when one can "
    "be fitted, else zero).",
)  # fmt: skip
@click.option("--no-prefix-cache", is_flag=True, help="Run the frozen blocks every epoch.")
@click.option("--out", type=click.Path(file_okay=False), help="Save model + head to this folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@verbosity_options
@fail_cleanly
def finetune(model, unfreeze, layer, init_head, no_prefix_cache, out, as_json, **options):
    """Fine-tune the last N blocks and a linear head: the baseline the probe is measured against.

    The head reads the pooled (--pool) hidden state of --layer; blocks above it are dropped,
    the last --unfreeze blocks below it (and the final norm, on the final layer) train with
    --lr-body, the head with --lr-head (AdamW). The frozen blocks run once: their output is
    cached under $PROBE_CACHE/prefix, so an epoch costs only the trainable blocks. The best
    epoch on validation is kept and scored on test. The head starts at the linear probe of
    that layer and pool (LP-FT), standardisation folded in. Causal models also report the LM
    head's perplexity on a fixed text and a greedy continuation, before and after.

    \b
    Examples:
      probe finetune --model smollm2-135m --data data/sms_spam.csv --balance --unfreeze 1
      probe finetune --model gpt2 --train train.csv --val val.csv --test test.csv \\
          --unfreeze all --epochs 2 --json
      probe finetune --model gpt2 --data sms.csv --layer 8 --pool mean --unfreeze 2 \\
          --init-head heads/gpt2-l8-mean.json --out models/sms-gpt2
      probe finetune --model smollm2-135m --data data/sms_spam.csv --init-head zero
      probe predict --head models/sms-gpt2/head.json "WINNER! claim your prize"
    """
    from probe.finetune.training import finetune as run_finetune
    from probe.finetune.training import save_finetuned

    log = (lambda m: None) if options["quiet"] else (lambda m: click.echo(m, err=True))
    splits = _load_splits(options)
    log(f"data: {splits.sizes()}")
    config = _config(
        options, unfreeze=unfreeze, layer=layer, init_head=init_head,
        prefix_cache=not no_prefix_cache,
    )  # fmt: skip
    result = run_finetune(model, splits, config, device=options["device"], log=log)
    if out:
        head_path = save_finetuned(result, out)
        result.report["saved"] = {"model": out, "head": str(head_path)}
    if as_json:
        from probe.jsonable import to_jsonable

        click.echo(json.dumps(to_jsonable(result.report)))
    else:
        click.echo(format_report(result.report))


def format_report(report: dict) -> str:
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
        lines.insert(2, f"head started at the probe (LP-FT): C {start['C']:g}, validation "
                     f"accuracy {start['val_accuracy']:.4f}, {start['seconds']:.1f} s")  # fmt: skip
    else:
        lines.insert(2, f"head started at {start.get('path') or 'zero'}"
                     + (f" ({start['reason']})" if start.get("reason") else ""))  # fmt: skip
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


@click.command()
@model_option
@split_data_options
@training_options
@click.option(
    "--unfreeze", "unfreeze_list", default="0,1,2,all", show_default=True,
    help="Comma-separated N values to fine-tune with.",
)  # fmt: skip
@click.option(
    "--lr-grid", default="1e-5,3e-5,1e-4", show_default=True,
    help="Body learning rates tried for each N > 0; the best on validation is kept.",
)  # fmt: skip
@click.option("--no-book", is_flag=True, help="Leave out the book-recipe row.")
@click.option(
    "--time-without-prefix", is_flag=True,
    help="Also time each chosen run without the prefix cache (one more run per N).",
)  # fmt: skip
@click.option(
    "--resamples", type=click.IntRange(min=100), default=1000, show_default=True,
    help="Bootstrap resamples of the test examples for the CIs.",
)  # fmt: skip
@click.option(
    "--out-dir", type=click.Path(file_okay=False),
    help="Where compare.md, .json and .png go (default $PROBE_CACHE/reports/compare-MODEL-DATA).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON on stdout.")
@verbosity_options
@fail_cleanly
def compare(model, unfreeze_list, lr_grid, no_book, time_without_prefix, resamples, out_dir,
            as_json, **options):  # fmt: skip
    """Best probe of the layer-wise sweep versus fine-tuning with N = 0, 1, 2, all blocks.

    Each N > 0 picks its body learning rate from --lr-grid on validation (up to --epochs,
    early stopping with --patience); a last row follows the book's recipe (last block +
    final norm, AdamW 5e-5, weight decay 0.1, 5 epochs, batch 8). Test accuracy and macro F1
    come with 95% bootstrap CIs; each row's difference from the probe with a paired
    bootstrap CI, and the cost of the chosen run and of the whole LR search.

    \b
    Examples:
      probe compare --model smollm2-135m --data data/sms_spam.csv --balance \\
          --epochs 5 --patience 2 --max-length 128 --out-dir results/compare-sms
      probe report results --out report.html
    """
    from probe.errors import ProbeError
    from probe.finetune.compare import (
        default_out_dir,
        markdown_table,
        run_comparison,
        write_outputs,
    )
    from probe.jsonable import to_jsonable

    try:
        grid = [float(part) for part in lr_grid.split(",") if part.strip()]
    except ValueError:
        raise ProbeError(f"--lr-grid must be comma-separated numbers, not '{lr_grid}'") from None
    if not grid or min(grid) <= 0:
        raise ProbeError("--lr-grid needs at least one positive learning rate")
    log = (lambda m: None) if options["quiet"] else (lambda m: click.echo(m, err=True))
    splits = _load_splits(options)
    log(f"data: {splits.sizes()}")
    counts = [part.strip() for part in unfreeze_list.split(",") if part.strip()]
    out = (
        Path(out_dir)
        if out_dir
        else default_out_dir(model, options["data"] or options["train_file"])
    )
    result = run_comparison(
        model, splits, _config(options), counts, lr_grid=grid, book=not no_book,
        time_without_prefix=time_without_prefix, resamples=resamples,
        device=options["device"], log=log,
    )  # fmt: skip
    paths = write_outputs(result, out)
    if as_json:
        click.echo(json.dumps(to_jsonable(result)))
    else:
        click.echo(markdown_table(result))
        for path in paths:
            click.echo(str(path))


COMMANDS = [finetune, compare]
