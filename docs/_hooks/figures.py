"""The docs' figures come from ``benchmarks/results/``, as the README's do: an mkdocs hook.

A page holds a figure in the README's marked block, ``<!-- figures: NAME -->`` ...
``<!-- /figures -->``; at build time the hook fills every block with
``readme_figures.render_block(NAME, Results(benchmarks/results))`` (through
``render_readme.render``, the README renderer itself), so no page types a number by hand and a
results file changed is a docs page changed. A block that cannot be rendered (no formatter of
that name, a results file missing) fails the build. The results' plots (``*.png``) are served
under ``results/`` of the site, e.g. ``![...](../results/demo_sms/sweep.png)`` from a page one
folder down.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from readme_figures import RESULTS, FigureError, Results  # noqa: E402
from render_readme import render  # noqa: E402

SITE_FOLDER = "results"  # where the results' plots land in the site


def on_files(files, config):
    """Add every results plot to the site, so pages can show them without copying them."""
    for path in sorted(RESULTS.rglob("*.png")):
        uri = f"{SITE_FOLDER}/{path.relative_to(RESULTS).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    """Fill the page's figure blocks from the results JSON."""
    if "<!-- figures:" not in markdown:
        return markdown
    try:
        return render(markdown, Results(RESULTS))
    except FigureError as exc:
        raise PluginError(f"{page.file.src_uri}: {exc}") from None
