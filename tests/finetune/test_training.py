"""Partial-unfreeze fine-tuning on tiny random models: what trains, what is cached, what drifts."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import REPO, probe_env, probe_process
from probe.cli import main
from probe.data.splits import load_splits
from probe.errors import ProbeError
from probe.features.batching import collate
from probe.features.models import architecture
from probe.features.models.loading import wrap_backbone
from probe.finetune.classifier import FinetuneClassifier, make_plan, param_groups
from probe.finetune.head_init import fold_scaler
from probe.finetune.prefix import compute_prefix, load_or_compute_prefix
from probe.finetune.training import FinetuneConfig, finetune

FAST = {"epochs": 1, "batch_size": 8, "max_length": 48, "forgetting_check": False}


def tiny_gpt2(seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=50257, n_positions=128)
    return GPT2LMHeadModel(config).eval()


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        num_hidden_layers=3,
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=500,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def sms_splits(sms_subset):
    return load_splits(data=str(sms_subset), seed=0)


def random_batch(vocab: int, lengths=(7, 19, 2, 12, 1)):
    generator = torch.Generator().manual_seed(1)
    token_ids = [torch.randint(0, vocab, (n,), generator=generator).tolist() for n in lengths]
    input_ids, mask = collate(token_ids, pad_id=0)
    return token_ids, input_ids, mask


def reference_logits(model, input_ids, mask, layer: int, pool: str, head) -> torch.Tensor:
    """The model's own full forward: output_hidden_states[layer], pooled, through the head."""
    from probe.features.pooling import POOLS

    base = architecture.base_model(model)
    hidden = base(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    return head(POOLS[pool](hidden.hidden_states[layer], mask))


# --- the prefix cache equals the full forward --------------------------------------------------


@pytest.mark.parametrize("build", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
@pytest.mark.parametrize(
    "unfreeze, layer, pool",
    [(1, None, "last"), (2, None, "mean"), (0, None, "last"), (1, 2, "mean"), (0, 1, "last")],
)
def test_prefix_cache_logits_and_loss_equal_full_forward(build, unfreeze, layer, pool):
    model = build()
    plan = make_plan(3, True, unfreeze, layer)
    classifier = FinetuneClassifier(model, plan, pool, num_classes=3)
    torch.nn.init.normal_(classifier.head.weight)
    classifier.freeze()
    token_ids, input_ids, mask = random_batch(model.config.vocab_size)
    labels = torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        expected = reference_logits(model, input_ids, mask, plan.layer, pool, classifier.head)
    rows = np.arange(len(token_ids))

    results = {}
    for dtype in ("float32", "float16", None):
        if dtype is None or plan.first_trainable == 0:
            start = None
        else:
            prefix = compute_prefix(model, token_ids, 0, plan.first_trainable, dtype=dtype)
            start = prefix.batch(rows, torch.float32, "cpu")
        classifier.zero_grad()
        logits = classifier(input_ids, mask, start)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        grads = [p.grad.clone() for p in classifier.parameters() if p.requires_grad]
        results[dtype] = (logits.detach(), loss.detach(), grads)

    for dtype, (logits, loss, grads) in results.items():
        tolerance = 2e-2 if dtype == "float16" else 1e-5
        torch.testing.assert_close(logits, expected, rtol=tolerance, atol=tolerance)
        expected_loss = torch.nn.functional.cross_entropy(expected, labels)
        torch.testing.assert_close(loss, expected_loss, rtol=tolerance, atol=tolerance)
        for grad, reference in zip(
            grads, results[None][2], strict=True
        ):  # same gradients as recomputing
            torch.testing.assert_close(grad, reference, rtol=tolerance, atol=tolerance)


def test_prefix_is_stored_and_reused(sms_splits, isolated_cache):
    backbone = wrap_backbone(tiny_gpt2(), "tiny")
    config = FinetuneConfig(unfreeze=1, **FAST)
    first = finetune(backbone, sms_splits, config).report
    assert first["prefix_cache"] and not first["prefix"]["train"]["hit"]
    assert len(list((isolated_cache / "prefix").glob("*.safetensors"))) == 3  # train, val, test
    again = finetune(wrap_backbone(tiny_gpt2(), "tiny"), sms_splits, config).report
    assert again["prefix"]["train"]["hit"] and again["prefix"]["val"]["hit"]
    # a hit still reports what computing the prefix cost, so comparisons show the one-time cost
    assert again["prefix"]["train"]["seconds"] == 0.0
    recorded = again["prefix"]["train"]["computed_seconds"]
    assert recorded == pytest.approx(first["prefix"]["train"]["seconds"], abs=1e-3)
    assert again["test"] == first["test"]
    uncached = finetune(
        wrap_backbone(tiny_gpt2(), "tiny"),
        sms_splits,
        FinetuneConfig(unfreeze=1, prefix_cache=False, prefix_dtype="float32", **FAST),
    ).report
    assert not uncached["prefix_cache"] and uncached["prefix"] == {}
    assert abs(uncached["epochs"][0]["train_loss"] - first["epochs"][0]["train_loss"]) < 1e-3


@pytest.mark.parametrize("damage", ["cut", "garbage", "no offsets"])
def test_a_damaged_prefix_file_is_recomputed(damage, isolated_cache):
    from safetensors.torch import save_file

    model, (token_ids, _, _) = tiny_gpt2(), random_batch(50257)
    first = load_or_compute_prefix(model, token_ids, 0, 2, "key")
    path = next((isolated_cache / "prefix").glob("key.safetensors"))
    if damage == "no offsets":
        save_file({"hidden": first.hidden}, str(path))
    else:
        path.write_bytes(path.read_bytes()[:40] if damage == "cut" else b"not safetensors")
    again = load_or_compute_prefix(model, token_ids, 0, 2, "key")
    assert not again.hit and torch.equal(again.hidden, first.hidden)
    assert load_or_compute_prefix(model, token_ids, 0, 2, "key").hit  # stored whole again


# --- what trains -------------------------------------------------------------------------------


def test_frozen_parameters_bitwise_unchanged_and_unfrozen_changed(sms_splits):
    model = tiny_gpt2()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = FinetuneConfig(unfreeze=1, lr_body=1e-3, **FAST)
    finetune(wrap_backbone(model, "tiny"), sms_splits, config)
    for name, param in model.named_parameters():
        trainable = name.startswith(("transformer.h.2.", "transformer.ln_f."))
        unchanged = torch.equal(param, before[name])
        assert unchanged != trainable, name
        assert not param.requires_grad or trainable, name


def test_each_parameter_group_gets_its_learning_rate():
    model = tiny_gpt2()
    classifier = FinetuneClassifier(model, make_plan(3, True, 2, None), "last", 2)
    classifier.freeze()
    config = FinetuneConfig(lr_body=3e-5, lr_head=7e-3, weight_decay=0.05)
    groups = {g["name"]: g for g in param_groups(classifier, config)}
    assert set(groups) == {"body_decay", "body_no_decay", "head_decay", "head_no_decay"}
    head = {id(p) for p in classifier.head.parameters()}
    body = {id(p) for b in model.transformer.h[1:] for p in b.parameters()}
    body |= {id(p) for p in model.transformer.ln_f.parameters()}
    for name, group in groups.items():
        members = {id(p) for p in group["params"]}
        assert members <= (head if name.startswith("head") else body)
        assert group["lr"] == (7e-3 if name.startswith("head") else 3e-5)
        decays = name in ("body_decay", "head_decay")
        assert group["weight_decay"] == (0.05 if decays else 0.0)
    covered = {id(p) for g in groups.values() for p in g["params"]}
    assert covered == head | body  # every trainable parameter, nothing frozen
    optimizer = torch.optim.AdamW(list(groups.values()))
    assert sorted(g["lr"] for g in optimizer.param_groups) == [3e-5, 3e-5, 7e-3, 7e-3]


def test_unfreeze_zero_leaves_perplexity_and_continuation_identical(sms_splits):
    model = tiny_gpt2()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    config = FinetuneConfig(unfreeze=0, **{**FAST, "forgetting_check": True})
    report = finetune(wrap_backbone(model, "tiny"), sms_splits, config).report
    forgetting = report["forgetting"]
    assert forgetting["perplexity_before"] == forgetting["perplexity_after"]
    assert forgetting["continuation_before"] == forgetting["continuation_after"]
    assert forgetting["continuation_unchanged"] and forgetting["perplexity_drift"] == 0.0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert report["trainable_params"] == 32 * 2 + 2


def test_unfreezing_reports_drift(sms_splits):
    config = FinetuneConfig(unfreeze="all", lr_body=1e-2, **{**FAST, "forgetting_check": True})
    forgetting = finetune(wrap_backbone(tiny_gpt2(), "tiny"), sms_splits, config).report[
        "forgetting"
    ]
    assert forgetting["perplexity_after"] != forgetting["perplexity_before"]


def test_layer_k_truly_drops_the_blocks_above(sms_splits):
    model = tiny_gpt2()
    calls = {index: 0 for index in range(3)}
    for index, block in enumerate(model.transformer.h):
        block.register_forward_hook(lambda *args, i=index: calls.__setitem__(i, calls[i] + 1))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    config = FinetuneConfig(unfreeze="all", layer=1, lr_body=1e-3, **FAST)
    backbone = wrap_backbone(model, "tiny")  # asks the model whether it is causal: one pass
    calls.update({index: 0 for index in calls})
    result = finetune(backbone, sms_splits, config)
    assert calls[0] > 0 and calls[1] == 0 and calls[2] == 0
    report = result.report
    assert report["layer"] == 1 and report["unfreeze"] == 1
    assert not report["final_norm_trainable"]
    block0 = sum(p.numel() for p in model.transformer.h[0].parameters())
    assert report["trainable_params"] == block0 + 32 * 2 + 2
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == (not name.startswith("transformer.h.0.")), name
    # the head reads hidden-state layer 1: block 0's output, no final norm
    _, input_ids, mask = random_batch(50257)
    with torch.no_grad():
        expected = reference_logits(model, input_ids, mask, 1, "last", result.classifier.head)
        torch.testing.assert_close(result.classifier(input_ids, mask), expected)


# --- the head: from a probe, saved for probe predict -------------------------------------------


def test_fold_scaler_equals_the_standardised_probe():
    from probe.heads.estimator import ProbeClassifier

    rng = np.random.default_rng(0)
    features = rng.normal(3.0, 2.0, (40, 8))
    labels = np.where(features[:, 0] + rng.normal(0, 1, 40) > 3, "spam", "ham")
    for classes, y in ((["ham", "spam"], labels), (["a", "b", "c"], rng.choice(list("abc"), 40))):
        probe = ProbeClassifier(C=1.0).fit(features, y)
        weight, bias = fold_scaler(probe)
        logits = features @ weight.T + bias
        proba = torch.softmax(torch.as_tensor(logits), dim=1).numpy()
        np.testing.assert_allclose(proba, probe.predict_proba(features), rtol=1e-4, atol=1e-5)
        assert list(probe.classes_) == classes


def test_saved_model_reloads_and_predicts_the_same(sms_splits, tmp_path):
    from probe.features.models.loading import load_backbone
    from probe.finetune.training import save_finetuned
    from probe.heads.persistence import load_head

    model = tiny_gpt2()
    model.save_pretrained(tmp_path / "base")
    backbone = load_backbone(str(tmp_path / "base"))
    result = finetune(backbone, sms_splits, FinetuneConfig(unfreeze=1, lr_body=1e-3, **FAST))
    head_path = save_finetuned(result, tmp_path / "tuned")

    reloaded = load_backbone(str(tmp_path / "tuned" / "model"))
    probe_head, meta = load_head(head_path)
    assert meta["layer"] == 3 and meta["pool"] == "last"
    texts = sms_splits.test.texts
    token_ids = reloaded.tokenizer.encode(texts, 48).token_ids
    input_ids, mask = collate(token_ids, reloaded.tokenizer.pad_id)
    with torch.no_grad():
        expected = result.classifier(input_ids, mask).softmax(-1).numpy()
        hidden = architecture.base_model(reloaded.model)(input_ids=input_ids, attention_mask=mask)
        from probe.features.pooling import pool_last

        pooled = pool_last(hidden.last_hidden_state, mask).numpy()
    np.testing.assert_allclose(probe_head.predict_proba(pooled), expected, atol=1e-5)
    labels = [result.label_names[i] for i in expected.argmax(1)]
    assert list(probe_head.predict(pooled)) == labels

    # probe predict serves it: the backbone from the saved folder, features through fp16
    outcome = CliRunner().invoke(main, ["predict", "--head", str(head_path), "--json", *texts])
    assert outcome.exit_code == 0, outcome.output
    served = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert [row["label"] for row in served] == labels
    served_proba = [[row["probabilities"][name] for name in result.label_names] for row in served]
    np.testing.assert_allclose(served_proba, expected, atol=1e-3)


@pytest.fixture
def separable_csv(tmp_path):
    """40 texts a linear head must get right: every spam text ends in 'spam spam spam',
    every ham text in 'ham ham'; the last token alone tells them apart."""
    import pandas as pd

    openings = ["note", "hello", "reminder", "update", "message", "hey", "ok", "fyi", "re", "so"]
    rows = [(f"{openings[i % 10]} {i}: spam spam spam", "spam") for i in range(20)]
    rows += [(f"{openings[i % 10]} {i}: ham ham", "ham") for i in range(20)]
    path = tmp_path / "separable.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def test_init_head_must_match_layer_and_pool(tiny_gpt2_dir, separable_csv, tmp_path):
    from probe.features.forward import embed_texts
    from probe.features.models.loading import load_backbone, model_fingerprint
    from probe.heads.estimator import ProbeClassifier
    from probe.heads.persistence import save_head

    splits = load_splits(data=str(separable_csv))
    backbone = load_backbone(str(tiny_gpt2_dir))
    features = embed_texts(backbone, splits.train.texts, [3], 48)["last"][0]
    probe = ProbeClassifier(C=1.0).fit(features, splits.train.labels)
    test_features = embed_texts(backbone, splits.test.texts, [3], 48)["last"][0]
    assert probe.score(test_features, splits.test.labels) == 1.0  # the data is separable
    meta = {
        "model": str(tiny_gpt2_dir),
        "model_fingerprint": model_fingerprint(str(tiny_gpt2_dir)),
        "layer": 3,
        "pool": "last",
        "max_length": 48,
        "label_names": list(probe.classes_),
    }
    save_head(tmp_path / "probe.json", probe, meta)
    good = FinetuneConfig(unfreeze=0, init_head=str(tmp_path / "probe.json"), **FAST)
    result = finetune(str(tiny_gpt2_dir), splits, good)
    assert result.report["test"]["accuracy"] >= 0.9  # started from a perfect head
    assert sorted(result.label_names) == ["ham", "spam"]

    runner = CliRunner()
    head = str(tmp_path / "probe.json")
    args = [
        "finetune",
        "--model",
        str(tiny_gpt2_dir),
        "--data",
        str(separable_csv),
        "--epochs",
        "1",
        "--max-length",
        "48",
        "--init-head",
        head,
    ]
    outcome = runner.invoke(main, [*args, "--layer", "2"])
    assert outcome.exit_code == 1
    assert "does not fit" in outcome.output and "layer" in outcome.output
    assert "Traceback" not in outcome.output
    outcome = runner.invoke(main, [*args, "--pool", "mean"])
    assert outcome.exit_code == 1 and "pool" in outcome.output


# --- the command line --------------------------------------------------------------------------


def test_cli_finetune_json_and_too_many_blocks(tiny_gpt2_dir, sms_subset):
    runner = CliRunner()
    base = [
        "finetune",
        "--model",
        str(tiny_gpt2_dir),
        "--data",
        str(sms_subset),
        "--max-length",
        "48",
        "--epochs",
        "1",
        "-q",
    ]
    outcome = runner.invoke(main, [*base, "--unfreeze", "1", "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert report["unfreeze"] == 1 and report["forgetting"]["perplexity_before"] > 0
    assert set(report["test"]) >= {"accuracy", "macro_f1", "confusion_matrix"}

    outcome = runner.invoke(main, [*base, "--unfreeze", "4"])
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines() == [
        "Error: --unfreeze 4 is more blocks than the model has 3; use 0..3 or 'all'"
    ]
    outcome = runner.invoke(main, [*base, "--unfreeze", "2", "--layer", "1"])
    assert outcome.exit_code == 1 and "layer 1 sits on 1" in outcome.output


def test_subprocess_bad_unfreeze_is_one_line(tiny_gpt2_dir, sms_subset, isolated_cache):
    completed = subprocess.run(
        probe_process("finetune", model=tiny_gpt2_dir, data=sms_subset, unfreeze=7, q=True),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=probe_env(isolated_cache),
        timeout=300,
    )
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        "Error: --unfreeze 7 is more blocks than the model has 3; use 0..3 or 'all'"
    ]
    assert "Traceback" not in completed.stderr


def test_bad_unfreeze_values():
    with pytest.raises(ProbeError, match="number of blocks or 'all'"):
        make_plan(3, True, "two", None)
    with pytest.raises(ProbeError, match="0 or more"):
        make_plan(3, True, -1, None)
    with pytest.raises(ProbeError, match="invalid layer"):
        make_plan(3, True, 1, 9)
    assert make_plan(30, True, "all", None).first_trainable == 0
    assert make_plan(30, True, 1, None).final_norm_trainable
    assert not make_plan(30, True, 0, None).final_norm_trainable


def test_an_unknown_pool_is_refused_before_any_model_loads():
    """The pool is checked against the one registry first: no model named here exists."""
    with pytest.raises(ProbeError, match="unknown pool 'max'; choose last or mean"):
        finetune("/no/such/model", None, FinetuneConfig(pool="max"))
