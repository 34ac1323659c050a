"""The report page: settings, tables and figures of every result file in a folder.

Tables print what the JSON holds, rounded by one rule (:func:`format_number`), and each
number's cell names its source in ``data-path`` (``FILE#entries/3/test_accuracy``). Columns
a file does not have are left out; keys the report does not know get a column of their own.
"""

from __future__ import annotations

import html
import platform
import time
from pathlib import Path

from probe.files import write_atomic
from probe.heads.metrics import TITLES
from probe.report import plots
from probe.report.results import (
    ResultFile,
    Results,
    curve_points,
    find_results,
    headline,
    held_out_name,
    interval_path,
    is_interval,
    lookup,
)
from probe.research.sweep_report import grouping_line

# Sweep columns shown first, in this order; any other key of the rows follows.
SWEEP_FIRST = [
    "layer",
    "pool",
    "probe",  # --probe rows (probe.heads.families); absent from a default sweep's
    "C",
    "val_accuracy",
    "val_macro_f1",
    "val_balanced_accuracy",
    "val_auroc",
    "val_average_precision",
    "val_log_loss",
    "test_accuracy",
    "test_macro_f1",
    "test_balanced_accuracy",
    "test_auroc",
    "test_average_precision",
    "selectivity_vs_random",
    "selectivity_vs_bow",
    "memorisation_capacity",
]
BASELINE_FIRST = ["baseline", "layer", "pool", "C", "val_accuracy"]
SWEEP_HIDDEN = {"cpu_seconds"}
COMPARE_COLUMNS = [
    ("method", ["method"]),
    ("body lr", ["lr_body"]),
    ("best epoch", ["best_epoch"]),
    ("epochs run", ["epochs_run"]),
    ("test acc", ["test", "accuracy"]),
    ("95% CI", ["ci", "accuracy"]),
    ("macro F1", ["test", "macro_f1"]),
    ("95% CI", ["ci", "macro_f1"]),
    ("acc − probe", ["vs_probe", "accuracy_difference"]),
    ("95% CI (paired)", ["vs_probe", "ci"]),
    ("significant", ["vs_probe", "significant"]),
    ("trainable params", ["trainable_params"]),
    ("time (s)", ["seconds"]),
    ("LR search (s)", ["search_seconds"]),
    ("perplexity drift %", ["perplexity_drift_pct"]),
]
SETTINGS_SKIP = {"entries", "best", "probe", "finetune", "points", "curve", "head", "baselines"}

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.text { text-align: left; }
tr.best td { font-weight: bold; background: #fff6d5; }
.scroll { overflow-x: auto; } .note { color: #555; font-size: 12px; }
svg { max-width: 100%; height: auto; }
"""


def format_number(key: str, value) -> str:
    """The one rounding rule of the report: seconds and bits to 0.1, learning rates and C
    in %g, percentages to 0.001, every other float (scores, CIs) to 0.0001."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    name = key.lower()
    if "seconds" in name or "bits" in name or "codelength" in name or name.endswith("_mb"):
        return f"{value:.1f}"
    if name == "c" or name.startswith("lr") or "_lr" in name or name == "cs":
        return f"{value:g}"
    if name.endswith("pct"):
        return f"{value:.3f}"
    return f"{value:.4f}"


def _cell(source: str, path: list, value) -> str:
    key = str(path[-1]) if path else ""
    where = f' data-path="{html.escape(source)}#{"/".join(map(str, path))}"'
    if value is None:
        return "<td>-</td>"
    if _numbers(value):  # a CI [low, high], or a short list of settings such as an LR grid
        key = str(path[-2]) if len(path) > 1 and key == "ci" else key
        return f"<td{where}>[{', '.join(format_number(key, v) for v in value)}]</td>"
    if isinstance(value, int | float):
        return f"<td{where}>{format_number(key, value)}</td>"
    if isinstance(value, dict | list):
        return "<td>…</td>"
    return f'<td class="text"{where}>{html.escape(str(value))}</td>'


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _numbers(value) -> bool:
    return (
        isinstance(value, list)
        and 0 < len(value) <= 12
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def is_ci_path(path: tuple) -> bool:
    return any(str(part) == "ci" or str(part).endswith("_ci") for part in path)


def _leaf_paths(row: dict, prefix: tuple = (), lists: bool = False) -> list[tuple]:
    """Paths to the scalars and CIs of a row (nested dicts flattened); other lists of numbers
    too with ``lists`` (settings), never per-seed lists in a table's rows."""
    paths = []
    for key, value in row.items():
        path = (*prefix, key)
        if isinstance(value, dict):
            paths += _leaf_paths(value, path, lists)
        elif value is None or isinstance(value, str | int | float):
            paths.append(path)
        elif (is_ci_path(path) and is_interval(value)) or (lists and _numbers(value)):
            paths.append(path)
    return paths


def row_columns(rows: list[dict], first: list[str], hidden=frozenset()) -> list[tuple]:
    """Column paths for a table of ``rows``: ``first`` in order, then every other leaf in the
    order met, each metric's CI right after it."""
    seen: list[tuple] = []
    for row in rows:
        seen += [p for p in _leaf_paths(row) if p not in seen and p[0] not in hidden]
    seen = [p for p in seen if any(lookup(row, list(p)) is not None for row in rows)]
    intervals = {p for p in seen if any(is_interval(lookup(row, list(p))) for row in rows)}
    ordered = [(key,) for key in first if (key,) in seen]
    ordered += [p for p in seen if p not in ordered]
    columns: list[tuple] = []
    for path in (p for p in ordered if p not in intervals):
        columns.append(path)
        found = (interval_path(row, path[0]) for row in rows) if len(path) == 1 else ()
        ci = next((tuple(c) for c in found if c), None)
        if ci and ci not in columns:
            columns.append(ci)
    return columns + [p for p in ordered if p in intervals and p not in columns]


def _headers(columns: list[tuple]) -> list[str]:
    """Column titles; a CI right after its metric is just "95% CI"."""
    names = [" ".join(str(part) for part in path).replace("_", " ") for path in columns]
    titles = []
    for i, (path, name) in enumerate(zip(columns, names, strict=True)):
        if is_ci_path(path):
            base = name.replace(" ci", "").replace("ci ", "").strip()
            name = "95% CI" if i and names[i - 1] == base else f"{base} 95% CI"
        titles.append(name)
    return titles


def _plain_titles(titles: list[str], data: dict) -> list[str]:
    """``val accuracy`` as the sweep's ``held_out_name``: validation or cross-validated."""
    name = held_out_name(data)
    return [name + title[3:] if title.startswith("val ") else title for title in titles]


def sweep_section(result: ResultFile, index: int) -> str:
    data = result.data
    rows = data["entries"]
    columns = row_columns(rows, SWEEP_FIRST, SWEEP_HIDDEN)
    best = data.get("best") or {}
    body = []
    for i, row in enumerate(rows):
        chosen = all(row.get(key) == best.get(key) for key in ("layer", "pool", "probe"))
        cells = "".join(
            _cell(result.name, ["entries", i, *p], lookup(row, list(p))) for p in columns
        )
        opening = '<tr class="best">' if chosen else "<tr>"
        body.append(f"{opening}{cells}</tr>")
    parts = [f"<h2>Sweep: {html.escape(result.name)}</h2>", _settings(result)]
    if best:
        parts.append(
            f"<p>Selected on {html.escape(str(data.get('selection', 'validation')))}: layer "
            f"{html.escape(str(best.get('layer')))}, pool {html.escape(str(best.get('pool')))} "
            + (f"probe {html.escape(str(best['probe']))} " if best.get("probe") else "")
            + "(bold row).</p>"
        )
        parts.append(_headline(result))
    grouped = grouping_line(data.get("grouping"))
    if grouped:
        parts.append(f"<p>{html.escape(grouped)}</p>")
    figure = plots.layer_plot(data, f"sweep{index}")
    scatter = plots.scatter_plot(data, f"scatter{index}")  # regression: predicted vs true
    parts += [figure or "", scatter or "", _table(_plain_titles(_headers(columns), data), body)]
    if isinstance(data.get("baselines"), dict):
        target = data.get("target", "classification") != "classification"
        parts.append(_target_baselines(result) if target else _baselines_table(result))
    return "\n".join(parts)


def _headline(result: ResultFile) -> str:
    """What chose the row and its headline number with its CI, each number's source named
    as a table cell's is."""
    how = html.escape(str(result.data.get("selected_by", "validation")))
    found = headline(result.data)
    if found is None:
        return f"<p>Selected by {how}.</p>"
    value_path, ci_path = found
    key = value_path[-1]

    def number(path, value):
        where = html.escape(f"{result.name}#{'/'.join(map(str, path))}")
        return f'<span data-path="{where}">{format_number(key, value)}</span>'

    text = number(value_path, lookup(result.data, value_path))
    if ci_path:
        low, high = lookup(result.data, ci_path)
        text += f" [{number([*ci_path, 0], low)}, {number([*ci_path, 1], high)}]"
    split, _, metric = key.partition("_")
    split = held_out_name(result.data) if split == "val" else split
    name = html.escape(f"{split} {TITLES.get(metric, metric)}")
    return f"<p>Selected by {how}; headline {name}: {text}.</p>"


def _placed_rows(result: ResultFile, rows: list, columns: list) -> list[str]:
    """Table rows whose cells name where in the result file each number sits."""
    return [
        "<tr>"
        + "".join(_cell(result.name, [*where, *p], lookup(row, list(p))) for p in columns)
        + "</tr>"
        for where, row in rows
    ]


def _target_baselines(result: ResultFile) -> str:
    """A regression or multi-label sweep's baselines: constant, bag of words, random weights."""
    found = result.data["baselines"]
    rows = [
        (["baselines", key], found[key])
        for key in ("constant", "bag_of_words", "random_weights")
        if isinstance(found.get(key), dict)
    ]
    columns = row_columns([row for _, row in rows], ["method", str(found.get("metric"))])
    body = _placed_rows(result, rows, columns)
    note = (
        f'<p class="note">Baselines on the {html.escape(str(found.get("held_out")))} split; '
        f"each row's selectivity is its {html.escape(str(found.get('metric')))} minus the "
        "best baseline's.</p>"
    )
    return "\n".join(["<h3>Baselines</h3>", note, _table(_headers(columns), body)])


def _baselines_table(result: ResultFile) -> str:
    """Majority, bag of words and random weights per layer, on the sweep's held-out split."""
    found = result.data["baselines"]
    rows = [
        (["baselines", key], found[key])
        for key in ("majority", "bag_of_words")
        if isinstance(found.get(key), dict)
    ]
    rows += [
        (["baselines", "random_weights", i], row)
        for i, row in enumerate(found.get("random_weights") or [])
    ]
    split = str(found.get("split", "test"))
    first = [*BASELINE_FIRST, f"{split}_accuracy", f"{split}_macro_f1"]
    columns = row_columns([row for _, row in rows], first)
    body = _placed_rows(result, rows, columns)
    note = (
        f'<p class="note">Baselines on the same {html.escape(split)} split; each sweep '
        "row's selectivity is its accuracy minus theirs (paired bootstrap 95% CI).</p>"
    )
    titles = _plain_titles(_headers(columns), result.data)
    return "\n".join(["<h3>Baselines</h3>", note, _table(titles, body)])


def curve_section(result: ResultFile, index: int) -> str:
    points = curve_points(result.data)
    key = "points" if result.data.get("points") is points else "curve"
    columns = row_columns(points, [])
    body = [
        "<tr>"
        + "".join(_cell(result.name, [key, i, *p], lookup(row, list(p))) for p in columns)
        + "</tr>"
        for i, row in enumerate(points)
    ]
    figure = plots.curve_plot(result.data, f"curve{index}")
    return "\n".join(
        [
            f"<h2>Learning curve: {html.escape(result.name)}</h2>",
            _settings(result),
            figure or "",
            _table(_headers(columns), body),
        ]
    )


def compare_section(result: ResultFile, index: int) -> str:
    data = result.data
    rows = [(["probe"], data["probe"])]
    rows += [(["finetune", i], row) for i, row in enumerate(data["finetune"])]
    columns = [
        (name, path)
        for name, path in COMPARE_COLUMNS
        if any(lookup(row, path) is not None for _, row in rows)
    ]
    body = [
        "<tr>"
        + "".join(_cell(result.name, [*where, *path], lookup(row, path)) for _, path in columns)
        + "</tr>"
        for where, row in rows
    ]
    parts = [f"<h2>Probe vs fine-tuning: {html.escape(result.name)}</h2>", _settings(result)]
    parts += [plots.compare_plot(data, f"compare{index}") or ""]
    parts.append(_table([name for name, _ in columns], body))
    summary = _compare_summary(data)
    if summary:
        parts.append(
            "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in summary) + "</ul>"
        )
    return "\n".join(parts)


def _compare_summary(data: dict) -> list[str]:
    from probe.finetune.compare import summary_lines

    try:
        return summary_lines(data)
    except (KeyError, TypeError, IndexError):  # an older comparison without CIs
        return []


def _settings(result: ResultFile) -> str:
    """Top-level scalars and the settings/versions/machine dicts: what made these numbers."""
    data = {k: v for k, v in result.data.items() if k not in SETTINGS_SKIP}
    rows = []
    for path in _leaf_paths(data, lists=True):
        value = lookup(data, list(path))
        name = html.escape(".".join(map(str, path)))
        rows.append(f'<tr><td class="text">{name}</td>{_cell(result.name, list(path), value)}</tr>')
    return (
        "<details><summary>Settings and versions</summary>"
        + _table(["setting", "value"], rows)
        + "</details>"
    )


DOSE = ("readout", "alpha", "head_shift", "random_shift", "effect", "effect_ci", "moved")
ERASED = ("readout", "clean", "erased", "random_erased", "effect", "effect_ci")


def intervene_section(result: ResultFile, index: int) -> str:
    """``probe intervene``: the dose-response against random, and the erasure."""
    data, name = result.data, result.name
    title = f"Intervention at layer {data.get('layer')} toward {data.get('target')!r}: {name}"
    parts = [f"<h2>{html.escape(title)}</h2>", _settings(result)]
    parts.append(plots.intervene_plot(data, f"intervene{index}") or "")
    for where, rows, keys in (
        (["dose"], data["dose"], DOSE),
        (["erasure", "readouts"], (data.get("erasure") or {}).get("readouts") or [], ERASED),
    ):
        body = [
            "<tr>" + "".join(_cell(name, [*where, i, k], row.get(k)) for k in keys) + "</tr>"
            for i, row in enumerate(rows)
        ]
        parts.append(_table([k.replace("_", " ") for k in keys], body) if body else "")
    return "\n".join(parts)


SECTIONS = {
    "sweep": sweep_section,
    "curve": curve_section,
    "compare": compare_section,
    "intervene": intervene_section,
}


def render(results: Results) -> str:
    """The whole page as one string."""
    import matplotlib

    from probe import __version__

    body = []
    for kind in SECTIONS:
        body += [SECTIONS[kind](f, i) for i, f in enumerate(results.of(kind))]
    listed = "".join(
        f"<li>{html.escape(f.kind)}: {html.escape(f.name)}</li>" for f in results.files
    )
    skipped = ""
    if results.skipped:
        names = ", ".join(html.escape(name) for name in results.skipped)
        skipped = f'<p class="note">Other JSON files, not shown: {names}</p>'
    made = (
        f"probe {__version__}, Python {platform.python_version()}, matplotlib "
        f"{matplotlib.__version__}, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>probe report: {html.escape(results.folder.name)}</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<h1>probe report: {html.escape(str(results.folder))}</h1>",
            f'<p class="note">Made by {html.escape(made)}. Versions that made each result are in '
            "its settings.</p>",
            f"<ul>{listed}</ul>",
            skipped,
            *body,
            "</body></html>",
        ]
    )


def write_report(results_dir: str | Path, out: str | Path) -> Path:
    """Render every result under ``results_dir`` into the HTML file ``out`` (atomically)."""
    from probe.errors import ProbeError

    page = render(find_results(results_dir))
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, page)
    except OSError as exc:
        raise ProbeError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
