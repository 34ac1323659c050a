"""``probe report``: every sweep, curve and compare result of a folder in one HTML file; and
``probe intervene``: whether a head's direction matters to the model that computes it."""

from __future__ import annotations

import json

import click

from probe.cli.common import COLUMN_OPTIONS, fail_cleanly, say, verbosity_options


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

    Finds sweep.json, curve JSON, compare.json and intervene.json files (any depth) and
    renders their tables (with CIs, control and MDL columns when present), the
    accuracy-by-layer plot with CI bands, learning curves, the probe-vs-fine-tuning table and
    intervention dose-responses, with the settings and versions that made them. No network
    is needed to view it: figures are inline SVG.

    \b
    Example:
      probe sweep --model gpt2 --data sms.csv --out-dir results/sweep-sms
      probe report results --out report.html
    """
    from probe.report.html import write_report

    path = write_report(results_dir, out)
    click.echo(str(path))


DEFAULT_ALPHAS = "-8,-4,-2,-1,-0.5,0,0.5,1,2,4,8"


@click.command()
@click.option("--head", required=True, help="A single-layer classifier head .json.")
@click.option("--data", required=True, help="Labelled texts: readouts fit on, changes made on.")
@click.option(
    "--alphas",
    default=DEFAULT_ALPHAS,
    show_default=True,
    help="Strengths, in units of the typical norm of the hidden states at the head's layer.",
)
@click.option("--seeds", default=5, show_default=True, help="Random directions to compare with.")
@click.option("--target", default=None, help="The class to push toward (default: the head's).")
@click.option(
    "--verbalizers", default=None, help='Causal LMs: class=word pairs, 1=" True",0=" False".'
)
@click.option(
    "--direction",
    type=click.Choice(["pattern", "weights"]),
    default="pattern",
    show_default=True,
    help="The head's activation pattern Cov(X) w, or its raw weights w.",
)
@click.option("--no-erase", is_flag=True, help="Skip the erasure (LEACE) of the direction.")
@click.option("--max-rows", default=200, show_default=True, help="Texts changed, at most.")
@click.option("--test-size", default=0.5, show_default=True, help="Share of texts changed.")
@click.option("--seed", default=0, show_default=True)
@click.option("--model", default=None, help="Where the head's model lives now (must match it).")
@click.option("--device", default="auto", show_default=True)
@COLUMN_OPTIONS[0]
@COLUMN_OPTIONS[1]
@click.option("--out-dir", default=None, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@verbosity_options
@fail_cleanly
def intervene(
    head,
    data,
    alphas,
    seeds,
    target,
    verbalizers,
    direction,
    no_erase,
    max_rows,
    test_size,
    seed,
    model,
    device,
    text_col,
    label_col,
    out_dir,
    as_json,
):
    """Change a head's direction inside the model and see whether later layers read it.

    Adds the direction at the head's layer and token positions with each strength alpha
    (or projects it out, LEACE), and reports how heads fitted on clean texts at each later
    layer (and, with --verbalizers, the LM's next-token choice) read the changed texts: as the
    difference from the same change along random directions, with bootstrap intervals.
    Writes intervene.md, intervene.json and intervene.png.

    \b
    Example:
      probe intervene --head results/sweeps/sms/head.json --data sms.csv --alphas -2,0,2
    """
    from probe.interventions.directions import parse_alphas
    from probe.interventions.dose import intervene as run
    from probe.interventions.dose import parse_verbalizers
    from probe.interventions.writing import markdown_table, save_intervention
    from probe.outputs import default_output

    result = run(
        head,
        data,
        alphas=parse_alphas(alphas),
        seeds=seeds,
        target=target,
        verbalizers=parse_verbalizers(verbalizers),
        erase=not no_erase,
        direction=direction,
        model=model,
        device=device,
        text_col=text_col,
        label_col=label_col,
        test_size=test_size,
        max_rows=max_rows,
        seed=seed,
    )
    from pathlib import Path

    folder = out_dir or default_output("interventions", f"{Path(head).stem}-l{result['layer']}")
    files = save_intervention(result, folder)
    say(f"wrote {', '.join(str(f) for f in files)}")
    click.echo(
        json.dumps(json.loads(files[1].read_text()), indent=2)
        if as_json
        else markdown_table(result)
    )


COMMANDS = [report, intervene]
