"""``probe.to_frame``: sweeps, learning curves and comparisons as data frames whose columns
and values are the JSON's, from the result in memory or from the file it was saved as."""

from __future__ import annotations

import json
import math

import pytest

import probe
from conftest import REPO, run_probe


def _same_as_json(frame, records: list[dict]) -> None:
    """Every field of every record is its row's cell (a JSON null: None or NaN)."""
    assert len(frame) == len(records)
    for row, record in zip(frame.to_dict("records"), records, strict=True):
        for key, expected in record.items():
            got = row[key]
            if expected is None:
                assert got is None or (isinstance(got, float) and math.isnan(got)), key
            else:
                assert got == expected, (key, got, expected)


def test_a_sweeps_frame_is_its_entries_with_the_selected_row(research_data, tmp_path):
    from probe.research.sweep import public, run_sweep

    result = run_sweep(research_data, n_jobs=1, resamples=50, mdl=True)
    frame = probe.to_frame(result)
    entries = json.loads(json.dumps(public(result)))["entries"]
    assert frame.columns.tolist() == [*entries[0], "selected"]
    _same_as_json(frame, entries)
    assert frame.loc[frame.selected, ["layer", "pool"]].values.tolist() == [
        [result["best"]["layer"], result["best"]["pool"]]
    ]
    assert frame["test_accuracy_ci"].iloc[0] == entries[0]["test_accuracy_ci"]  # [low, high]


def test_a_saved_sweep_folder_gives_the_same_frame(sms_rows, tmp_path):
    done = run_probe("sweep", **sms_rows, layers="1,3", out_dir=tmp_path / "sweep", q=True)
    assert done.exit_code == 0, done.output
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    frame = probe.sweep_frame(tmp_path / "sweep")
    _same_as_json(frame, saved["entries"])
    assert len(frame) == 4 and frame["selected"].sum() == 1


def test_a_curves_frame_has_a_row_per_point(research_data, tmp_path):
    from probe.research.commands import save_curve
    from probe.research.curve import learning_curve

    curve = learning_curve(research_data, 2, "last", sizes=[1, 4], seeds=2)
    save_curve(curve, tmp_path / "curve")
    for source in (curve, tmp_path / "curve", tmp_path / "curve" / "curve.json"):
        frame = probe.to_frame(source)
        assert frame.columns.tolist()[:2] == ["layer", "pool"]
        assert (frame["layer"] == 2).all() and (frame["pool"] == "last").all()
        _same_as_json(frame, json.loads(json.dumps(curve["points"])))
    assert frame["per_class"].tolist() == [1, 4, "all"]


def test_a_comparisons_frame_flattens_each_methods_test_report():
    path = REPO / "benchmarks" / "results" / "compare-smollm2_135m-sms_spam.json"
    saved = json.loads(path.read_text())
    frame = probe.compare_frame(path)
    rows = [saved["probe"], *saved["finetune"]]
    assert frame["method"].tolist() == [row["method"] for row in rows]
    assert frame["test_accuracy"].tolist() == [row["test"]["accuracy"] for row in rows]
    _same_as_json(frame, [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in rows])


def test_what_is_no_result_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a sweep"):
        probe.to_frame({"model": "gpt2"})
    with pytest.raises(FileNotFoundError):
        probe.to_frame(tmp_path)
