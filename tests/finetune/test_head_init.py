"""--init-head: LP-FT starts at the probe fitted on cached features; zero and auto's fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from probe.cli import main
from probe.data.splits import load_splits
from probe.finetune.training import FinetuneConfig, finetune

FROZEN = {  # no parameter moves: what the fine-tuned model predicts is where its head started
    "epochs": 1,
    "batch_size": 8,
    "max_length": 48,
    "forgetting_check": False,
    "lr_body": 0.0,
    "lr_head": 0.0,
    "unfreeze": 1,
}


@pytest.fixture
def sms_splits(sms_labelled):
    return load_splits(data=str(sms_labelled), seed=0)


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_probe_start_predicts_what_an_independently_fitted_probe_predicts(
    tiny_gpt2_dir, sms_splits, pool
):
    """The head's first logits are the probe's: fitted here on features computed without the
    cache (embed_texts), with the C the fine-tuning run chose, scaler applied by the estimator."""
    from probe.features.forward import embed_texts
    from probe.features.models.loading import load_backbone
    from probe.heads.estimator import ProbeClassifier

    config = FinetuneConfig(init_head="probe", pool=pool, **FROZEN)
    result = finetune(str(tiny_gpt2_dir), sms_splits, config)
    start = result.report["init_head"]
    assert start["kind"] == "probe" and start["layer"] == 3 and start["pool"] == pool

    backbone = load_backbone(str(tiny_gpt2_dir))
    features = {
        name: embed_texts(backbone, getattr(sms_splits, name).texts, [3], 48)[pool][0]
        for name in ("train", "test")
    }
    reference = ProbeClassifier(C=start["C"]).fit(features["train"], sms_splits.train.labels)
    expected = reference.predict_proba(features["test"])  # (N, 2)
    tuned = torch.softmax(torch.as_tensor(result.test_logits), dim=1).numpy()
    # fp16-rounded cached features vs the fp32 forward: tolerance, not equality
    np.testing.assert_allclose(tuned, expected, atol=2e-3)
    assert result.report["test"]["accuracy"] == pytest.approx(
        reference.score(features["test"], sms_splits.test.labels), abs=1 / len(expected)
    )


def test_zero_start_leaves_a_zero_head(tiny_gpt2_dir, sms_splits):
    result = finetune(str(tiny_gpt2_dir), sms_splits, FinetuneConfig(init_head="zero", **FROZEN))
    assert result.report["init_head"] == {"kind": "zero"}
    assert not result.test_logits.any()  # zero weights, zero bias, no step: every logit is 0
    assert not result.classifier.head.weight.detach().any()


def test_auto_is_the_default_and_fits_the_probe(tiny_gpt2_dir, sms_splits):
    assert FinetuneConfig().init_head == "auto"
    result = finetune(str(tiny_gpt2_dir), sms_splits, FinetuneConfig(**FROZEN))
    assert result.report["init_head"]["kind"] == "probe"
    assert result.classifier.head.weight.detach().abs().sum() > 0


def test_auto_falls_back_to_zero_and_probe_fails_in_one_line(
    tiny_gpt2_dir, sms_labelled, tmp_path, monkeypatch
):
    """A feature store that cannot be written: auto starts at zero and says why; an explicit
    --init-head probe is one line, exit 1."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "features").write_text("a file where the feature views should be")
    monkeypatch.setenv("PROBE_CACHE", str(store))
    splits = load_splits(data=str(sms_labelled), seed=0)
    config = FinetuneConfig(prefix_cache=False, **FROZEN)
    result = finetune(str(tiny_gpt2_dir), splits, config)
    assert result.report["init_head"]["kind"] == "zero"
    assert "not writable" in result.report["init_head"]["reason"]

    args = [
        "finetune",
        "--model",
        str(tiny_gpt2_dir),
        "--data",
        str(sms_labelled),
        "--epochs",
        "1",
        "--max-length",
        "48",
        "--no-prefix-cache",
        "-q",
    ]
    outcome = CliRunner().invoke(main, [*args, "--init-head", "probe"])
    assert outcome.exit_code == 1
    assert "--init-head probe" in outcome.output and "not writable" in outcome.output
    assert "Traceback" not in outcome.output and len(outcome.output.strip().splitlines()) == 1
    outcome = CliRunner().invoke(main, args)  # auto: runs, says the head started at zero
    assert outcome.exit_code == 0, outcome.output
    assert "head started at zero" in outcome.output
