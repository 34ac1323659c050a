"""Numbers and label sets through the commands: sweep, fit, predict, export and report, on
the shipped places slice and EWT sentence properties with the tiny GPT-2; bad input one line.

The heads' numbers are checked against known answers in tests/heads (test_regression,
test_multilabel); here the commands must carry them end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_probe

ROOT = Path(__file__).resolve().parents[2]
PLACES = ROOT / "data" / "world_places" / "places_slice.csv"
PROPERTIES = ROOT / "data" / "ewt_properties.csv"


@pytest.fixture
def places(tmp_path) -> Path:
    path = tmp_path / "places.csv"
    pd.read_csv(PLACES, dtype=str, keep_default_na=False).head(160).to_csv(path, index=False)
    return path


@pytest.fixture
def properties(tmp_path) -> Path:
    path = tmp_path / "properties.csv"
    pd.read_csv(PROPERTIES, dtype=str, keep_default_na=False).head(200).to_csv(path, index=False)
    return path


def test_a_regression_sweep_chooses_by_r2_and_its_head_predicts_numbers(
    tiny_gpt2_dir, places, tmp_path
):
    out = tmp_path / "sweep"
    rows = {"model": tiny_gpt2_dir, "data": places, "max_length": 32}
    done = run_probe(
        "sweep",
        **rows,
        task="regression",
        label_col="latitude,longitude",
        out_dir=out,
        control=True,
        mdl=True,
    )
    assert done.exit_code == 0, done.output
    report = json.loads((out / "sweep.json").read_text())
    assert report["target"] == "regression" and report["metric"] == "r2"
    assert report["target_names"] == ["latitude", "longitude"]
    best = report["best"]
    assert best["penalty"] == "alpha" and best["test_r2_ci"] is not None
    assert set(best["test"]["targets"]) == {"latitude", "longitude"}
    assert "not defined" in best["mdl"] and "control_train_r2" in best
    assert sum(row.get("indistinguishable") is True for row in report["entries"]) >= 1
    assert "| alpha |" in (out / "sweep.md").read_text()
    predicted = run_probe("predict", "Paris", "Tokyo", head=out / "head.json", json=True)
    assert predicted.exit_code == 0, predicted.output
    lines = [json.loads(line) for line in predicted.output.strip().splitlines()]
    assert [set(line["prediction"]) for line in lines] == [{"latitude", "longitude"}] * 2


def test_a_multi_label_sweep_chooses_by_macro_f1_and_predicts_label_sets(
    tiny_gpt2_dir, properties, tmp_path
):
    out = tmp_path / "sweep"
    rows = {"model": tiny_gpt2_dir, "data": properties, "max_length": 48}
    done = run_probe("sweep", **rows, multi_label=True, label_col="labels", out_dir=out)
    assert done.exit_code == 0, done.output
    report = json.loads((out / "sweep.json").read_text())
    assert report["target"] == "multi-label" and report["metric"] == "macro_f1"
    assert report["best"]["test_macro_f1_ci"] is not None
    head = json.loads((out / "head.json").read_text())
    assert head["target"] == "multi-label" and "question" in head["target_names"]
    predicted = run_probe("predict", "Why not?", head=out / "head.json", json=True)
    assert predicted.exit_code == 0, predicted.output
    row = json.loads(predicted.output.strip().splitlines()[-1])
    assert isinstance(row["prediction"], list) and set(row["probabilities"]) == set(
        head["target_names"]
    )


def test_flag_columns_fit_a_multi_label_head(tiny_gpt2_dir, properties, tmp_path):
    done = run_probe(
        "fit",
        model=tiny_gpt2_dir,
        data=properties,
        max_length=48,
        multi_label=True,
        label_col="past,negation,question",
        layer=2,
        pool="mean",
        out=tmp_path / "head",
    )
    assert done.exit_code == 0, done.output
    assert "macro_f1" in done.output and "multi-label: C" in done.output


@pytest.mark.parametrize(
    ("cells", "options", "message"),
    [
        (
            {"lat": ["1", "x", "3"]},
            {"task": "regression", "label_col": "lat"},
            "lat of row 2 is 'x', not a number",
        ),
        (
            {"label": ["a", "b", "a"]},
            {"label_col": "label,other"},
            "--label-col names 2 columns; a classifier reads one",
        ),
        ({"tags": ["", "", ""]}, {"multi_label": True, "label_col": "tags"}, "holds no labels"),
        (
            {"tags": ["a,b", "b", "a"]},
            {"multi_label": True, "label_col": "tags"},
            "--label-sep '|' never occurs in 'tags'",
        ),
    ],
)
def test_bad_targets_are_one_line(tiny_gpt2_dir, tmp_path, cells, options, message):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"text": ["one", "two", "three"], **cells}).to_csv(path, index=False)
    done = run_probe("sweep", model=tiny_gpt2_dir, data=path, out_dir=tmp_path / "o", **options)
    assert done.exit_code == 1
    assert message in done.output and "Traceback" not in done.output
    assert len(done.output.strip().splitlines()) == 1
