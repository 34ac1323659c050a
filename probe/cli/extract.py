"""``probe extract``: fill the feature store from a data file (``probe cache`` looks inside)."""

from __future__ import annotations

import click

from probe.cli.common import (
    data_options,
    fail_cleanly,
    model_option,
    reading_options,
    stacked,
    verbosity_options,
)
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
    help="Layers to store: all, 11, 0,6,11, -1, or a slice: 4:9 (= 4..8), 0:31:5 (every "
    "5th: 0,5,..,30). 0 = embeddings.",
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
    "token_budget",
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
@stacked(reading_options("block"))
@click.option("--address", help="Ray cluster to join (--engine ray; default: start a local one).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Ray actors, one backbone each (one GPU each where the cluster has GPUs). Default: "
    "one per GPU, else one per 4 CPUs.",
)
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
def extract(model, data, layers, **options):
    """Run the frozen backbone once over DATA and cache pooled features of every layer.

    Features are stored per text (last-token and mean-pooled hidden states, fp16, every
    layer up to the highest requested) in the store (probe cache ls says where); only
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
      probe extract --model gpt2 --data sms.csv --site attn --position first,max
    """
    from probe.features.commands import extract_file

    given = {k: v for k, v in options.items() if k not in ("quiet", "verbose")}  # not -q, -v
    click.echo(str(extract_file(model, data, layers, **given)))


COMMANDS = [extract]
