"""Render the README's figures from the results JSON, so no number in it is typed by hand.

    python benchmarks/render_readme.py           # after a benchmark run: rewrite README.md
    python benchmarks/render_readme.py --check   # exit 1 if README.md is not what it renders

A figure sits in a marked block; its text is made by the formatter of that name in
``readme_figures.BLOCKS`` from ``benchmarks/results/``:

    <!-- figures: NAME -->
    ...
    <!-- /figures -->

Only the text between the markers is rewritten; the rest of the file stays byte for byte, so
the README can be reworded and its blocks moved freely. Markers on lines of their own hold a
block of whole lines (a table, a paragraph). Otherwise the block is inline (part of a sentence
or a bullet): filled to the README's width from the marker's column, or from the next line when
the marker's line is nearly full, and continued at that line's indentation. A formatter's
one-line text is a paragraph and is filled; text with line breaks is laid out by the formatter.
A docs site renders the same blocks with ``readme_figures.render_block(NAME, Results(folder))``.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

from readme_figures import BLOCKS, RESULTS, FigureError, Results, render_block
from readme_figures.common import WIDTH

README = Path(__file__).resolve().parents[1] / "README.md"
START = re.compile(r"<!-- figures: ([\w-]+) -->")
END = "<!-- /figures -->"


def _fill(text: str, indent: str, column: int | None = None) -> str:
    """Fill one-line ``text`` to WIDTH at ``indent``; inline (``column`` given), its first line
    continues a line already ``column`` characters long. Text with line breaks is kept."""
    if "\n" in text:
        return textwrap.indent(text, indent) if column is None else text
    filled = textwrap.fill(
        text,
        WIDTH,
        initial_indent=indent if column is None else "x" * column,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return filled if column is None else filled[column:]


def blocks(text: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of every block's contents, in order; a malformed marker is an error."""
    found, position = [], 0
    while (start := START.search(text, position)) is not None:
        end = text.find(END, start.end())
        following = START.search(text, start.end())
        if end < 0 or (following is not None and following.start() < end):
            line = text.count("\n", 0, start.start()) + 1
            raise FigureError(f"line {line}: block {start.group(1)} has no {END} before the next")
        found.append((start.group(1), start.end(), end))
        position = end + len(END)
    stray = text.count(END) - len(found)
    if stray:
        raise FigureError(f"{stray} {END} without a start marker")
    return found


def render(text: str, results: Results, formatters: Mapping[str, Callable] = BLOCKS) -> str:
    """``text`` with every block's contents made anew from ``results``."""
    out, position = "", 0
    for name, start, end in blocks(text):
        out += text[position:start]
        marker_line = out[out.rfind("\n") + 1 :]  # as rendered so far: blocks may share a line
        indent = re.match(r"[ \t]*", marker_line).group()
        made = render_block(name, results, formatters)
        contents, after = text[start:end], text[end + len(END) : end + len(END) + 1]
        newline = "\r\n" if contents.startswith("\r\n") else "\n"
        closing = contents[contents.rfind("\n") + 1 :]  # what precedes the end marker on its line
        if contents.startswith(newline) and not closing.strip() and after in ("\r", "\n", ""):
            made = _fill(made, indent).replace("\n", newline)  # a block of whole lines
            out += f"{newline}{made}{newline}{closing}"
        elif len(marker_line) > WIDTH - 20:  # inline, from the next line: no room on this one
            out += f"\n{_fill(made, indent)}"
        else:  # inline, continuing the marker's line
            out += _fill(made, indent, column=len(marker_line))
        position = end
    return out + text[position:]


def stale_blocks(text: str, rendered: str) -> list[str]:
    """Names of the blocks whose contents differ between ``text`` and its rendering."""
    old, new = blocks(text), blocks(rendered)
    return [
        a[0] for a, b in zip(old, new, strict=True) if text[a[1] : a[2]] != rendered[b[1] : b[2]]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    text = args.readme.read_bytes().decode("utf-8")  # bytes: line endings stay as they are
    try:
        rendered = render(text, Results(args.results))
    except FigureError as exc:
        print(f"render_readme: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_blocks(text, rendered)
        if stale:
            print(
                f"{args.readme}: figures differ from {args.results} in block(s) "
                f"{', '.join(stale)}: run python benchmarks/render_readme.py",
                file=sys.stderr,
            )
            return 1
        return 0
    if rendered != text:
        args.readme.write_bytes(rendered.encode("utf-8"))
        print(f"{args.readme}: rendered {len(blocks(text))} blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
