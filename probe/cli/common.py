"""Options and error handling shared by every command."""

from __future__ import annotations

import functools

import click

from probe.errors import ProbeError


def fail_cleanly(command):
    """Turn a ``ProbeError`` (and a full disk, a denied write) into one line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ProbeError as exc:
            raise click.ClickException(str(exc)) from None
        except (PermissionError, OSError) as exc:
            if isinstance(exc, FileNotFoundError | PermissionError) or exc.errno == 28:
                raise click.ClickException(f"{exc.strerror}: {exc.filename or ''}") from None
            raise

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
                help="CSV, TSV, JSONL or Parquet file, or a Hugging Face datasets id.",
            ),
            click.option("--text-col", default="text", show_default=True),
            click.option("--label-col", default="label", show_default=True),
            click.option("--split", default=None, help="Split of a hub dataset (default train)."),
        ]
    ):
        command = decorator(command)
    return command
