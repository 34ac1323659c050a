"""Multi-layer heads ship: a concat and a mix head round-trip through save, load, probe predict
and ONNX export, and a sweep whose selected row is multi-layer saves that head."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import VARIED_TEXTS
from probe.cli.main import main
from probe.data.readers import read_dataset
from probe.features.layers import parse_row_spec
from probe.heads.persistence import load_head_parts, save_head
from probe.heads.rows import prepare
from probe.research.sweep import fit_one, head_meta, run_sweep
from probe.serve.predict import load_predictor


def _fitted(model_dir, data_path, spec_text, pool="mean"):
    data = prepare(str(model_dir), data=str(data_path), max_length=48)
    spec = parse_row_spec(spec_text).resolved(data.layer, data.layers)
    return data, fit_one(data, spec, pool)


@pytest.mark.parametrize("spec_text", ["1,3", "mix", "3+0"])
def test_multi_layer_head_predicts_what_it_scored_at_fit_time(
    tiny_gpt2_dir, sms_labelled, tmp_path, spec_text
):
    data, result = _fitted(tiny_gpt2_dir, sms_labelled, spec_text)
    path = save_head(
        tmp_path / "head.json", result.classifier, head_meta(data, result), result.combiner
    )
    classifier, record, combiner = load_head_parts(path)
    assert record["combine"] == result.combiner.kind and record["layer"] == result.layer
    assert tuple(record["layers"]) == result.combiner.layers == combiner.layers
    np.testing.assert_array_equal(classifier.coef_, result.classifier.coef_)

    # The fit-time test features, through the saved head, give the fit-time probabilities.
    test = data.test
    stack = np.stack([test.features(layer, "mean") for layer in combiner.layers])
    fitted = result.classifier.predict_proba(result.combiner.apply(stack))
    np.testing.assert_allclose(
        classifier.predict_proba(combiner.apply(stack)), fitted, rtol=0, atol=1e-6
    )

    # New texts through the backbone: the same probabilities as the cached features give,
    # to the fp16 rounding of the cache (batch shapes differ: tolerance, not equality).
    predictor = load_predictor(str(path))
    assert predictor.layers == list(combiner.layers)
    ((_, indices),) = test.parts
    texts = [read_dataset(str(sms_labelled)).texts[i] for i in indices]
    served = np.array(
        [
            [row["probabilities"][n] for n in predictor.label_names]
            for row in predictor.predict(texts)
        ]
    )
    np.testing.assert_allclose(served, fitted, rtol=0, atol=2e-3)
    rows = predictor.predict(VARIED_TEXTS)
    assert [row["label"] for row in rows] and all(
        abs(sum(row["probabilities"].values()) - 1) < 1e-5 for row in rows
    )


def test_a_mix_head_refuses_a_weights_file_without_its_mix(tiny_gpt2_dir, sms_labelled, tmp_path):
    from safetensors.numpy import load, save

    from probe.errors import ProbeError

    data, result = _fitted(tiny_gpt2_dir, sms_labelled, "mix")
    path = save_head(
        tmp_path / "head.json", result.classifier, head_meta(data, result), result.combiner
    )
    weights_path = path.with_suffix(".safetensors")
    tensors = load(weights_path.read_bytes())
    del tensors["mix_weights"]
    weights_path.write_bytes(save(tensors))
    with pytest.raises(ProbeError, match="sha256 differs"):  # an edited file is refused first
        load_head_parts(path)


@pytest.mark.parametrize("spec_text", ["1,3", "mix"])
def test_multi_layer_head_exports_to_onnx_with_parity(
    tiny_gpt2_dir, sms_labelled, tmp_path, spec_text
):
    pytest.importorskip("onnxruntime")
    from probe.serve.export import META_FILE, OnnxPredictor, export_head

    data, result = _fitted(tiny_gpt2_dir, sms_labelled, spec_text, pool="last")
    path = save_head(
        tmp_path / "head.json", result.classifier, head_meta(data, result), result.combiner
    )
    folder = export_head(path, tmp_path / "export")
    record = json.loads((folder / META_FILE).read_text())
    assert record["layers"] == list(result.combiner.layers)
    texts = VARIED_TEXTS * 2
    torch_rows = load_predictor(str(path)).predict(texts)
    onnx_rows = OnnxPredictor.load(folder).predict(texts)
    names = list(torch_rows[0]["probabilities"])
    expected = np.array([[r["probabilities"][n] for n in names] for r in torch_rows])
    got = np.array([[r["probabilities"][n] for n in names] for r in onnx_rows])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in torch_rows]


def test_a_sweep_whose_best_row_is_a_concat_saves_that_head(research_data, tmp_path):
    result = run_sweep(research_data, layers=[0], pools=["mean"], n_jobs=1, multi=["2,3"])
    assert result["best"]["layer"] == "2+3"  # layer 0 is noise; layers 2 and 3 carry the class
    best = result["_best_result"]
    path = save_head(
        tmp_path / "head.json", best.classifier, head_meta(research_data, best), best.combiner
    )
    _, record, combiner = load_head_parts(path)
    assert record["combine"] == "concat" and combiner.layers == (2, 3)


def test_sweep_cli_saves_a_selected_multi_layer_head(tiny_gpt2_dir, sms_labelled, tmp_path):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--model",
        str(tiny_gpt2_dir),
        "--data",
        str(sms_labelled),
        "--max-length",
        "48",
        "--layers",
        "0",
        "--pools",
        "last",
        "--concat",
        "1,3",
        "--mix",
        "--out-dir",
        str(out),
        "--json",
        "-q",
    ]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert (out / "head.json").is_file() and summary["head"] == str(out / "head.json")
    _, record, combiner = load_head_parts(out / "head.json")
    assert record["layer"] == summary["best"]["layer"]
    assert (combiner is None) == isinstance(summary["best"]["layer"], int)
