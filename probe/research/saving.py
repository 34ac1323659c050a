"""A sweep's and a curve's results as files: the table, the JSON, the figure and the head.

What ``probe sweep`` and ``probe curve`` leave in their folder, written through the one writer
(``probe.outputs``), so the commands only parse, call and print, and a notebook gets the same
files from one call.
"""

from __future__ import annotations

from pathlib import Path


def save_sweep(
    result: dict,
    data,
    folder: str | Path,
    plot: str | Path | None = None,
    settings: dict | None = None,
    table: str | None = None,
    head_extra: dict | None = None,
) -> dict:
    """Write sweep.md (``table``, else the sweep's own), sweep.json, the plot and the selected
    head (multi-layer heads too; ``head_extra`` adds to its record); return the report that
    sweep.json holds."""
    from probe.heads.persistence import save_head
    from probe.outputs import write_json, write_text
    from probe.research.sweep import head_meta, public
    from probe.research.sweep_report import markdown_table, plot_sweep

    folder = Path(folder)
    best = result["_best_result"]
    meta = {**head_meta(data, best), **(head_extra or {})}
    head_path = save_head(folder / "head.json", best.classifier, meta, best.combiner)
    report = {**public(result), "settings": settings or {}, "head": str(head_path)}
    write_text(folder / "sweep.md", table or markdown_table(result))
    write_json(folder / "sweep.json", report)
    plot_path = plot_sweep(result, plot or folder / "sweep.png")
    report["files"] = [
        str(folder / "sweep.md"),
        str(folder / "sweep.json"),
        str(plot_path),
        str(head_path),
    ]
    return report


def save_curve(result: dict, folder: str | Path) -> list[Path]:
    """Write curve.md, curve.json and curve.png; return their paths."""
    from probe.outputs import write_json, write_text
    from probe.research.curve import markdown_table, plot_curve

    folder = Path(folder)
    return [
        write_text(folder / "curve.md", markdown_table(result)),
        write_json(folder / "curve.json", result),
        plot_curve(result, folder / "curve.png"),
    ]
