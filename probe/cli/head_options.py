"""Where a head command's labelled texts come from, and the head's own options: shared by
``probe fit``, ``probe sweep`` and ``probe curve``."""

from __future__ import annotations

import click

from probe.cli.common import COLUMN_OPTIONS, reading_options, stack_options


def head_data_options(command):
    """Where the labelled texts come from, and the head's own options; shared by fit, sweep
    and curve."""
    options = [
        click.option(
            "--model",
            default=None,
            help="Model to extract with (default gpt2); checked against cache files.",
        ),
        click.option(
            "--data",
            help="One file (CSV/TSV/JSONL/Parquet or cache .h5); a 'split' "
            "column (train/val/test) splits it, else --test-size does.",
        ),
        click.option("--train", help="Training file or cache .h5."),
        click.option("--val", help="Validation file or cache .h5: chooses C (and the layer)."),
        click.option("--test", help="Test file or cache .h5: scored only, never chooses."),
        click.option(
            "--labels",
            "labels_file",
            help="New label set (text or id + label, "
            "optional split) for texts already cached: no model is loaded.",
        ),
        *COLUMN_OPTIONS,
        *reading_options(None),
        click.option(
            "--test-size",
            default=0.2,
            show_default=True,
            help="Test fraction held out (stratified, said on stderr) when no test "
            "split is given; 0 trains on all.",
        ),
        click.option("--seed", default=0, show_default=True, help="Seed of that split."),
        click.option("--group-col", help="Column of groups no split or fold parts (an author)."),
        click.option("--max-length", type=int, help="Tokens per text when extracting."),
        click.option("--C", "C", type=float, help="Inverse L2 strength (default: searched)."),
        click.option("--alpha", type=float, help="Ridge penalty of --task regression (searched)."),
        click.option("--exact", is_flag=True, help="Solve every C: no screen, no early stop."),
        click.option(
            "--class-weight",
            type=click.Choice(["balanced"]),
            help="Weight classes inversely to their frequency.",
        ),
        click.option(
            "--device", default="auto", show_default=True, help="Device for on-demand extraction."
        ),
        click.option("--json", "as_json", is_flag=True, help="JSON on stdout."),
        click.option(
            "--task",
            default=None,
            help="regression: numbers in --label-col (several: a,b). Word-level: upos, "
            "xpos, deprel (edge probing) or a label-list column of token-JSONL; CoNLL-U / "
            "token-JSONL data implies word rows (default upos).",
        ),
        click.option(
            "--multi-label",
            is_flag=True,
            help="Several labels per text: one --label-col of label sets (a|b), or several "
            "0/1 columns (--label-col a,b,c).",
        ),
        click.option(
            "--label-sep",
            default="|",
            show_default=True,
            help="Separator of a --multi-label label-set column.",
        ),
        click.option(
            "--word-pool",
            type=click.Choice(["first", "last", "mean"]),
            default=None,
            help="Word rows: pool of a word's subwords (default last for causal "
            "models, first for encoders).",
        ),
        click.option(
            "--val-size",
            default=0.1,
            show_default=True,
            help="Word rows without --val: training sentences held out to choose C "
            "and the layer (0: 5-fold CV).",
        ),
    ]
    return stack_options(command, options)


def probe_option(several: bool):
    """``--probe``: the head's family (``probe.heads.families``); a sweep compares several."""
    more = (
        " Several, comma-separated, side by side (sparse:1,2,4 = sparse:1,sparse:2,..."
        if several
        else ""
    )
    return click.option(
        "--probe",
        default=None,
        help="logistic (default), mass-mean (difference of class means), mass-mean-iid "
        "(shrinkage LDA), sparse:K (the K best neurons on train, then logistic) or mlp "
        "(one hidden layer, early stopping on --val)." + (more and more + ")."),
    )


def head_options(options: dict) -> dict:
    """The library's keywords among a head command's options (all but --json). A regression
    head's penalty is ``--alpha`` (ridge); the library takes it where a classifier takes C."""
    from probe.errors import ProbeError
    from probe.features.pooling import parse_positions

    found = {k: v for k, v in options.items() if k not in ("as_json", "alpha")}
    found["positions"] = parse_positions(options.get("positions", ()))
    regression = options.get("task") == "regression"
    if options.get("alpha") is not None:
        if not regression:
            raise ProbeError("--alpha is the ridge penalty of --task regression; classifiers: --C")
        found["C"] = options["alpha"]
    elif regression and options.get("C") is not None:
        raise ProbeError("--C is a classifier's inverse penalty; a regression head takes --alpha")
    return found
