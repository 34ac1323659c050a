"""Options and error handling shared by every command."""

from __future__ import annotations

import functools
import time

import click

from probe.errors import ProbeError, environment_message, one_line
from probe.messages import configure, detail, say  # noqa: F401  (the commands' channel too)


def fail_cleanly(command):
    """Turn a ``ProbeError`` (and a full disk, a denied write, memory) into one line, exit 1.

    The line is at most 200 characters with click's ``Error: `` (``probe.errors.one_line``);
    any other exception is a bug and keeps its traceback.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ProbeError as exc:
            raise click.ClickException(one_line(str(exc))) from None
        except (OSError, MemoryError, RuntimeError) as exc:
            message = environment_message(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None

    return wrapper


def model_option(command):
    return click.option(
        "--model",
        default="gpt2",
        show_default=True,
        help="Hub id (gpt2), a save_pretrained directory, a .gguf file, or an alias: "
        "smollm2-135m, minilm-l6.",
    )(command)


def data_options(command):
    """--data plus the column options every data-reading command takes."""
    for decorator in reversed(
        [
            click.option(
                "--data",
                required=True,
                help="CSV, TSV, JSONL or Parquet file, a datasets save_to_disk folder, "
                "or a Hugging Face hub dataset id.",
            ),
            click.option("--text-col", default="text", show_default=True),
            click.option("--label-col", default="label", show_default=True),
            click.option(
                "--split",
                default=None,
                help="Split of a hub dataset or DatasetDict folder (default train).",
            ),
        ]
    ):
        command = decorator(command)
    return command


# --- -v/--verbose and -q/--quiet: the same on every command ----------------------------------

VERBOSITY_KEY = "probe.verbosity"


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
        if context is not None:
            context.meta[VERBOSITY_KEY] = level
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


def verbosity() -> str:
    """``quiet``, ``normal`` or ``verbose`` for the running command (normal outside one)."""
    context = click.get_current_context(silent=True)
    return context.meta.get(VERBOSITY_KEY, "normal") if context is not None else "normal"
