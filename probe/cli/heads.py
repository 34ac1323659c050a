"""``probe fit`` and ``probe sweep``: heads on cached features (``probe.research.commands``)."""

from __future__ import annotations

import json

import click

from probe.cli.common import (
    fail_cleanly,
    head_data_options,
    head_options,
    say,
    stack_options,
    verbosity_options,
)


@click.command()
@head_data_options
@click.option(
    "--layer",
    default="-1",
    show_default=True,
    help="Model layer: 0 = embeddings .. L = final output; -1 = last; "
    "12,18,24 = those layers side by side; mix = a learned mix of all.",
)
@click.option("--pool", default="last", show_default=True, help="last or mean.")
@click.option(
    "--out",
    type=click.Path(dir_okay=True),
    help="Head path (.json, or a directory). Default: "
    "results/heads/MODEL-DATA-lLAYER-POOL.json ($PROBE_OUT instead of results when set).",
)
@click.option("--overwrite", is_flag=True, help="Replace a head that exists at that path.")
@verbosity_options
@fail_cleanly
def fit(layer, pool, out, overwrite, **options):
    """Fit a linear head on cached features of one layer and pool; save it; report metrics.

    Data files are extracted on demand through the cache (a second call runs no model).
    C is chosen on --val, else by 5-fold cross-validation on train; --test only scores.
    With --labels, a new label set is joined to cached texts by id or exact text and the
    backbone is never loaded.

    \b
    Examples:
      probe fit --model smollm2-135m --data data/sms_spam.csv --layer 20 --pool last
      probe fit --model gpt2 --train train.csv --val val.csv --test test.csv --layer 8
      probe fit --train ~/.cache/probe/features/KEY.h5 --labels topics.csv --layer 8 --json
    """
    from probe.research.commands import fit_and_save, format_fit

    summary = fit_and_save(layer, pool, out, overwrite=overwrite, **head_options(options))
    click.echo(json.dumps(summary, indent=2) if options["as_json"] else format_fit(summary))


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
            for key in ("resamples", "repeats", "prefer_early", "control", "mdl", "baselines")
        }
        return command(research={**research, "multi": multi}, **kwargs)

    import functools

    return stack_options(functools.update_wrapper(collect, command), options)


@click.command()
@head_data_options
@click.option(
    "--layers",
    default="all",
    show_default=True,
    help="Layers to fit (and to extract): all, 0,6,11, 4:9, -1.",
)
@click.option("--pools", default="last,mean", show_default=True)
@click.option(
    "--jobs", type=click.IntRange(min=1), help="Parallel fits (default: one per CPU core)."
)
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="PNG path (default OUT_DIR/sweep.png)."
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    help="Where sweep.md, sweep.json, sweep.png and the selected head go "
    "(default results/sweeps/MODEL-DATA; $PROBE_OUT instead of results when set).",
)
@click.option("--overwrite", is_flag=True, help="Replace a selected head that exists there.")
@research_options
@verbosity_options
@fail_cleanly
def sweep(layers, pools, jobs, plot, out_dir, overwrite, research, **options):
    """Fit a head on every stored layer x pool; pick the best on validation; table + plot.

    The row with the lowest --val log loss (else out-of-fold log loss on train) is chosen;
    rows a paired bootstrap cannot tell from it are marked (=), and --prefer-early takes the
    shallowest of them. Test accuracy and macro-F1 carry 95% bootstrap CIs and choose
    nothing. --baselines adds majority, bag-of-words and random-weights rows and each row's
    selectivity against them; --control, --mdl and --repeats add memorisation capacity,
    online codelength and refits on resampled training sets. Writes a Markdown table, JSON,
    a PNG plot of accuracy against layer and the selected head to --out-dir; prints the
    table (or JSON).

    \b
    Examples:
      probe sweep --model smollm2-135m --data data/sms_spam.csv
      probe sweep --model smollm2-135m --train sst2_train.csv --val sst2_val.csv --json
      probe sweep --data ~/.cache/probe/features/KEY.h5 --labels topics.csv --pools mean
      probe sweep --train tr.csv --val va.csv --test te.csv --baselines --mdl --mix
    """
    from probe.research.commands import sweep_and_save

    report, table = sweep_and_save(
        layers,
        pools,
        jobs=jobs,
        plot=plot,
        out_dir=out_dir,
        research=research,
        overwrite=overwrite,
        **head_options(options),
    )
    say("wrote " + ", ".join(report["files"]))
    click.echo(json.dumps(report, indent=2) if options["as_json"] else table)


COMMANDS = [fit, sweep]
