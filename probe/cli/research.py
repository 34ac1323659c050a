"""``probe curve``: a learning curve of one (layer, pool) probe, or of a sweep's selected row."""

from __future__ import annotations

import json

import click

from probe.cli.common import fail_cleanly, head_data_options, head_options, say, verbosity_options


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
