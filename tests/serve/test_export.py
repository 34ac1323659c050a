"""probe export: the ONNX folder gives probe predict's labels and probabilities (within
1e-3), loads with no torch at all, and its tokenizer loads with transformers too."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from click.testing import CliRunner  # noqa: E402

from conftest import VARIED_TEXTS, probe_env  # noqa: E402
from probe.cli.main import main  # noqa: E402
from probe.data.readers import read_dataset  # noqa: E402
from probe.errors import ProbeError  # noqa: E402
from probe.heads.persistence import save_head  # noqa: E402
from probe.heads.rows import prepare  # noqa: E402
from probe.research.sweep import fit_one, head_meta  # noqa: E402
from probe.serve.export import META_FILE, OnnxPredictor, export_head  # noqa: E402
from probe.serve.predict import load_predictor  # noqa: E402


@pytest.fixture(scope="module")
def sms_texts():
    from conftest import SMS_CSV

    return read_dataset(str(SMS_CSV)).texts[:60] + VARIED_TEXTS


def _head(model_dir, data_path, layer, pool, path, max_length=48):
    data = prepare(str(model_dir), data=str(data_path), max_length=max_length)
    result = fit_one(data, layer, pool)
    return save_head(path, result.classifier, head_meta(data, result))


def _assert_same_predictions(torch_rows, onnx_rows):
    assert [r["text"] for r in onnx_rows] == [r["text"] for r in torch_rows]
    names = list(torch_rows[0]["probabilities"])
    expected = np.array([[r["probabilities"][n] for n in names] for r in torch_rows])
    got = np.array([[r["probabilities"][n] for n in names] for r in onnx_rows])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    assert [r["label"] for r in onnx_rows] == [r["label"] for r in torch_rows]


# Layer 0 (embeddings only), a middle block (final norm left out) and the top (final norm in).
@pytest.mark.parametrize(("layer", "pool"), [(0, "mean"), (2, "last"), (3, "mean"), (3, "last")])
def test_export_matches_probe_predict_on_tiny_gpt2(
    tiny_gpt2_dir, sms_labelled, sms_texts, tmp_path, layer, pool
):
    head = _head(tiny_gpt2_dir, sms_labelled, layer, pool, tmp_path / "head.json")
    folder = export_head(head, tmp_path / "export")
    record = json.loads((folder / META_FILE).read_text())
    assert record["layer"] == layer and record["pool"] == pool
    assert record["labels"] == ["ham", "spam"]
    assert record["inputs"] == ["input_ids", "attention_mask"]
    texts = sms_texts[:30] + VARIED_TEXTS  # batches of mixed lengths, padded on the right
    _assert_same_predictions(
        load_predictor(str(head)).predict(texts), OnnxPredictor.load(folder).predict(texts)
    )


def test_export_of_an_encoder_with_its_own_tokenizer(tiny_bert_dir, sms_labelled, tmp_path):
    head = _head(tiny_bert_dir, sms_labelled, 1, "mean", tmp_path / "head.json", max_length=24)
    folder = export_head(head, tmp_path / "export")
    texts = VARIED_TEXTS  # one of them is longer than max_length: truncation must agree
    _assert_same_predictions(
        load_predictor(str(head)).predict(texts), OnnxPredictor.load(folder).predict(texts)
    )


NO_TORCH_SCRIPT = r"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
sys.modules["transformers"] = None
import json
from pathlib import Path
import numpy as np
import onnxruntime
from tokenizers import Tokenizer

folder = Path(sys.argv[1])
meta = json.loads((folder / "probe-export.json").read_text())
tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
tokenizer.enable_truncation(meta["max_length"])
tokenizer.enable_padding(pad_id=meta["pad_id"])  # right padding
texts = json.loads(sys.argv[2])
encoded = tokenizer.encode_batch(texts)
feed = {
    "input_ids": np.array([e.ids for e in encoded], np.int64),
    "attention_mask": np.array([e.attention_mask for e in encoded], np.int64),
}
session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
logits, probabilities = session.run(meta["outputs"], feed)
print(json.dumps({"labels": [meta["labels"][i] for i in probabilities.argmax(1)],
                  "probabilities": probabilities.tolist()}))
"""


def test_export_runs_without_torch(tiny_gpt2_dir, sms_labelled, sms_texts, tmp_path):
    head = _head(tiny_gpt2_dir, sms_labelled, 2, "last", tmp_path / "head.json")
    folder = export_head(head, tmp_path / "export")
    texts = sms_texts[:12]
    run = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, str(folder), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout)
    expected = load_predictor(str(head)).predict(texts)
    assert got["labels"] == [row["label"] for row in expected]
    expected_p = [[row["probabilities"][n] for n in ("ham", "spam")] for row in expected]
    np.testing.assert_allclose(got["probabilities"], expected_p, rtol=0, atol=1e-3)

    # probe's own CLI serves the export without torch too
    cli = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from probe.cli.main import main\n"
        "main(['predict', '--json', '--onnx', sys.argv[1], *sys.argv[2:]])"
    )
    run = subprocess.run(
        [sys.executable, "-c", cli, str(folder), *texts[:3]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert [json.loads(line)["label"] for line in run.stdout.splitlines()] == got["labels"][:3]


def test_exported_tokenizer_loads_with_transformers(tiny_gpt2_dir, sms_labelled, tmp_path):
    from transformers import AutoTokenizer

    from probe.features.models.tokenize import gpt2_encoding

    head = _head(tiny_gpt2_dir, sms_labelled, 1, "last", tmp_path / "head.json")
    folder = export_head(head, tmp_path / "export", check=False)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for text in VARIED_TEXTS:
        assert tokenizer(text)["input_ids"] == gpt2_encoding().encode_ordinary(text)


def test_cli_export_then_predict_onnx(tiny_gpt2_dir, sms_labelled, tmp_path, isolated_cache):
    head = _head(tiny_gpt2_dir, sms_labelled, 2, "mean", tmp_path / "head.json")
    runner = CliRunner()
    env = probe_env(isolated_cache)
    exported = runner.invoke(main, ["export", str(head), "--out", str(tmp_path / "x")], env=env)
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.strip().splitlines()[-1] == str(tmp_path / "x")
    texts = ["WINNER!! claim your free prize now", "see you at lunch"]
    args = ["predict", "--json"]
    by_onnx = runner.invoke(main, [*args, "--onnx", str(tmp_path / "x"), *texts], env=env)
    by_torch = runner.invoke(main, [*args, "--head", str(head), *texts], env=env)
    assert by_onnx.exit_code == 0 and by_torch.exit_code == 0, by_onnx.output + by_torch.output
    onnx_rows = [json.loads(line) for line in by_onnx.stdout.splitlines()]
    torch_rows = [json.loads(line) for line in by_torch.stdout.splitlines()]
    _assert_same_predictions(torch_rows, onnx_rows)
    for name, garbage in [("tokenizer.json", "{not json"), ("model.onnx", "not a protobuf")]:
        damaged = tmp_path / f"damaged-{name}"
        shutil.copytree(tmp_path / "x", damaged)
        (damaged / name).write_text(garbage)  # tokenizers: bare Exception; onnxruntime: its own
        broken = runner.invoke(main, [*args, "--onnx", str(damaged), texts[0]], env=env)
        assert broken.exit_code == 1 and "Traceback" not in broken.output, broken.output
        assert broken.stderr.startswith("Error: cannot load the export in")
        assert damaged.name in broken.stderr and len(broken.stderr.splitlines()) == 1


def test_bad_inputs_are_one_line_errors(tiny_gpt2_dir, sms_labelled, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["predict", "--onnx", str(tmp_path), "hello"])
    assert missing.exit_code == 1 and "not a probe export" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    head = _head(tiny_gpt2_dir, sms_labelled, 1, "last", tmp_path / "head.json")
    with pytest.raises(ProbeError, match="not a probe export"):
        export_head(head, occupied)
    assert (occupied / "keep.txt").read_text() == "mine"  # never loses data
