"""``probe extract`` and ``probe cache``: fill the feature store and look inside it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from probe.cli.common import data_options, fail_cleanly, model_option
from probe.features.batching import DEFAULT_TOKEN_BUDGET


@click.command()
@model_option
@data_options
@click.option(
    "--layers",
    default="all",
    show_default=True,
    help="Layers to store: all, 11, 0,6,11, -1, or a slice 4:9 (= 4..8). 0 = embeddings.",
)
@click.option("--max-length", type=int, help="Tokens per text (default: context, at most 512).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the cache to this file.")
@click.option("--force", is_flag=True, help="Recompute even if the cache is complete.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, or auto.")
@click.option(
    "--batch-tokens",
    type=click.IntRange(min=1),
    default=DEFAULT_TOKEN_BUDGET,
    show_default=True,
    help="Padded tokens per batch (lower it if a GPU runs out of memory).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or messages.")
@fail_cleanly
def extract(
    model, data, text_col, label_col, split, layers, max_length, out, force, device,
    batch_tokens, quiet,
):  # fmt: skip
    """Run the frozen backbone once over DATA and cache pooled features of every layer.

    Stores, for each requested layer, the last-token and mean-pooled hidden state (fp16) in
    an HDF5 file under the cache store ($PROBE_CACHE, default ./cache). The same model, texts
    and settings hit the existing file without running the model; an interrupted run
    resumes where it stopped. The last line printed is the cache file's path.

    \b
    Examples:
      probe extract --model smollm2-135m --data data/sms_spam.csv --layers all
      probe extract --model gpt2 --data sms.csv --layers 0,6,12 --max-length 128
      probe extract --model ./my-finetuned-model --data reviews.jsonl --text-col body
    """
    from probe.data.readers import read_dataset
    from probe.features.extract import extract as run_extract

    log = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    dataset = read_dataset(data, text_col, label_col, split)
    if dataset.skipped_empty:
        log(f"skipped {dataset.skipped_empty} empty or whitespace-only texts")
    path = run_extract(
        model, dataset, layers, max_length=max_length, out=out, force=force,
        quiet=quiet, device=device, token_budget=batch_tokens, log=log,
    )  # fmt: skip
    click.echo(str(path))


@click.group()
def cache():
    """List and inspect the feature store ($PROBE_CACHE, default ./cache)."""


@cache.command("ls")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per cache file.")
@fail_cleanly
def cache_ls(as_json):
    """List cache files: model, data, N, layers, size, complete or not.

    \b
    Example:
      probe cache ls
    """
    from probe.features.store import list_caches

    rows = list_caches()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    if not rows:
        click.echo("the cache store is empty", err=True)
        return
    header = f"{'complete':<9}{'N':>7}  {'layers':<10}{'size MB':>9}  {'model':<24}{'path'}"
    click.echo(header)
    for row in rows:
        click.echo(
            f"{'yes' if row['complete'] else 'NO':<9}{row['n'] or '?':>7}  {row['layers']:<10}"
            f"{row['size_mb']:>9}  {str(row['model'])[:23]:<24}{Path(row['path']).name}"
        )


@cache.command("info")
@click.argument("file", type=click.Path(dir_okay=True))
@fail_cleanly
def cache_info(file):
    """Everything a cache file records about itself.

    \b
    Example:
      probe cache info cache/features/3f2a...h5
    """
    from probe.features.store import PartialRun, read_attrs, summarize

    path = Path(file)
    partial = Path(f"{path}.partial") if not path.name.endswith(".partial") else path
    if path.is_file():
        attrs = read_attrs(path)
        if attrs is None:
            from probe.errors import ProbeError

            raise ProbeError(f"{path} is not a probe cache file")
        details = {**summarize(path, attrs), **attrs}
    elif partial.is_dir():
        run = PartialRun(partial)
        manifest = run.manifest() or {}
        details = {**summarize(partial, manifest), **manifest, "complete": False}
        details["committed_batches"] = len(run.committed_batches())
    else:
        from probe.errors import ProbeError

        raise ProbeError(f"cache file not found: {path}")
    for name, value in details.items():
        click.echo(f"{name:<22}{value}")
    sys.stdout.flush()


COMMANDS = [extract, cache]
