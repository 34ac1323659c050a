"""The README's figures, one formatter per block: a results JSON in, markdown out.

Every number a formatter writes is read from ``benchmarks/results/`` (``render_readme.py`` puts
the text between the README's markers); what a formatter types itself is wording, the
benchmark's own settings and the targets it is measured against. A benchmark that wrote only a
``.md`` gets no figures: its row says so and links the file. A formatter takes a ``Results``
(the folder, every JSON read once) and returns its text: one line for a paragraph (the renderer
fills it), or lines laid out as they are (a table). ``table`` holds the Benchmarks table,
``prose`` the figures in the README's sentences.
"""

from readme_figures import instruments, prose, table, tasks  # noqa: F401  (each module registers its blocks)
from readme_figures.common import BLOCKS, RESULTS, FigureError, Results, render_block

__all__ = ["BLOCKS", "RESULTS", "FigureError", "Results", "render_block"]
