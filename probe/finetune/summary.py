"""A comparison in words: what ``probe compare`` prints, and settings as a person reads them.

The files hold everything (compare.md every column and note, compare.json every number);
the screen gets a table of the numbers that answer the question (test accuracy, the
difference from the probe, the time) in under 100 columns, and where the rest went.
"""

from __future__ import annotations

from pathlib import Path


def readable(values: dict) -> str:
    """``train 63, val 9, test 18`` or ``epochs 1, batch size 16, lr grid 1e-05/0.0001``: a
    dict for people (a nested one in parentheses), not its repr or its JSON."""
    parts = []
    for key, value in values.items():
        name = str(key).replace("_", " ")
        if isinstance(value, dict):
            parts.append(f"{name} ({readable(value)})")
        elif isinstance(value, list | tuple):
            parts.append(f"{name} {'/'.join(_value(v) for v in value)}")
        else:
            parts.append(f"{name} {_value(value)}")
    return ", ".join(parts)


def _value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _with_ci(value: float, interval, sign: str = "") -> str:
    text = format(value, f"{sign}.4f")
    return text + (f" [{interval[0]:{sign}.3f}, {interval[1]:{sign}.3f}]" if interval else "")


def console_summary(result: dict, paths: list) -> str:
    """``probe compare``'s screen: one row per method (test accuracy and its CI, the paired
    difference from the probe, * where it excludes 0, the chosen run's seconds), the data,
    and where the full table went."""
    probe_row = result["probe"]
    rows = [
        ["method", "body lr", "test acc [95% CI]", "acc - probe [95% CI]", "time (s)"],
        [
            probe_row["method"],
            "-",
            _with_ci(probe_row["test"]["accuracy"], probe_row["ci"]["accuracy"]),
            "-",
            f"{probe_row['seconds']:.1f}",
        ],
    ]
    for row in result["finetune"]:
        versus = row["vs_probe"]
        rows.append(
            [
                row["method"] + (" (LP-FT)" if row.get("init_head") == "probe" else ""),
                "-" if row["lr_body"] is None else f"{row['lr_body']:g}",
                _with_ci(row["test"]["accuracy"], row["ci"]["accuracy"]),
                _with_ci(versus["accuracy_difference"], versus["ci"], "+")
                + (" *" if versus["significant"] else ""),
                f"{row['seconds']:.1f}",
            ]
        )
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(rows[0]))]
    table = ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in rows]
    differ = any(row["vs_probe"]["significant"] for row in result["finetune"])
    bootstrap = result["settings"]["bootstrap"]
    lines = [
        f"probe vs fine-tuning: {Path(str(result['model'])).name}; texts "
        f"{readable(result['data'])}",
        "",
        *(line.rstrip() for line in table),
        "",
        "* differs from the probe: the paired 95% CI of the difference excludes 0"
        if differ
        else "no row differs from the probe: each paired 95% CI of the difference holds 0",
        f"CIs: {bootstrap['resamples']:,} bootstrap resamples of the {bootstrap['over']}",
    ]
    if paths:
        lines.append(f"full table: {paths[0]} (macro-F1, LR search, drift, settings; -v prints it)")
        lines.append("also: " + ", ".join(Path(str(path)).name for path in paths[1:]))
    return "\n".join(lines)
