"""``probe fit`` and ``probe sweep``: heads on cached features (``probe.research.commands``)."""

from __future__ import annotations

import json

import click

from probe.cli.common import (
    detail,
    fail_cleanly,
    keep_going_option,
    say,
    verbosity_options,
)
from probe.cli.head_options import head_data_options, head_options, probe_option
from probe.cli.research import research_options

features_option = click.option(
    "--features",
    type=click.Path(dir_okay=False),
    help="Features computed elsewhere: .npy [N, D] or [layers, N, D], .npz, .safetensors "
    "or a probe cache export; labels from --labels (row order or id) or the file.",
)


@click.command()
@head_data_options
@features_option
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
@probe_option(several=False)
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
      probe fit --features emb.npy --labels topics.csv --layer 0
    """
    from probe.research.commands import fit_and_save, format_fit

    summary = fit_and_save(layer, pool, out, overwrite=overwrite, **head_options(options))
    click.echo(json.dumps(summary, indent=2) if options["as_json"] else format_fit(summary))


@click.command()
@head_data_options
@features_option
@click.option(
    "--layers",
    default="all",
    show_default=True,
    help="Layers to fit (and to extract): all, 0,6,11, -1, or a slice: 4:9 (= 4..8), "
    "0:31:5 (every 5th: 0,5,..,30).",
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
@probe_option(several=True)
@research_options
@keep_going_option
@verbosity_options
@fail_cleanly
def sweep(layers, pools, jobs, plot, out_dir, overwrite, research, keep_going, **options):
    """Fit a head on every stored layer x pool; pick the best on validation; summary + files.

    The row with the lowest --val log loss (else out-of-fold log loss on train) is chosen,
    or with --metric the highest --val (else out-of-fold) value of it; rows a paired
    bootstrap cannot tell from it are marked (=), and --prefer-early takes the shallowest.
    Test accuracy, macro-F1, balanced accuracy, AUROC and average precision (two classes)
    carry 95% bootstrap CIs. Writes the full table (sweep.md), JSON, a plot and the selected
    head to --out-dir and prints a summary: the selected row, the top 5 rows and where the
    table is (-v: the table too; --json: the JSON). A row that cannot be fitted is listed on
    stderr at the end, and the exit status is then 3 (--keep-going: 0).

    \b
    Examples:
      probe sweep --model smollm2-135m --data data/sms_spam.csv
      probe sweep --model smollm2-135m --train sst2_train.csv --val sst2_val.csv --json
      probe sweep --data ~/.cache/probe/features/KEY.h5 --labels topics.csv --pools mean
      probe sweep --features sms.parquet
      probe sweep --train tr.csv --val va.csv --test te.csv --baselines --mdl --mix
    """
    from probe.research.commands import sweep_and_save
    from probe.research.sweep import report_errors
    from probe.research.sweep_report import console_summary

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
    if options["as_json"]:
        say("wrote " + ", ".join(report["files"]))
        click.echo(json.dumps(report, indent=2))
    else:
        detail(table)  # -v: every row and measure, as sweep.md holds them
        click.echo(console_summary(report))
    report_errors(report["errors"], keep_going)


COMMANDS = [fit, sweep]
