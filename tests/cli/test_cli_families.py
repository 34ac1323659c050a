"""``--probe`` through the commands: a sweep compares probes, fit saves any family, predict
and export serve it; a bad spec is one line. Known answers are in tests/heads/test_families."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_probe


def test_a_sweep_compares_probes_side_by_side(sms_rows, tmp_path):
    out = tmp_path / "sweep"
    done = run_probe(
        "sweep", **sms_rows, layers="1,3", pools="mean", probe="logistic,mass-mean,sparse:1,2",
        out_dir=out, control=True, json=True,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    report = json.loads((out / "sweep.json").read_text())
    found = {(row["layer"], row["probe"]) for row in report["entries"]}
    families = ["logistic", "mass-mean", "sparse:1", "sparse:2"]
    assert found == {(layer, probe) for layer in (1, 3) for probe in families}
    for row in report["entries"]:
        assert row["memorisation_capacity"] is not None  # the control refits the row's family
        assert row["test_accuracy"] is not None and row.get("error") is None
        if row["probe"].startswith("sparse:"):
            assert len(row["neurons"]) == int(row["probe"][-1])
    assert report["lowest_loss"]["probe"] in families
    table = (out / "sweep.md").read_text()
    assert "| probe |" in table and "mass-mean" in table
    assert "accuracy against K" in table  # the sparse curve at the selected layer and pool
    head = json.loads((out / "head.json").read_text())
    assert head["probe"] == report["best"]["probe"]
    page = run_probe("report", out, out=tmp_path / "report.html")
    assert page.exit_code == 0, page.output
    assert "mass-mean" in (tmp_path / "report.html").read_text()


def test_a_default_sweep_has_no_probe_key(sms_rows, tmp_path):
    done = run_probe("sweep", **sms_rows, layers="3", pools="mean", out_dir=tmp_path / "s")
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert all("probe" not in row for row in report["entries"])
    assert "probe" not in json.loads((tmp_path / "s" / "head.json").read_text())


def test_an_mlp_head_fits_saves_predicts_and_exports(sms_rows, tmp_path):
    pytest.importorskip("onnxruntime")
    from probe.serve.export import OnnxPredictor, export_head
    from probe.serve.predict import load_predictor

    path = tmp_path / "mlp.json"
    done = run_probe("fit", **sms_rows, layer="3", pool="mean", probe="mlp", out=path)
    assert done.exit_code == 0, done.output
    assert "probe mlp" in done.output
    record = json.loads(path.read_text())
    assert record["probe"] == "mlp" and record["C"] is None
    predicted = run_probe("predict", "WINNER! call now", "see you soon", head=path, json=True)
    assert predicted.exit_code == 0, predicted.output
    texts = ["WINNER! call now to claim", "see you at home", "free prize"]
    rows = load_predictor(str(path)).predict(texts)
    exported = OnnxPredictor.load(export_head(path, tmp_path / "onnx")).predict(texts)
    for ours, theirs in zip(rows, exported, strict=True):
        assert ours["label"] == theirs["label"]
        for name, p in ours["probabilities"].items():
            assert abs(p - theirs["probabilities"][name]) < 1e-3


@pytest.mark.parametrize("probe", ["mass-mean-iid", "sparse:4"])
def test_linear_families_save_as_linear_heads(sms_rows, tmp_path, probe):
    path = tmp_path / "head.json"
    done = run_probe("fit", **sms_rows, layer="3", pool="mean", probe=probe, out=path, json=True)
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output[done.output.index("{") :])
    assert summary["probe"] == probe
    if probe.startswith("sparse"):
        assert len(summary["neurons"]) == 4
    predicted = run_probe("predict", "call now", head=path)
    assert predicted.exit_code == 0, predicted.output


@pytest.mark.parametrize(
    ("command", "probe", "message"),
    [
        ("sweep", "bogus", "unknown --probe 'bogus'"),
        ("fit", "sparse:0", "sparse takes a neuron count"),
        ("sweep", "logistic,sparse:x", "sparse takes a neuron count"),
    ],
)
def test_a_bad_probe_is_one_line(sms_rows, tmp_path, command, probe, message):
    done = (
        run_probe(command, **sms_rows, probe=probe, out_dir=tmp_path / "o")
        if command == ("sweep")
        else run_probe(command, **sms_rows, probe=probe, out=tmp_path / "h.json")
    )
    assert done.exit_code == 1
    assert message in done.output and "Traceback" not in done.output
    assert len(done.output.strip().splitlines()) == 1
