"""``probe extract`` and ``probe cache``: fill the feature store and look inside it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from probe.cli.common import data_options, fail_cleanly, model_option, verbosity_options
from probe.features.batching import DEFAULT_TOKEN_BUDGET
from probe.features.device import DTYPE_CHOICES
from probe.features.extract import SHARD_ROWS
from probe.features.models.loading import ATTENTION_CHOICES


class TokenBudget(click.ParamType):
    """``auto`` (None: sized from free GPU memory, the default budget on CPU) or an int >= 1."""

    name = "auto|N"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int) or str(value).lower() == "auto":
            return None if value is None or str(value).lower() == "auto" else value
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            self.fail(f"{value!r} is not 'auto' or a whole number of tokens >= 1", param, ctx)
        return number


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
    "--dtype",
    type=click.Choice(DTYPE_CHOICES),
    default="auto",
    show_default=True,
    help="Compute dtype. auto: fp32 on CPU, bf16 (else fp16) on a GPU. bfloat16 is ~3x faster "
    "on CPUs with AMX, slower on AVX2. Part of the cache key: rows never mix dtypes.",
)
@click.option(
    "--batch-tokens",
    type=TokenBudget(),
    default="auto",
    show_default=True,
    help=f"Padded tokens per batch. auto: sized from free memory on a GPU, "
    f"{DEFAULT_TOKEN_BUDGET} on CPU. Lower it if a GPU runs out of memory.",
)
@click.option(
    "--compile",
    "use_compile",
    is_flag=True,
    help="Fuse each block with torch.compile (a few seconds to compile). On CPU 1.05x (fp32) "
    "to 1.18x (bf16) on SMS-length texts, but it did not pay back on 10k short texts; meant "
    "for long texts and GPUs. Falls back to eager if compiling fails.",
)
@click.option(
    "--shard-rows",
    type=click.IntRange(min=1),
    default=SHARD_ROWS,
    show_default=True,
    help="Rows per committed shard: a killed run loses at most this many (or 60 s of work).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: run on Ray Data, one backbone per worker (pip install 'probe[distributed]').",
)
@click.option(
    "--prompt",
    help="Wrap each text before tokenizing: 'Review: {text}\\nSentiment:'. Part of the cache "
    "key: the same text under another prompt is another row.",
)
@click.option(
    "--chat-template",
    is_flag=True,
    help="Make each (prompted) text the user turn of the tokenizer's chat template. Part of "
    "the cache key.",
)
@click.option(
    "--attn",
    type=click.Choice(ATTENTION_CHOICES),
    default="auto",
    show_default=True,
    help="Attention kernel. auto: SDPA where the architecture has it, else eager (said).",
)
@click.option(
    "--trust-remote-code",
    is_flag=True,
    help="Run modeling code shipped with the model (only for sources you trust). Recorded "
    "in the cache key.",
)
@click.option("--address", help="Ray cluster to join (--engine ray; default: start a local one).")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Ray actors, one backbone each (one GPU each where the cluster has GPUs). Default: "
    "one per GPU, else one per 4 CPUs.",
)  # fmt: skip
@click.option(
    "--unit",
    type=click.Choice(["sentence", "word", "token"]),
    default=None,
    help="sentence: pooled per text (default for CSV/TSV/...); word: every word's "
    "hidden state (default for .conllu / token-JSONL); token: every subword token.",
)
@click.option(
    "--word-pool",
    type=click.Choice(["first", "last", "mean"]),
    default=None,
    help="--unit word: pool of a word's subwords (default last for causal models: "
    "only the last subword has seen the whole word; first for encoders).",
)
@verbosity_options
@fail_cleanly
def extract(
    model, data, text_col, label_col, split, layers, max_length, out, force, device, dtype,
    batch_tokens, use_compile, shard_rows, engine, prompt, chat_template, attn,
    trust_remote_code, address, workers, unit, word_pool, quiet,
):  # fmt: skip
    """Run the frozen backbone once over DATA and cache pooled features of every layer.

    Features are stored per text (last-token and mean-pooled hidden states, fp16, every
    layer up to the highest requested) in the store ($PROBE_CACHE, default ./cache); only
    texts the store lacks run through the model. The dataset is then written as one HDF5
    file (its view). New labels for the same texts update the view's labels; an
    interrupted run resumes where it stopped. The last line printed is the view's path.

    \b
    Examples:
      probe extract --model smollm2-135m --data data/sms_spam.csv --layers all
      probe extract --model gpt2 --data sms.csv --layers 0,6,12 --max-length 128
      probe extract --model ./my-finetuned-model --data reviews.jsonl --text-col body
      probe extract --model gpt2 --data big.csv --engine ray --workers 4
      probe extract --model smollm2-135m --data big.csv --dtype bfloat16 --compile
      probe extract --model smollm2-135m --data sst2.csv --prompt 'Review: {text}\\nSentiment:'
    """
    from probe.data.readers import read_dataset
    from probe.features.extract import extract as run_extract

    log = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    from probe.data.conllu import is_word_source

    if unit in ("word", "token") or (unit is None and is_word_source(data)):
        _extract_ragged(model, data, text_col, split, unit or "word", word_pool, layers,
                        max_length=max_length, out=out, force=force, quiet=quiet, device=device,
                        dtype=dtype, token_budget=batch_tokens, shard_rows=shard_rows,
                        engine=engine, log=log)  # fmt: skip
        return
    if engine == "ray":
        from probe.features.distributed import import_ray

        import_ray()  # before reading data: a missing extra is a one-line error at once
    dataset = read_dataset(data, text_col, label_col, split)
    if dataset.skipped_empty:
        log(f"skipped {dataset.skipped_empty} empty or whitespace-only texts")
    if engine == "ray":
        from probe.errors import ProbeError
        from probe.features.distributed import fill_store_on_ray

        if force:
            raise ProbeError("--force is not supported with --engine ray; run without it")
        if prompt or chat_template or trust_remote_code:
            raise ProbeError(
                "--prompt, --chat-template and --trust-remote-code run with --engine local only"
            )
        dtype = fill_store_on_ray(  # the cluster's dtype: a CPU driver must not recompute
            model,
            dataset,
            layers,
            max_length=max_length,
            token_budget=batch_tokens,
            dtype=dtype,
            use_compile=use_compile,
            workers=workers,
            address=address,
            quiet=quiet,
            log=log,
        )  # fmt: skip; the local step below then finds every row and writes the view
    notice = lambda line: click.echo(line, err=True)  # noqa: E731  (even with -q: a silent
    # fallback to eager would read as a slow machine)
    path = run_extract(
        model, dataset, layers, max_length=max_length, out=out, force=force,
        quiet=quiet, device=device, dtype=dtype, token_budget=batch_tokens,
        use_compile=use_compile, shard_rows=shard_rows, prompt=prompt,
        chat_template=chat_template, attn=attn, trust_remote_code=trust_remote_code, log=log,
        compile_notice=notice,
    )  # fmt: skip
    click.echo(str(path))


def _extract_ragged(model, data, text_col, split, unit, word_pool, layers, *, engine, **options):
    """``--unit word|token``: every word's (token's) vectors, into the ragged row store."""
    from probe.data.conllu import WordDataset, is_word_source, read_word_dataset
    from probe.errors import ProbeError
    from probe.features.wordextract import extract_words

    if engine != "local":
        raise ProbeError(f"--unit {unit} runs on the local engine only")
    if is_word_source(data):
        dataset = read_word_dataset(data)
    elif unit == "word":
        raise ProbeError(f"{data}: --unit word needs words: a .conllu file or JSONL with a "
                         "'tokens' list per line")  # fmt: skip
    else:
        from probe.data.readers import read_dataset

        texts = read_dataset(data, text_col, None, split)
        empty = [[] for _ in texts.texts]
        dataset = WordDataset(texts.texts, empty, empty, {}, None, str(data))
    path = extract_words(model, dataset, layers, unit=unit, word_pool=word_pool, **options)
    click.echo(str(path))


@click.group()
def cache():
    """List, inspect and clean the feature store ($PROBE_CACHE, default ./cache)."""


@cache.command("ls")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per view, then the store.")
@verbosity_options
@fail_cleanly
def cache_ls(as_json):
    """List views (model, data, N, layers, size, complete or not) and the row store's totals.

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
            click.echo(f"rows {setting['setting'][:12]}  unit {setting['unit']:<11}"
                       f"{setting['units']:>10} units  {setting['bytes'] / 1e6:>8.1f} MB  "
                       f"{setting['bytes_per_unit_layer']:.0f} bytes per unit per layer",
                       err=not rows)  # fmt: skip
    click.echo(_store_line(report), err=not rows)


def _store_line(report: dict) -> str:
    return (
        f"store: {report['rows']} rows in {report['shards']} shards "
        f"({report['shard_bytes'] / 1e6:.1f} MB), {report['views']} views "
        f"({report['view_bytes'] / 1e6:.1f} MB), {report['orphans']} orphan shards"
    )


@cache.command("info")
@click.argument("file", type=click.Path(dir_okay=True), required=False)
@verbosity_options
@fail_cleanly
def cache_info(file):
    """Everything a view records about itself; with no FILE, the row store per setting.

    \b
    Examples:
      probe cache info cache/features/3f2a...h5
      probe cache info
    """
    from probe.errors import ProbeError
    from probe.features.store.caches import PendingView, read_attrs, store_report, summarize

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
@verbosity_options
@fail_cleanly
def cache_gc():
    """Remove what crashed writers left: orphan shards and stale temporary files.

    A shard or temporary file whose writing process is still alive is kept.

    \b
    Example:
      probe cache gc
    """
    from probe.features.store.caches import store_report
    from probe.features.store.housekeeping import collect_garbage

    removed = collect_garbage()
    freed = sum(size for _, size in removed)
    click.echo(f"removed {len(removed)} orphan files ({freed / 1e6:.1f} MB)")
    click.echo(_store_line(store_report()))


COMMANDS = [extract, cache]
