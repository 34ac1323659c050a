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


def test_a_regression_head_round_trips_and_its_onnx_export_agrees(tiny_gpt2_dir, places, tmp_path):
    pytest.importorskip("onnxruntime")
    from probe.data.targets import target_spec
    from probe.heads.persistence import load_head, save_head
    from probe.heads.rows import prepare
    from probe.research.fitting import fit_one, head_meta
    from probe.serve.export import OnnxPredictor, export_head
    from probe.serve.predict import load_predictor

    spec = target_spec("latitude,longitude", regression=True)
    data = prepare(str(tiny_gpt2_dir), data=str(places), max_length=32, layers="2", target=spec)
    result = fit_one(data, 2, "mean")
    path = save_head(tmp_path / "head.json", result.classifier, head_meta(data, result))
    loaded, record = load_head(path)
    X = data.test.features(2, "mean")
    assert record["target"] == "regression" and record["target_names"] == ["latitude", "longitude"]
    assert abs(loaded.predict(X) - result.classifier.predict(X)).max() < 1e-9
    texts = ["Paris", "Lake Victoria", "Mount Fuji"]
    rows = load_predictor(str(path)).predict(texts)
    exported = OnnxPredictor.load(export_head(path, tmp_path / "onnx")).predict(texts)
    for ours, theirs in zip(rows, exported, strict=True):
        for name, value in ours["prediction"].items():
            assert abs(value - theirs["prediction"][name]) <= 1e-3 * (1 + abs(value))


def test_learning_curves_and_the_report_carry_target_rows(tiny_gpt2_dir, places, tmp_path):
    rows = {"model": tiny_gpt2_dir, "data": places, "max_length": 32}
    options = {"task": "regression", "label_col": "latitude,longitude"}
    curve = run_probe(
        "curve",
        **rows,
        **options,
        layer=2,
        pool="mean",
        seeds=2,
        out_dir=tmp_path / "results" / "curve",
    )
    assert curve.exit_code == 0, curve.output
    found = json.loads((tmp_path / "results" / "curve" / "curve.json").read_text())
    points = found["points"]
    assert points[-1]["per_class"] == "all" and "r2_mean" in points[0]
    assert points[-1]["n_train"] == found["n"]["train"] and found["n"]["test"] >= 25
    sweep = run_probe("sweep", **rows, **options, out_dir=tmp_path / "results" / "sweep")
    assert sweep.exit_code == 0, sweep.output
    swept = json.loads((tmp_path / "results" / "sweep" / "sweep.json").read_text())
    held = swept["best"]["predictions"]
    assert len(held["truth"]) == swept["n"]["test"] == len(held["predicted"])
    report = run_probe("report", tmp_path / "results", out=tmp_path / "report.html")
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report.html").read_text()
    assert "predicted vs true" in page and "r2_mean" in page


def test_penalty_options_follow_the_task(tiny_gpt2_dir, places, tmp_path):
    rows = {"model": tiny_gpt2_dir, "data": places, "max_length": 32}
    given = run_probe(
        "fit",
        **rows,
        task="regression",
        label_col="latitude",
        alpha=10.0,
        layer=2,
        out=tmp_path / "head",
        json=True,
    )
    assert given.exit_code == 0, given.output
    summary = json.loads(given.output[given.output.index("{") :])
    assert summary["penalty"] == "alpha" and summary["C"] == 10.0
    assert summary["C_search"]["method"] == "given"
    wrong = run_probe("sweep", **rows, task="regression", label_col="latitude", C=1.0)
    assert wrong.exit_code == 1 and "takes --alpha" in wrong.output
    other = run_probe("sweep", **rows, label_col="country", alpha=1.0)
    assert other.exit_code == 1 and "--alpha is the ridge penalty" in other.output
