"""Any model a user brings: ``probe extract`` on tiny random models of 31 families.

For each family a random two-layer model is saved with ``save_pretrained`` and a tokenizer,
extracted with ``--layers all`` in padded, length-sorted batches, and compared with an
independent computation: the same folder loaded by ``transformers`` itself with eager
attention (the encoder alone for encoder-decoders), one text at a time, no padding,
``output_hidden_states``. Every stored layer and both pools must agree within
``rtol = atol = 2e-3`` (the store keeps fp16: ~5e-4 relative rounding, plus float32 sums in
another order). ``probe fit`` then runs on the cache.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from model_zoo import DECODERS, ENCODER_DECODERS, MODEL_TYPES, build_model, train_tokenizer

from conftest import SMS_CSV, VARIED_TEXTS
from probe.cli.main import main
from probe.data.readers import TextDataset
from probe.features.extract import extract
from probe.features.store.caches import open_cache

TOLERANCE = 2e-3
MAX_LENGTH = 40
TEXTS = VARIED_TEXTS + [
    line.split(",", 1)[1][:120] for line in SMS_CSV.read_text(encoding="utf-8").splitlines()[1:15]
]
LABELS = ["spam" if i % 2 else "ham" for i in range(len(TEXTS))]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    corpus = TEXTS + SMS_CSV.read_text(encoding="utf-8").splitlines()[:300]
    root = tmp_path_factory.mktemp("tokenizers")
    return {
        encoder: train_tokenizer(corpus, root / ("encoder" if encoder else "decoder"), encoder)
        for encoder in (False, True)
    }


def reference(folder, model_type: str, texts, max_length: int):
    """(last, mean) float32 [L+1, N, D] from transformers alone, one unpadded text at a time."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    if model_type in ENCODER_DECODERS:
        model = model.get_encoder()
    model.eval()
    last, mean = [], []
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        with torch.inference_mode():
            output = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
            embedded = model.get_input_embeddings()(torch.tensor([ids]))
        states = [*output.hidden_states[:-1], output.last_hidden_state]
        if model_type == "mamba":  # its hidden_states start after block 0, not at the input
            states = [embedded, *output.hidden_states[:-2], output.last_hidden_state]
        states = torch.stack([s[0].float() for s in states])  # (L+1, T, D)
        last.append(states[:, -1])
        mean.append(states.mean(dim=1))
    return torch.stack(last, 1).numpy(), torch.stack(mean, 1).numpy()


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_family_extracts_like_transformers(model_type, tokenizers, tmp_path):
    encoder = model_type not in DECODERS
    folder = build_model(model_type, tmp_path / model_type, tokenizers[encoder])
    dataset = TextDataset(TEXTS, labels=LABELS, source="matrix")
    path = extract(str(folder), dataset, "all", max_length=MAX_LENGTH, token_budget=160)
    cache = open_cache(path)
    ref_last, ref_mean = reference(folder, model_type, TEXTS, MAX_LENGTH)
    assert cache.layers == list(range(ref_last.shape[0]))
    assert cache.n == len(TEXTS)
    for layer in cache.layers:
        for pool, ref in (("last", ref_last), ("mean", ref_mean)):
            np.testing.assert_allclose(
                cache.features(layer, pool),
                ref[layer],
                TOLERANCE,
                TOLERANCE,
                err_msg=f"{model_type} layer {layer} pool {pool}",
            )
    assert not np.allclose(ref_mean[0], ref_mean[-1], atol=1e-2), "layers must differ"

    result = CliRunner().invoke(
        main,
        [
            "fit",
            "--train",
            str(path),
            "--layer",
            "-1",
            "--pool",
            "mean",
            "--C",
            "1",
            "--out",
            str(tmp_path / "head.json"),
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report and (tmp_path / "head.json").is_file()
