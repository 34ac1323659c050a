"""``probe finetune`` and ``probe compare``: the end-to-end baseline and the comparison."""

from __future__ import annotations

import json

import click

from probe.cli.common import (
    detail,
    fail_cleanly,
    keep_going_option,
    model_option,
    verbosity_options,
)


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
        ),
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


@click.command()
@model_option
@split_data_options
@click.option(
    "--unfreeze",
    default="0",
    show_default=True,
    help="Blocks below the head to train: 0 (head only), 1, 2, ... or all.",
)
@click.option("--layer", help="Hidden-state layer the head reads (default: final); -1 = last.")
@training_options
@click.option(
    "--init-head",
    default="auto",
    show_default=True,
    help="Where the head starts: probe (LP-FT: the probe of --layer/--pool fitted on cached "
    "features, C on validation), zero, a 'probe fit' head file, or auto (probe when one can "
    "be fitted, else zero).",
)
@click.option("--no-prefix-cache", is_flag=True, help="Run the frozen blocks every epoch.")
@click.option("--out", type=click.Path(file_okay=False), help="Save model + head to this folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@verbosity_options
@fail_cleanly
def finetune(model, no_prefix_cache, as_json, **options):
    """Fine-tune the last N blocks and a linear head: the baseline the probe is measured against.

    The head reads the pooled (--pool) hidden state of --layer; blocks above it are dropped,
    the last --unfreeze blocks below it (and the final norm, on the final layer) train with
    --lr-body, the head with --lr-head (AdamW). The frozen blocks run once: their output is
    cached in the store's prefix/, so an epoch costs only the trainable blocks. The best
    epoch on validation is kept and scored on test. The head starts at the linear probe of
    that layer and pool (LP-FT), standardisation folded in. Causal models also report the LM
    head's perplexity on a fixed text and a greedy continuation, before and after.

    \b
    Examples:
      probe finetune --model smollm2-135m --data data/sms_spam.csv --balance --unfreeze 1
      probe finetune --model gpt2 --train train.csv --val val.csv --test test.csv \\
          --unfreeze all --epochs 2 --json
      probe finetune --model gpt2 --data sms.csv --layer 8 --pool mean --unfreeze 2 \\
          --init-head results/heads/gpt2-l8-mean.json --out models/sms-gpt2
      probe finetune --model smollm2-135m --data data/sms_spam.csv --init-head zero
      probe predict --head models/sms-gpt2/head.json "WINNER! claim your prize"
    """
    from probe.finetune.commands import finetune_and_save, format_report
    from probe.jsonable import to_jsonable

    report = finetune_and_save(model, prefix_cache=not no_prefix_cache, **_library(options))
    click.echo(json.dumps(to_jsonable(report)) if as_json else format_report(report))


def _library(options: dict) -> dict:
    """The library's keywords among a command's options (not -q, -v): each option's name is
    the keyword of ``finetune_and_save`` or ``compare_and_save`` it sets."""
    return {k: v for k, v in options.items() if k not in ("quiet", "verbose")}


@click.command()
@model_option
@split_data_options
@training_options
@click.option(
    "--unfreeze",
    "unfreeze_list",
    default="0,1,2,all",
    show_default=True,
    help="Comma-separated N values to fine-tune with.",
)
@click.option(
    "--lr-grid",
    default="1e-5,3e-5,1e-4",
    show_default=True,
    help="Body learning rates tried for each N > 0; the best on validation is kept.",
)
@click.option("--no-book", is_flag=True, help="Leave out the book-recipe row.")
@click.option(
    "--time-without-prefix",
    is_flag=True,
    help="Also time each chosen run without the prefix cache (one more run per N).",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=100),
    default=1000,
    show_default=True,
    help="Bootstrap resamples of the test examples for the CIs.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    help="Where compare.md, .json and .png go "
    "(default results/reports/compare-MODEL-DATA; $PROBE_OUT instead of results when set).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON on stdout.")
@keep_going_option
@verbosity_options
@fail_cleanly
def compare(model, no_book, as_json, keep_going, **options):
    """Best probe of the layer-wise sweep versus fine-tuning with N = 0, 1, 2, all blocks.

    Each N > 0 picks its body learning rate from --lr-grid on validation (up to --epochs,
    early stopping with --patience); a last row follows the book's recipe (last block +
    final norm, AdamW 5e-5, weight decay 0.1, 5 epochs, batch 8). Test accuracy and macro F1
    come with 95% bootstrap CIs; each row's difference from the probe with a paired
    bootstrap CI, and the cost of the chosen run and of the whole LR search. Sweep rows that
    cannot be fitted are listed on stderr and, once the files are written, exit 3 (--keep-going: 0).

    \b
    Examples:
      probe compare --model smollm2-135m --data data/sms_spam.csv --balance \\
          --epochs 5 --patience 2 --max-length 128 --out-dir results/compare-sms
      probe report results --out report.html
    """
    from probe.finetune.commands import compare_and_save
    from probe.finetune.compare import markdown_table
    from probe.finetune.summary import console_summary
    from probe.jsonable import to_jsonable
    from probe.research.sweep import report_errors

    result, paths = compare_and_save(model, book=not no_book, **_library(options))
    if as_json:
        click.echo(json.dumps(to_jsonable(result)))
    else:
        detail(markdown_table(result))  # -v: every column, as compare.md holds them
        click.echo(console_summary(result, paths))
    report_errors(result["probe"]["errors"], keep_going)


COMMANDS = [finetune, compare]
