"""``--site``: each part of a block equals an independent forward hook, one text at a time.

The tiny GPT-2 and LLaMA of the model matrix are extracted at ``attn``, ``mlp`` and
``resid_mid`` (padded, length-sorted batches, fp16 storage) and compared with hooks put by
name on the modules transformers itself builds (eager attention, fp32, no padding):
``attn``/``self_attn`` output, ``mlp`` output, and the input of the norm before the MLP
(``ln_2``/``post_attention_layernorm``: the residual stream between the sublayers). Every
layer 1..L and both pools agree within ``rtol = atol = 2e-3`` (fp16 rounding ~5e-4).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_zoo import build_model, train_tokenizer

from conftest import VARIED_TEXTS
from probe.data.readers import TextDataset
from probe.errors import ProbeError
from probe.features.extract import extract
from probe.features.store.caches import open_cache
from probe.features.store.rowstore import Setting

TOLERANCE = 2e-3
MAX_LENGTH = 40
TEXTS = VARIED_TEXTS[:8]
PARTS = {  # family -> (blocks, {site: (module name in a block, hook kind)})
    "gpt2": ("h", {"attn": ("attn", "out"), "mlp": ("mlp", "out"), "resid_mid": ("ln_2", "in")}),
    "llama": (
        "layers",
        {
            "attn": ("self_attn", "out"),
            "mlp": ("mlp", "out"),
            "resid_mid": ("post_attention_layernorm", "in"),
        },
    ),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("sites")
    tokenizer = train_tokenizer(VARIED_TEXTS * 3, root / "tokenizer", False)
    return {family: build_model(family, root / family, tokenizer) for family in PARTS}


def reference(folder, family: str, site: str) -> tuple[np.ndarray, np.ndarray]:
    """(last, mean) float32 [L, N, D] of ``site`` from hooks on transformers' own modules."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    blocks_name, parts = PARTS[family]
    name, kind = parts[site]
    blocks = getattr(model, blocks_name)
    last, mean = [], []
    for text in TEXTS:
        ids = tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        seen = []

        def hook(module, args, output, kind=kind, seen=seen):
            value = args[0] if kind == "in" else output
            seen.append(value[0] if isinstance(value, tuple) else value)

        handles = [getattr(block, name).register_forward_hook(hook) for block in blocks]
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids]))
        for handle in handles:
            handle.remove()
        states = torch.stack([s[0].float() for s in seen])  # (L, T, D)
        last.append(states[:, -1])
        mean.append(states.mean(dim=1))
    return torch.stack(last, 1).numpy(), torch.stack(mean, 1).numpy()


@pytest.mark.parametrize("family", sorted(PARTS))
@pytest.mark.parametrize("site", ["attn", "mlp", "resid_mid"])
def test_site_equals_an_independent_hook(models, family, site, tmp_path):
    dataset = TextDataset(TEXTS, labels=None, source="sites")
    out = tmp_path / "view.h5"
    path = extract(
        str(models[family]),
        dataset,
        "all",
        max_length=MAX_LENGTH,
        token_budget=60,
        site=site,
        out=out,
    )
    cache = open_cache(path)
    assert cache.layers == [1, 2]  # layer 0 has no sublayers
    assert cache.meta["site"] == site
    ref_last, ref_mean = reference(models[family], family, site)
    for index, layer in enumerate(cache.layers):
        for pool, ref in (("last", ref_last), ("mean", ref_mean)):
            np.testing.assert_allclose(
                cache.features(layer, pool),
                ref[index],
                TOLERANCE,
                TOLERANCE,
                err_msg=f"{family} {site} layer {layer} {pool}",
            )


def test_a_site_stops_at_the_deepest_block_it_needs(models, tmp_path):
    """Only block 1's attention runs for ``--site attn --layers 1``: block 2 never does."""
    from transformers import AutoModel

    from probe.features.forward import hidden_states_by_layer
    from probe.features.models.sites import model_sites

    model = AutoModel.from_pretrained(models["gpt2"]).eval()
    model_sites(model)  # the one toy pass that finds the sites runs block 1 whole
    ran = []
    model.h[1].register_forward_pre_hook(lambda m, a: ran.append(2))
    model.h[0].mlp.register_forward_pre_hook(lambda m, a: ran.append("mlp1"))
    ids = torch.tensor([[5, 6, 7]])
    with torch.inference_mode():
        states = hidden_states_by_layer(model, ids, torch.ones_like(ids), [1], "attn")
    assert ran == [] and states[1].shape == (1, 3, model.config.hidden_size)


def test_layer_zero_and_unknown_sites_are_one_line(models):
    dataset = TextDataset(TEXTS[:2], labels=None, source="sites")
    with pytest.raises(ProbeError, match="layer 0") as error:
        extract(str(models["gpt2"]), dataset, "0,1", max_length=MAX_LENGTH, site="attn")
    assert "\n" not in str(error.value)
    with pytest.raises(ProbeError, match="unknown site"):
        extract(str(models["gpt2"]), dataset, "1", site="ffn")


def test_a_family_without_the_site_is_one_line(tmp_path):
    """Post-norm BERT adds no sublayer output to a residual stream: only ``block``."""
    tokenizer = train_tokenizer(VARIED_TEXTS * 3, tmp_path / "tokenizer", True)
    folder = build_model("bert", tmp_path / "bert", tokenizer)
    dataset = TextDataset(TEXTS[:2], labels=None, source="sites")
    with pytest.raises(ProbeError) as error:
        extract(str(folder), dataset, "1", max_length=MAX_LENGTH, site="attn")
    message = str(error.value)
    assert "\n" not in message and "bert" in message and "sites: block" in message


def test_parallel_blocks_have_no_resid_mid(tmp_path):
    """GPT-J's attention and MLP both read the block input: no stream between them."""
    from transformers import AutoModel

    from probe.features.models.sites import model_sites

    tokenizer = train_tokenizer(VARIED_TEXTS * 3, tmp_path / "tokenizer", False)
    folder = build_model("gptj", tmp_path / "gptj", tokenizer)
    assert model_sites(AutoModel.from_pretrained(folder)) == ("block", "attn", "mlp")


def test_the_default_site_leaves_the_row_key_alone():
    """Keys from before sites existed (computed on the main branch) still hold."""
    setting = Setting("fp", "tok", 128, "right", "float32")
    assert "site" not in setting.as_dict()
    assert setting.key == "bc91883cba822a494d35ab8803d68863"
    assert Setting("fp", "tok", 128, "right", "float32", site="attn").key != setting.key


def test_a_head_records_its_site_and_predict_reads_it(models, tmp_path):
    """fit on an ``--site mlp --position max`` view; predict's features equal the cache's."""
    import json

    from click.testing import CliRunner

    from probe.cli.main import main
    from probe.serve.predict import load_predictor

    labels = ["a" if i % 2 else "b" for i in range(len(TEXTS))]
    dataset = TextDataset(TEXTS, labels=labels, source="sites")
    view = extract(
        str(models["gpt2"]), dataset, "all", site="mlp", positions=["max"], out=tmp_path / "v.h5"
    )
    head = tmp_path / "head.json"
    arguments = ["fit", "--train", str(view), "--layer", "2", "--pool", "max", "--out", str(head)]
    result = CliRunner().invoke(main, [*arguments, "-q", "--test-size", "0.25"])
    assert result.exit_code == 0, result.output
    meta = json.loads(head.read_text())
    assert (meta["site"], meta["pool"]) == ("mlp", "max")
    features = load_predictor(str(head)).features(TEXTS)
    np.testing.assert_array_equal(features, open_cache(view).features(2, "max"))


def test_fit_and_sweep_extract_at_the_site_and_position_they_are_given(models, tmp_path):
    """``probe fit/sweep --site attn --position first`` extract the data file at that site
    (the head records it, predict reads it), a sweep sweeps the position, and a cache of
    another site is refused in one line."""
    import json

    import pandas as pd
    from click.testing import CliRunner

    from probe.cli.main import main
    from probe.serve.predict import load_predictor

    texts = [f"{text} {i}" for i, text in enumerate(VARIED_TEXTS + VARIED_TEXTS[:2])]
    data = tmp_path / "d.csv"
    pd.DataFrame({"text": texts, "label": ["a", "b"] * 6}).to_csv(data, index=False)
    model = str(models["gpt2"])
    common = ["--model", model, "--data", str(data), "--test-size", "0.25", "-q"]
    head = tmp_path / "head.json"
    fit = ["fit", *common, "--site", "attn", "--layer", "2", "--pool", "first", "--out", str(head)]
    result = CliRunner().invoke(main, fit)
    assert result.exit_code == 0, result.output
    meta = json.loads(head.read_text())
    assert (meta["site"], meta["pool"]) == ("attn", "first")
    labelled = TextDataset(texts, ["a", "b"] * 6, source="d")
    view = extract(model, labelled, "all", site="attn", positions=["first"])
    features = load_predictor(str(head)).features(texts)
    np.testing.assert_allclose(features, open_cache(view).features(2, "first"), atol=2e-3)

    out = tmp_path / "sweep"
    sweep = ["sweep", *common, "--site", "attn", "--position", "first", "--out-dir", str(out)]
    result = CliRunner().invoke(main, [*sweep, "--layers", "1,2"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "sweep.json").read_text())
    assert {row["pool"] for row in report["entries"]} == {"last", "mean", "first"}
    assert report["settings"]["site"] == "attn"

    block = extract(model, labelled, "all")
    refused = ["fit", "--train", str(block), "--site", "mlp", "--layer", "1"]
    result = CliRunner().invoke(main, refused)
    assert result.exit_code != 0
    assert "the cache holds site 'block', not --site mlp" in result.output
