"""``probe curve`` (a learning curve of one row, or of a sweep's selected row), and the research
options ``probe sweep`` takes (intervals, selection, measures, baselines)."""

from __future__ import annotations

import json

import click

from probe.cli.common import (
    fail_cleanly,
    say,
    stack_options,
    verbosity_options,
)
from probe.cli.head_options import head_data_options, head_options


@click.command()
@head_data_options
@click.option("--layer", default=None, help="Model layer (or 12,18,24); default -1.")
@click.option("--pool", default=None, help="last or mean (default last).")
@click.option(
    "--from-sweep",
    type=click.Path(exists=True),
    help="A sweep folder (or its sweep.json): its selected row and its data.",
)
@click.option(
    "--sizes",
    default="1,2,4,8,16,32,64,128",
    show_default=True,
    help="Training examples per class; the whole training set is always added.",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="Draws per size."
)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Parallel fits."
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    help="Where curve.md, curve.json and curve.png go "
    "(default results/curves/MODEL-DATA-lL-POOL; $PROBE_OUT instead of results when set).",
)
@verbosity_options
@fail_cleanly
def curve(layer, pool, from_sweep, sizes, seeds, jobs, out_dir, **options):
    """Learning curve: accuracy at 1, 2, 4 .. 128 labelled examples per class and all.

    Each size is drawn --seeds times (k rows of every class); C is chosen on --val when
    given; accuracy is measured on --test (else --val). Prints mean and sd per size and
    writes a table, JSON and a PNG plot with sd bands.

    \b
    Examples:
      probe curve --model smollm2-135m --train tr.csv --val va.csv --test te.csv --layer 17
      probe curve --from-sweep results/sweeps/smollm2-135m-sst2
    """
    from probe.research.commands import curve_and_save
    from probe.research.curve import markdown_table

    result, paths = curve_and_save(
        layer,
        pool,
        from_sweep=from_sweep,
        sizes=sizes,
        seeds=seeds,
        jobs=jobs,
        out_dir=out_dir,
        **head_options(options),
    )
    say("wrote " + ", ".join(map(str, paths)))
    click.echo(json.dumps(result, indent=2) if options["as_json"] else markdown_table(result))


COMMANDS = [curve]


def research_options(command):
    """Uncertainty, selection and the research measures of ``probe sweep``; collected into
    one ``research`` dict of ``run_sweep`` keywords."""
    options = [
        click.option(
            "--resamples",
            type=click.IntRange(min=10),
            default=1000,
            show_default=True,
            help="Bootstrap resamples of every CI and paired comparison.",
        ),
        click.option(
            "--repeats",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Refit each row on R bootstrap resamples of train: mean and sd.",
        ),
        click.option(
            "--prefer-early",
            is_flag=True,
            help="Select the shallowest row that "
            "the paired bootstrap cannot tell from the lowest-loss row.",
        ),
        click.option(
            "--metric",
            help="accuracy, macro_f1, balanced_accuracy or auroc (regression: r2, pearson_r, "
            "spearman_rho, mae, rmse; multi-label: macro_f1, micro_f1, subset_accuracy, lrap): "
            "select the row with the "
            "highest validation (else out-of-fold) METRIC, "
            "rows a paired bootstrap cannot tell from it marked =, and lead the summary "
            "with its test value. Default: lowest log loss selects, accuracy leads. "
            "auroc: binary tasks.",
        ),
        click.option(
            "--baselines",
            is_flag=True,
            help="Add majority, bag-of-words and "
            "random-weights rows (same model, re-initialised, extracted once), and "
            "each row's accuracy minus theirs with paired-bootstrap CIs.",
        ),
        click.option(
            "--control",
            is_flag=True,
            help="Memorisation capacity per row: train "
            "accuracy on labels hashed from the text (random labels).",
        ),
        click.option(
            "--mdl",
            is_flag=True,
            help="Online codelength per row (Voita & "
            "Titov 2020) and compression over the uniform code.",
        ),
        click.option(
            "--mix",
            is_flag=True,
            help="Add a learned scalar mix of all the swept layers (per pool) as a row.",
        ),
        click.option(
            "--concat",
            "concat",
            multiple=True,
            help="Add a row on these layers' features side by side, e.g. 12,18,24 (repeatable).",
        ),
    ]

    def collect(**kwargs):
        multi = (["mix"] if kwargs.pop("mix") else []) + [spec for spec in kwargs.pop("concat")]
        research = {
            key: kwargs.pop(key)
            for key in (
                "resamples",
                "repeats",
                "prefer_early",
                "metric",
                "control",
                "mdl",
                "baselines",
            )
        }
        return command(research={**research, "multi": multi}, **kwargs)

    import functools

    return stack_options(functools.update_wrapper(collect, command), options)
