"""Finding result files and reading values out of them, whatever version wrote them.

Files are recognised by content, not by name: a sweep has ``entries`` (rows with a layer and
a pool), a comparison has ``probe`` and ``finetune``, a learning curve has ``points`` (or a
``curve`` list). Keys this module does not know are shown as they are, missing ones as "-":
an older or newer result file still renders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from probe.errors import ProbeError

KINDS = ("sweep", "curve", "compare", "intervene")


@dataclass
class ResultFile:
    kind: str  # one of KINDS
    path: Path
    name: str  # path relative to the results folder, shown in the report
    data: dict


@dataclass
class Results:
    folder: Path
    files: list[ResultFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # JSON files of no known kind

    def of(self, kind: str) -> list[ResultFile]:
        return [f for f in self.files if f.kind == kind]


def kind_of(data) -> str | None:
    if not isinstance(data, dict):
        return None
    entries = data.get("entries")
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        if "layer" in entries[0] and "pool" in entries[0]:
            return "sweep"
    if isinstance(data.get("probe"), dict) and isinstance(data.get("finetune"), list):
        return "compare"
    if isinstance(curve_points(data), list):
        return "curve"
    if data.get("kind") == "intervene" and isinstance(data.get("dose"), list):
        return "intervene"
    return None


def curve_points(data: dict) -> list | None:
    """The per-size rows of a learning curve (``points``, or ``curve``), else None."""
    for key in ("points", "curve"):
        value = data.get(key)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return value
    return None


def find_results(folder: str | Path) -> Results:
    """Every sweep, curve and compare JSON under ``folder``, in path order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProbeError(f"{folder} is not a folder of results (sweep.json, curve.json, ...)")
    results = Results(folder)
    for path in sorted(folder.rglob("*.json")):
        name = str(path.relative_to(folder))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            results.skipped.append(f"{name} (not readable JSON)")
            continue
        kind = kind_of(data)
        if kind is None:
            results.skipped.append(name)
        else:
            results.files.append(ResultFile(kind, path, name, data))
    if not results.files:
        raise ProbeError(f"no sweep, curve or compare JSON files under {folder}")
    return results


def is_interval(value) -> bool:
    """[low, high] of two numbers: a confidence interval."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def interval_path(row: dict, key: str) -> list | None:
    """Where the CI of ``row[key]`` lives in the row (a list of keys), or None.

    Accepted spellings: ``KEY_ci``, ``ci[KEY]``, and for ``SPLIT_METRIC`` keys
    ``SPLIT_ci[METRIC]`` or ``ci[SPLIT][METRIC]``.
    """
    split, _, metric = key.partition("_")
    candidates = [[f"{key}_ci"], ["ci", key], [f"{split}_ci", metric], ["ci", split, metric]]
    for path in candidates:
        value = row
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if is_interval(value):
            return path
    return None


def lookup(data, path: list):
    """``data[path[0]][path[1]]...``; None where a step is missing."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def headline(sweep: dict) -> tuple[list, list | None] | None:
    """Where a sweep's headline number lives: (path to the selected row's value, path to its
    CI or None), for the sweep's ``metric`` (accuracy in files written before it existed),
    on test, else validation; None when the file has neither."""
    best = sweep.get("best")
    metric = sweep.get("metric") or "accuracy"
    for split in ("test", "val"):
        key = f"{split}_{metric}"
        if isinstance(best, dict) and isinstance(best.get(key), int | float):
            ci = interval_path(best, key)
            return ["best", key], (["best", *ci] if ci else None)
    return None


def held_out_name(data: dict) -> str:
    """What a sweep's ``val_*`` numbers are, from its ``selection``: "validation" on a val
    split, else "cross-validated" (out of fold on train, where the folds chose C and the row)."""
    cv = data.get("selection", "validation") != "validation"
    return "cross-validated" if cv else "validation"
