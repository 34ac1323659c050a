"""The ``probe`` command line: one thin module per command group (parse, call, print).

All work lives in the stage packages; a command turns a ``ProbeError`` into one line.
"""

from probe.cli.main import main

__all__ = ["main"]
