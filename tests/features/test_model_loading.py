"""Loading what users bring: attention fallback, encoder-decoders, shared layers, broken
folders, remote code, prompts and chat templates. Real models, real CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from model_zoo import build_model, train_tokenizer

from conftest import VARIED_TEXTS
from probe.cli.main import main
from probe.data.readers import TextDataset
from probe.errors import ProbeError
from probe.features.extract import extract
from probe.features.models.loading import load_backbone
from probe.features.store.caches import open_cache
from probe.features.store.rowstore import Setting

TEXTS = VARIED_TEXTS[:6]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A few families, built once: {model_type: folder}."""
    root = tmp_path_factory.mktemp("zoo")
    tokenizers = {enc: train_tokenizer(VARIED_TEXTS * 3, root / f"tok{enc}", enc) for enc in (0, 1)}
    kinds = {"bloom": 0, "llama": 0, "albert": 1, "t5": 1}
    return {kind: build_model(kind, root / kind, tokenizers[enc]) for kind, enc in kinds.items()}


def run_cli(args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def sms_csv(tmp_path):
    path = tmp_path / "texts.csv"
    path.write_text("text,label\n" + "".join(f'"{t}",{i % 2}\n' for i, t in enumerate(TEXTS[:5])))
    return path


def test_attention_falls_back_to_eager_and_says_so(zoo, said, tmp_path):
    fallback = "attention: eager (its architecture has no SDPA attention)"
    assert fallback in load_backbone(str(zoo["bloom"]), attn="auto").notes
    assert "attention: sdpa" in load_backbone(str(zoo["llama"]), attn="auto").notes
    assert said == []  # loading only notes it; extraction says it
    extract(str(zoo["bloom"]), TextDataset(TEXTS, None, "t"), "1", out=tmp_path / "b.h5")
    assert fallback in said


def test_forced_sdpa_on_a_model_without_it_is_one_line(zoo, sms_csv):
    result = run_cli(["extract", "--model", zoo["bloom"], "--data", sms_csv, "--attn", "sdpa"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_eager_and_sdpa_give_the_same_rows(zoo, tmp_path):
    data = TextDataset(TEXTS, None, "t")
    paths = [
        extract(str(zoo["llama"]), data, "all", attn=attn, out=tmp_path / f"{attn}.h5", force=True)
        for attn in ("sdpa", "eager")
    ]
    a, b = (open_cache(p) for p in paths)
    for layer in a.layers:
        np.testing.assert_allclose(a.features(layer, "mean"), b.features(layer, "mean"), 2e-3, 2e-3)


def test_shared_layers_and_encoder_decoders_are_announced(zoo):
    albert = load_backbone(str(zoo["albert"]))
    assert albert.num_layers == 2 and not albert.causal
    assert any("output_hidden_states" in line for line in albert.notes)
    t5 = load_backbone(str(zoo["t5"]))
    assert any("encoder of an encoder-decoder" in line for line in t5.notes)
    assert t5.num_layers == 2 and not t5.causal
    assert load_backbone(str(zoo["llama"])).causal


def test_truncated_safetensors_is_one_line_naming_the_file(zoo, tmp_path, sms_csv):
    folder = tmp_path / "broken"
    shutil.copytree(zoo["llama"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_cli(["extract", "--model", folder, "--data", sms_csv])
    assert result.exit_code == 1, result.output
    assert "model.safetensors" in result.output and "truncated" in result.output
    assert "Traceback" not in result.output
    weights.write_bytes(b"\x05")  # not even a header
    result = run_cli(["extract", "--model", folder, "--data", sms_csv])
    assert result.exit_code == 1 and "model.safetensors" in result.output


def test_config_that_is_not_json_says_so(zoo, tmp_path, sms_csv):
    folder = tmp_path / "badconfig"
    shutil.copytree(zoo["llama"], folder)
    (folder / "config.json").write_text('{"model_type": "llama", ')
    result = run_cli(["extract", "--model", folder, "--data", sms_csv])
    assert result.exit_code == 1
    assert "config.json is not JSON" in result.output


@pytest.mark.parametrize(
    "edit, fragment",
    [
        ({"num_hidden_layers": "two"}, "num_hidden_layers"),  # huggingface_hub's validation
        ({"hidden_size": 48}, "ignore_mismatched_sizes"),  # weights of another shape
    ],
)
def test_a_config_that_does_not_fit_is_one_line(zoo, tmp_path, sms_csv, edit, fragment):
    folder = tmp_path / "edited"
    shutil.copytree(zoo["llama"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **edit}))
    result = run_cli(["extract", "--model", folder, "--data", sms_csv])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "cannot load model" in result.output and fragment in result.output


def test_remote_code_needs_the_flag(zoo, tmp_path, sms_csv):
    folder = tmp_path / "custom"
    shutil.copytree(zoo["llama"], folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="probe_custom_lm", auto_map={"AutoConfig": "configuration_custom.CustomConfig"}
    )
    (folder / "config.json").write_text(json.dumps(config))
    result = run_cli(["extract", "--model", folder, "--data", sms_csv])
    assert result.exit_code == 1
    assert "--trust-remote-code" in result.output and "Traceback" not in result.output


def test_settings_record_remote_code_prompt_and_template_only_when_used():
    plain = Setting("f", "t", 64, "right", "float32")
    assert "prompt" not in plain.as_dict() and "trust_remote_code" not in plain.as_dict()
    keys = {
        plain.key,
        Setting("f", "t", 64, "right", "float32", prompt="A {text}").key,
        Setting("f", "t", 64, "right", "float32", chat_template=True).key,
        Setting("f", "t", 64, "right", "float32", trust_remote_code=True).key,
    }
    assert len(keys) == 4
    reread = Setting(**{**plain.as_dict(), "pools": tuple(plain.pools)})
    assert reread.key == plain.key


def test_prompt_wraps_each_text_and_is_another_row(zoo, tmp_path):
    model = str(zoo["llama"])
    prompt = "Review: {text}\\nSentiment:"
    prompted = open_cache(
        extract(model, TextDataset(TEXTS, None, "t"), "all", prompt=prompt, out=tmp_path / "p.h5")
    )
    wrapped = [f"Review: {t}\nSentiment:" for t in TEXTS]
    by_hand = open_cache(
        extract(model, TextDataset(wrapped, None, "w"), "all", out=tmp_path / "w.h5")
    )
    plain = open_cache(extract(model, TextDataset(TEXTS, None, "t"), "all", out=tmp_path / "n.h5"))
    assert prompted.meta["computed_rows"] == len(TEXTS)  # not answered by the plain rows
    assert plain.meta["computed_rows"] == len(TEXTS)
    for layer in prompted.layers:
        np.testing.assert_allclose(
            prompted.features(layer, "last"), by_hand.features(layer, "last"), 2e-3, 2e-3
        )
    assert not np.allclose(prompted.features(2, "last"), plain.features(2, "last"), atol=1e-2)


def test_chat_template_makes_the_text_the_user_turn(zoo, tmp_path):
    from transformers import AutoTokenizer

    from probe.features.forward import encode_texts

    backbone = load_backbone(str(zoo["llama"]))
    ids = encode_texts(backbone, ["hello there"], 64, chat_template=True).token_ids[0]
    tokenizer = AutoTokenizer.from_pretrained(zoo["llama"])
    expected = tokenizer("<s>user: hello there</s><s>assistant:", add_special_tokens=False)
    assert ids == expected["input_ids"]
    assert ids.count(1) == 2  # the template's <s>, not one more from the tokenizer


def test_prompt_without_placeholder_and_template_without_one_are_one_line(tiny_gpt2_dir, sms_csv):
    result = run_cli(
        ["extract", "--model", tiny_gpt2_dir, "--data", sms_csv, "--prompt", "no placeholder"]
    )
    assert result.exit_code == 1 and "{text}" in result.output
    result = run_cli(["extract", "--model", tiny_gpt2_dir, "--data", sms_csv, "--chat-template"])
    assert result.exit_code == 1 and "no chat template" in result.output
    with pytest.raises(ProbeError):
        extract(str(tiny_gpt2_dir), TextDataset(TEXTS, None, "t"), "all", prompt="x")


def test_a_head_fitted_on_prompted_rows_predicts_through_the_prompt(zoo, tmp_path):
    from probe.serve.predict import load_predictor

    texts = [f"{t} {i}" for i, t in enumerate(VARIED_TEXTS * 2)]
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f'"{t}",{i % 2}\n' for i, t in enumerate(texts)))
    prompt = "Review: {text}\\nSentiment:"
    result = run_cli(["extract", "--model", zoo["llama"], "--data", data, "--prompt", prompt, "-q"])
    assert result.exit_code == 0, result.output
    cache_path = result.stdout.strip().splitlines()[-1]
    head = tmp_path / "head.json"
    result = run_cli(
        [
            "fit",
            "--train",
            cache_path,
            "--layer",
            "2",
            "--pool",
            "last",
            "--C",
            "1",
            "--out",
            head,
            "-q",
        ]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(head.read_text())["prompt"] == "Review: {text}\nSentiment:"
    predictor = load_predictor(str(head), model=str(zoo["llama"]))
    cache = open_cache(cache_path)
    np.testing.assert_allclose(
        predictor.features(texts[:3]), cache.features(2, "last")[:3], 2e-3, 2e-3
    )


def test_compile_runs_eager_on_a_model_without_blocks_and_says_so(zoo, said):
    from probe.features.models.fusion import compiled_blocks

    backbone = load_backbone(str(zoo["albert"]))
    with compiled_blocks(backbone.model, True) as outcome:
        assert not outcome and not outcome.worked
    assert said and "no list of blocks" in said[0] and "no list of blocks" in outcome.describe()
