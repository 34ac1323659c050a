"""``probe cache``: list, inspect and clean the feature store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from probe.cli.common import fail_cleanly, verbosity_options


@click.group()
def cache():
    """List, inspect and clean the feature store.

    The store is $PROBE_CACHE; else the project's (cache = "DIR" in ./probe.toml or under
    [tool.probe] in ./pyproject.toml, or a ./cache that already holds a store); else the
    per-user cache (~/.cache/probe). ls and info say which on their first line.
    """


@cache.command("ls")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per view, then the store.")
@verbosity_options
@fail_cleanly
def cache_ls(as_json):
    """List views (complete or not, N, layers, size, model, file) and the row store's totals.

    \b
    Example:
      probe cache ls
    """
    from probe.features.store.caches import list_caches, store_report

    rows = list_caches()
    report = store_report()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        click.echo(json.dumps({"store": {k: v for k, v in report.items() if k != "settings"}}))
        return
    click.echo(_where_line())
    if rows:
        header = f"{'complete':<9}{'N':>7}  {'layers':<10}{'size MB':>9}  {'model':<24}{'path'}"
        click.echo(header)
    for row in rows:
        click.echo(
            f"{'yes' if row['complete'] else 'NO':<9}{row['n'] or '?':>7}  {row['layers']:<10}"
            f"{row['size_mb']:>9}  {str(row['model'])[:23]:<24}{Path(row['path']).name}"
        )
    for setting in report["settings"]:
        if setting.get("bytes_per_unit_layer"):
            click.echo(
                f"rows {setting['setting'][:12]}  unit {setting['unit']:<11}"
                f"{setting['units']:>10} units  {setting['bytes'] / 1e6:>8.1f} MB  "
                f"{setting['bytes_per_unit_layer']:.0f} bytes per unit per layer",
                err=not rows,
            )
    click.echo(_store_line(report), err=not rows)


def _where_line() -> str:
    """The store in use and the rule that chose it (``probe.files``)."""
    from probe.files import store_location

    path, source = store_location()
    return f"store: {path.resolve()} (from {source})"


def _store_line(report: dict) -> str:
    superseded = report["superseded_bytes"] / 1e6
    return (
        f"rows: {report['rows']} texts in {report['shards']} shards "
        f"({report['shard_bytes'] / 1e6:.1f} MB"
        + (f", {superseded:.1f} MB superseded copies: probe cache gc" if superseded else "")
        + f"); views: {report['views']} ({report['view_bytes'] / 1e6:.1f} MB, copies of rows "
        f"rebuilt without the model: probe cache gc --views); {report['orphans']} orphan shards"
    )


@cache.command("info")
@click.argument("file", type=click.Path(dir_okay=True), required=False)
@verbosity_options
@fail_cleanly
def cache_info(file):
    """Everything a view records about itself; with no FILE, the row store per setting.

    \b
    Examples:
      probe cache info ~/.cache/probe/features/3f2a...h5
      probe cache info
    """
    from probe.errors import ProbeError
    from probe.features.store.caches import PendingView, read_attrs, store_report, summarize

    click.echo(_where_line())
    if file is None:
        report = store_report()
        for setting in report["settings"]:
            for name, value in setting.items():
                click.echo(f"{name:<22}{value}")
            click.echo("")
        click.echo(_store_line(report))
        return
    path = Path(file)
    partial = Path(f"{path}.partial") if not path.name.endswith(".partial") else path
    if path.is_file():
        attrs = read_attrs(path)
        if attrs is None:
            raise ProbeError(f"{path} is not a probe cache file")
        details = {**summarize(path, attrs), **attrs}
    elif partial.is_dir():
        pending = PendingView(partial)
        manifest = pending.manifest() or {}
        details = {**summarize(partial, manifest), **manifest, "complete": False}
        details["stored_rows"] = f"{pending.stored_rows()} of {manifest.get('n', '?')}"
    else:
        raise ProbeError(f"cache file not found: {path}")
    for name, value in details.items():
        click.echo(f"{name:<22}{value}")
    sys.stdout.flush()


@cache.command("gc")
@click.option("--views", is_flag=True, help="Also remove every view (features/*.h5).")
@verbosity_options
@fail_cleanly
def cache_gc(views):
    """Remove what no lookup reads: orphan shards, stale temporary files, superseded rows.

    A shard or temporary file whose writing process is still alive is kept; superseded
    copies of rows are left while a view is being made. --views also removes the views,
    copies of their rows: the next extract, fit or sweep on the same data rebuilds one
    from its rows without running the model.

    \b
    Examples:
      probe cache gc
      probe cache gc --views
    """
    from probe.features.store.caches import store_report
    from probe.features.store.housekeeping import collect_garbage

    done = collect_garbage(views=views)
    orphans, superseded, removed_views = ([size for _, size in kind] for kind in done[:3])
    click.echo(f"removed {len(orphans)} orphan files ({sum(orphans) / 1e6:.1f} MB)")
    if superseded:
        freed = sum(superseded) / 1e6
        click.echo(f"removed superseded rows from {len(superseded)} shards ({freed:.1f} MB)")
    if views:
        click.echo(f"removed {len(removed_views)} views ({sum(removed_views) / 1e6:.1f} MB)")
    if done.running:
        click.echo(f"superseded rows kept: a view is being made ({done.running[0].name})")
    click.echo(_store_line(store_report()))


@cache.command("export")
@click.argument("view")
@click.option(
    "--format",
    "fmt",
    required=True,
    help="parquet: one row per text (pandas, datasets); safetensors: [layers, N, D] "
    "tensors; npy: one .npz of arrays (numpy.load).",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@click.option("--layers", default=None, help="Stored layers to export (default all): 0,6,12, -1.")
@click.option("--pools", default=None, help="Pools to export (default all stored): last,mean.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@verbosity_options
@fail_cleanly
def cache_export(view, fmt, out, layers, pools, overwrite):
    """Write a view (a path, or a name from probe cache ls) as a file other tools read:
    features with ids, text hashes, labels, layers and the model's record.

    \b
    Examples:
      probe cache export cache/features/3f2a...h5 --format parquet --out sms.parquet
      probe cache export 3f2a...h5 --format npy --out sms.npz --layers -1 --pools mean
    """
    from probe.features.store.export import export_view

    path = export_view(view, out, fmt, layers=layers, pools=pools, overwrite=overwrite)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


COMMANDS = [cache]
