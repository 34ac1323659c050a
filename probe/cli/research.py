"""``probe curve``: a learning curve of one (layer, pool) probe, or of a sweep's selected row."""

from __future__ import annotations

import json
from pathlib import Path

import click

from probe.cli.common import fail_cleanly, verbosity_options
from probe.cli.heads import _prepare, _short_name, head_data_options


def _from_sweep(folder: str, options: dict) -> tuple[str, str]:
    """(layer, pool) of a sweep's selected row; its data and settings fill unset options."""
    from probe.errors import ProbeError

    path = Path(folder) / "sweep.json" if Path(folder).is_dir() else Path(folder)
    try:
        sweep = json.loads(path.read_text(encoding="utf-8"))
        best = sweep["best"]
    except (OSError, ValueError, KeyError) as error:
        raise ProbeError(f"--from-sweep {folder}: no readable sweep.json ({error})") from None
    if not any(options[key] for key in ("data", "train", "labels_file")):
        for key, value in sweep.get("data", {}).items():
            options["data" if key == "data" else key] = value
        for key, value in (sweep.get("settings") or {}).items():
            options[key] = value
        options["model"] = options["model"] or sweep.get("model")
    return str(best["layer"]), best["pool"]


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
    help="Where curve.md, curve.json and curve.png go (default curves/MODEL-DATA-lL-POOL).",
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
      probe curve --from-sweep sweeps/smollm2-135m-sst2
    """
    from probe.errors import ProbeError
    from probe.features.layers import MIX, parse_row_spec
    from probe.research.curve import learning_curve, markdown_table
    from probe.research.saving import save_curve

    if from_sweep:
        sweep_layer, sweep_pool = _from_sweep(from_sweep, options)
        layer, pool = layer or sweep_layer, pool or sweep_pool
    layer, pool = layer or "-1", pool or "last"
    try:
        size_list = [int(part) for part in sizes.split(",") if part.strip()]
    except ValueError:
        raise ProbeError(
            f"--sizes must be whole numbers separated by commas, not {sizes!r}"
        ) from None
    spec = parse_row_spec(layer)
    data = _prepare(options, layers="all" if spec.kind == MIX else ",".join(spec.layers))
    spec = spec.resolved(data.layer, data.layers)
    chosen = spec if spec.multi else spec.layers[0]
    result = learning_curve(data, chosen, pool, sizes=size_list, seeds=seeds,
                            seed=options["seed"], C=options["C"], n_jobs=jobs)  # fmt: skip
    source = options["data"] or options["train"] or "store"
    name = spec.file_stem
    folder = Path(
        out_dir or f"curves/{_short_name(data.model)}-{_short_name(source)}-l{name}-{pool}"
    )
    paths = save_curve(result, folder)
    if not options["quiet"]:
        click.echo("wrote " + ", ".join(map(str, paths)), err=True)
    table = markdown_table(result)
    click.echo(json.dumps(result, indent=2) if options["as_json"] else table)


COMMANDS = [curve]
