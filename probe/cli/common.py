"""Options and error handling shared by every command."""

from __future__ import annotations

import functools
import time

import click

from probe.errors import ProbeError, RowsFailed, environment_message, one_line
from probe.messages import configure, detail, say  # noqa: F401  (the commands' channel too)


def fail_cleanly(command):
    """Turn a ``ProbeError`` (and a full disk, a denied write, memory) into one line, exit 1
    (``RowsFailed``: 3). The line is at most 200 characters with click's ``Error: ``
    (``probe.errors.one_line``); any other exception is a bug and keeps its traceback.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ProbeError as exc:
            failure = click.ClickException(one_line(str(exc)))
            failure.exit_code = getattr(exc, "exit_code", 1)  # RowsFailed: 3
            raise failure from None
        except (OSError, MemoryError, RuntimeError) as exc:
            message = environment_message(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None

    return wrapper


keep_going_option = click.option(
    "--keep-going",
    is_flag=True,
    help=f"Exit 0, not {RowsFailed.exit_code}, when rows could not be fitted (listed anyway).",
)


def model_option(command):
    return click.option(
        "--model",
        default="gpt2",
        show_default=True,
        help="Hub id (gpt2), a save_pretrained directory, a .gguf file, or an alias: "
        "smollm2-135m, minilm-l6.",
    )(command)


# the columns of a data file, for every command that reads one
COLUMN_OPTIONS = (
    click.option("--text-col", default="text", show_default=True),
    click.option("--label-col", default="label", show_default=True),
)


def data_options(command):
    """--data plus the column options every data-reading command takes."""
    options = [
        click.option(
            "--data",
            required=True,
            help="CSV, TSV, JSONL or Parquet file, a datasets save_to_disk folder, "
            "or a Hugging Face hub dataset id.",
        ),
        *COLUMN_OPTIONS,
        click.option(
            "--split",
            default=None,
            help="Split of a hub dataset or DatasetDict folder (default train).",
        ),
    ]
    return stack_options(command, options)


def reading_options(site_default: str | None) -> list:
    """``--site`` and ``--position``: what a pass reads (``probe extract``, and a head
    command's on-demand extraction, where None means the cache's site, block when extracting)."""
    from probe.features.models.sites import SITES  # torch-free: the names only

    return [
        click.option(
            "--site",
            type=click.Choice(SITES),
            default=site_default,
            show_default=site_default is not None,
            help="Where in a block: block (the residual stream after it), attn / mlp (the "
            "sublayer outputs added to it), resid_mid (the stream between them). Layer k is "
            "block k's part (all: 1..L). Part of the cache key; heads record it and predict "
            "reads it again.",
        ),
        click.option(
            "--position",
            "positions",
            multiple=True,
            help="Store more pools beside last and mean: first, max, index:K (K<0 from the "
            "end), or marker:TEXT (the last token of the last TEXT in the prompted text). "
            "Repeat it or give a comma list (a marker takes the whole value): --position "
            "first,max,index:-2 --position 'marker: Answer:'. Part of the cache key; --pool "
            "reads them, a sweep sweeps them.",
        ),
    ]


def stack_options(command, options: list):
    """``command`` with ``options`` (click decorators) applied so ``--help`` lists them in
    the order given."""
    for option in reversed(options):
        command = option(command)
    return command


def stacked(options: list):
    """``stack_options`` as a decorator."""
    return lambda command: stack_options(command, options)


# --- -v/--verbose and -q/--quiet: the same on every command ----------------------------------


def verbosity_options(command):
    """Add ``-v/--verbose`` and ``-q/--quiet`` to a command, with one meaning everywhere.

    quiet: only the result on stdout (no progress, no messages on stderr). verbose: also
    detail lines on stderr (the options given, the time taken, whatever ``detail`` is told).
    The command never receives them: the level goes to ``probe.messages`` (``configure``),
    the one channel every command and library call reports through.
    """

    @functools.wraps(command)
    def wrapper(*args, verbose: bool = False, quiet: bool = False, **kwargs):
        if verbose and quiet:
            raise click.UsageError("-v/--verbose and -q/--quiet exclude each other")
        context = click.get_current_context(silent=True)
        level = "quiet" if quiet else "verbose" if verbose else "normal"
        configure(level)  # the library's one channel (probe.messages) follows -q/-v
        name = " ".join(context.command_path.split()[1:]) if context is not None else "probe"
        if verbose and context is not None:
            given = {k: v for k, v in context.params.items() if v not in (None, False, ())}
            detail(f"{name}: " + ", ".join(f"{k}={v}" for k, v in given.items()))
        started = time.perf_counter()
        result = command(*args, **kwargs)
        detail(f"{name}: finished in {time.perf_counter() - started:.1f} s")
        return result

    quiet_help = "Print only the result: no progress, no messages."
    wrapper = click.option("-q", "--quiet", is_flag=True, help=quiet_help)(wrapper)
    verbose_help = "Print extra detail lines on stderr."
    return click.option("-v", "--verbose", is_flag=True, help=verbose_help)(wrapper)
