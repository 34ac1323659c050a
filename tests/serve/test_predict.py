"""probe predict's library: the same predictions as the cache gave at fit time, and only
for the model the head was fitted on."""

from __future__ import annotations

import numpy as np
import pytest

import probe.features.models.loading
from probe.data.readers import read_dataset
from probe.errors import ProbeError
from probe.heads.persistence import save_head
from probe.heads.rows import prepare
from probe.research.sweep import fit_one, head_meta
from probe.serve.predict import format_predictions, load_predictor, prediction_rows


@pytest.fixture
def sms_data(tiny_gpt2_dir, sms_labelled):
    return prepare(str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48)


def fitted_head(data, layer, pool, path):
    result = fit_one(data, layer, pool)
    return save_head(path, result.classifier, head_meta(data, result)), result


@pytest.mark.parametrize(("layer", "pool"), [(2, "last"), (3, "mean")])
def test_predictions_equal_those_from_the_cache(sms_data, sms_labelled, tmp_path, layer, pool):
    head, result = fitted_head(sms_data, layer, pool, tmp_path / "head.json")
    ((_, rows),) = sms_data.test.parts
    texts = [read_dataset(str(sms_labelled)).texts[i] for i in rows]
    cached = sms_data.test.features(layer, pool)
    expected_labels = result.classifier.predict(cached)
    expected_proba = result.classifier.predict_proba(cached)

    predictor = load_predictor(str(head))
    features = predictor.features(texts)
    # Other batch shapes take other GEMM kernels: floats agree to fp16 rounding of the
    # stored value (one ulp: 2^-10 relative), not bitwise; on some CPUs they are bitwise.
    np.testing.assert_allclose(features, cached, rtol=2**-10, atol=1e-6)
    rows_out = predictor.predict(texts)
    proba = np.array([[row["probabilities"][name] for name in ("ham", "spam")] for row in rows_out])
    np.testing.assert_allclose(proba, expected_proba, rtol=0, atol=1e-3)
    decided = np.abs(expected_proba[:, 1] - 0.5) > 1e-3  # labels of near-ties may flip
    predicted = np.array([row["label"] for row in rows_out])
    assert (predicted[decided] == expected_labels[decided]).all()
    one_by_one = [predictor.predict([text])[0]["label"] for text in texts[:5]]
    assert one_by_one == expected_labels[:5].tolist()


def test_only_blocks_up_to_the_head_layer_run(sms_data, tmp_path):
    from probe.features.models.architecture import transformer_blocks

    head, _ = fitted_head(sms_data, 1, "last", tmp_path / "head.json")
    predictor = load_predictor(str(head))
    ran = []
    for index, block in enumerate(transformer_blocks(predictor.backbone.model)):
        block.register_forward_hook(lambda *args, index=index: ran.append(index))
    predictor.predict(["WINNER!! claim your prize", "see you at lunch"])
    assert set(ran) == {0}


def test_a_head_is_refused_for_another_model_before_loading(sms_data, tmp_path, monkeypatch):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    head, _ = fitted_head(sms_data, 2, "last", tmp_path / "head.json")
    torch.manual_seed(1)
    other = tmp_path / "other-gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=32, n_head=2)).save_pretrained(other)
    monkeypatch.setattr(
        probe.features.models.loading, "load_backbone", lambda *a, **k: pytest.fail("loaded")
    )
    with pytest.raises(ProbeError, match="was fitted on model") as caught:
        load_predictor(str(head), model=str(other))
    assert "\n" not in str(caught.value)


def test_empty_texts_and_the_table(sms_data, tmp_path):
    head, _ = fitted_head(sms_data, 2, "mean", tmp_path / "head.json")
    predictor = load_predictor(str(head))
    with pytest.raises(ProbeError, match="1 texts are empty"):
        predictor.predict(["fine", "   "])
    rows = predictor.predict(["Free entry!\nText WIN now", "ok"])
    table = format_predictions(rows).splitlines()
    assert table[0].split() == ["label", "ham", "spam", "text"]
    assert table[1].endswith("Free entry! Text WIN now")
    assert all(abs(sum(row["probabilities"].values()) - 1) < 1e-12 for row in rows)


def test_many_classes_print_each_texts_most_probable():
    names = [f"country {k}" for k in range(20)]
    probabilities = np.random.default_rng(0).dirichlet(np.ones(20), size=2)
    rows = prediction_rows(["Lagos", "Paris"], probabilities, names)
    table = format_predictions(rows).splitlines()
    assert table[0].split()[:3] == ["label", "top", "3"]
    for line, row, p in zip(table[1:], rows, probabilities, strict=True):
        best = np.argsort(-p)[:3]
        assert line.startswith(names[best[0]])
        shown = ", ".join(f"{names[k]} {p[k]:.4f}" for k in best)
        assert shown in line and line.endswith(row["text"])
    assert len(table) == 3
