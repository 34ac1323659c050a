"""The ``probe`` command line: click commands only; the work lives in the library."""

import click

from probe import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
def main() -> None:
    """Turn a frozen pretrained language model into text classifiers in seconds.

    \b
    probe extract --model smollm2-135m --data data/sms_spam.csv --layers all
    probe sweep   --model smollm2-135m --data data/sms_spam.csv
    probe fit     --model smollm2-135m --data data/sms_spam.csv --pool last --layer 20

    \b
    Exit status: 0 done; 1 bad input (one line) or a bug (its traceback); 3 sweep or
    compare wrote its files but some rows could not be fitted (each listed; --keep-going: 0).
    """


def _register_optional_commands() -> None:
    """Commands that live in their own modules (one module per command group)."""
    import importlib

    for module_name in (
        "probe.cli.extract",
        "probe.cli.cache",
        "probe.cli.heads",
        "probe.cli.serve",
        "probe.cli.finetune",
        "probe.cli.research",
        "probe.cli.report",
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for command in getattr(module, "COMMANDS", []):
            main.add_command(command)


_register_optional_commands()
