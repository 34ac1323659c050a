"""Results as pandas data frames, for notebooks and scripts: one row per sweep entry, per
learning-curve point, per method of a probe-vs-fine-tuning comparison.

Each takes the result a library call returns (``probe.sweep``/``run_sweep``, ``sweep_and_save``,
``learning_curve``, ``run_comparison``) or the JSON file it was saved as (``sweep.json``,
``curve.json``, a comparison's JSON, or the folder holding one), so a frame of last week's
sweep needs no re-run. Columns are the JSON's own field names and values; a nested record of
one level (a comparison row's ``test`` report) becomes prefixed columns (``test_accuracy``),
and lists (confidence intervals ``[low, high]``, per-seed accuracies) stay lists in one cell::

    frame = probe.to_frame(probe.sweep(data))
    frame.sort_values("val_accuracy").tail(3)[["layer", "pool", "C", "test_accuracy_ci"]]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported when a frame is made: ``import probe`` stays cheap
    import pandas as pd

RESULT_FILES = ("sweep.json", "curve.json")  # what a results folder holds


def sweep_frame(result) -> pd.DataFrame:
    """One row per (layer, pool) and multi-layer entry of a sweep, in the sweep's order,
    plus ``selected``: the row the sweep chose."""
    result = _loaded(result)
    frame = _rows(result["entries"])
    best = result.get("best") or {}
    frame["selected"] = [
        entry.get("layer") == best.get("layer") and entry.get("pool") == best.get("pool")
        for entry in result["entries"]
    ]
    return frame


def curve_frame(result) -> pd.DataFrame:
    """One row per learning-curve point (training size), with the curve's ``layer`` and
    ``pool`` in front so frames of several curves concatenate."""
    result = _loaded(result)
    frame = _rows(result["points"])
    frame.insert(0, "pool", result["pool"])
    frame.insert(0, "layer", result["layer"])
    return frame


def compare_frame(result) -> pd.DataFrame:
    """One row per method of a probe-vs-fine-tuning comparison: the probe, then each
    fine-tuning run."""
    result = _loaded(result)
    return _rows([result["probe"], *result["finetune"]])


def to_frame(result) -> pd.DataFrame:
    """The frame of any of the three results, told apart by what they hold."""
    result = _loaded(result)
    if "entries" in result:
        return sweep_frame(result)
    if "points" in result:
        return curve_frame(result)
    if "finetune" in result:
        return compare_frame(result)
    raise ValueError("not a sweep, learning curve or comparison result")


def _loaded(result) -> dict:
    """A result dict as it is, or the JSON a path names (a folder: its results file)."""
    if isinstance(result, dict):
        return result
    path = Path(result)
    if path.is_dir():
        found = [path / name for name in RESULT_FILES if (path / name).is_file()]
        if not found:
            raise FileNotFoundError(f"{path} holds no {' or '.join(RESULT_FILES)}")
        path = found[0]
    return json.loads(path.read_text(encoding="utf-8"))


def _rows(records: list[dict]) -> pd.DataFrame:
    """Records -> frame: fields in first-seen order, nested records one level deep as
    ``outer_inner`` columns, values as the JSON file holds them (a missing number: NaN)."""
    import pandas as pd

    plain = json.loads(json.dumps(records, default=_jsonable))
    return pd.json_normalize(plain, sep="_", max_level=1)


def _jsonable(value):
    """What the JSON writer makes of numpy values and paths."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
