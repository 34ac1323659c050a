"""``probe report``: every sweep, curve and compare result of a folder in one HTML file."""

from __future__ import annotations

import click

from probe.cli.common import fail_cleanly, verbosity_options


@click.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option(
    "--out",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.",
)
@verbosity_options
@fail_cleanly
def report(results_dir, out):
    """Write one self-contained HTML report of the results under RESULTS_DIR.

    Finds sweep.json, curve JSON and compare.json files (any depth) and renders their tables
    (with CIs, control and MDL columns when present), the accuracy-by-layer plot with CI
    bands, learning curves and the probe-vs-fine-tuning table, with the settings and
    versions that made them. No network is needed to view it: figures are inline SVG.

    \b
    Example:
      probe sweep --model gpt2 --data sms.csv --out-dir results/sweep-sms
      probe report results --out report.html
    """
    from probe.report.html import write_report

    path = write_report(results_dir, out)
    click.echo(str(path))


COMMANDS = [report]
