"""Heads on several layers: concatenated features and a learned scalar mix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from probe.cli.main import main
from probe.errors import ProbeError
from probe.features.layers import RowSpec, parse_row_spec
from probe.heads.mix import fit_mix_weights
from probe.research.sweep import fit_one, run_sweep


def test_row_specs_one_parser_for_every_spelling():
    assert parse_row_spec("mix") == RowSpec("mix", ())
    assert parse_row_spec("12, 18,24") == RowSpec("concat", ("12", "18", "24"))
    assert parse_row_spec("12+18+24") == parse_row_spec("12,18,24")  # a sweep row's name
    assert parse_row_spec("-1") == RowSpec("single", ("-1",)) and not parse_row_spec(7).multi
    resolved = parse_row_spec("12+-1").resolved(lambda part: int(part) % 31, range(31))
    assert resolved == RowSpec("concat", (12, 30)) and resolved.name == "12+30"
    assert resolved.file_stem == "12-30" and parse_row_spec(resolved.name) == RowSpec(
        "concat", ("12", "30")
    )
    assert parse_row_spec("mix").resolved(int, [0, 2, 4]).layers == (0, 2, 4)
    try:
        parse_row_spec(" , ")
    except ProbeError as error:
        assert "layer" in str(error)
    else:
        raise AssertionError("an empty --layer must be refused")


def test_mix_weights_find_the_informative_layer():
    rng = np.random.default_rng(0)
    stack = rng.normal(size=(4, 400, 8)).astype(np.float32)
    codes = (stack[2, :, 0] + 0.2 * rng.normal(size=400) > 0).astype(int)
    weights = fit_mix_weights(stack, codes, 2)
    assert abs(weights.sum() - 1) < 1e-9 and weights.argmax() == 2 and weights[2] > 0.5


def test_mix_and_concat_rows_in_the_sweep(research_data):
    result = run_sweep(research_data, pools=["mean"], n_jobs=1, multi=["mix", "1,3"])
    rows = {str(row["layer"]): row for row in result["entries"]}
    assert set(rows) == {"0", "1", "2", "3", "mix", "1+3"}
    mix = rows["mix"]
    assert mix["kind"] == "mix" and mix["layers"] == [0, 1, 2, 3]
    assert np.argmax(mix["mix_weights"]) == 3
    assert rows["1+3"]["layers"] == [1, 3] and rows["1+3"]["kind"] == "concat"
    assert mix["test_accuracy"] >= rows["0"]["test_accuracy"] + 0.2
    concat = fit_one(research_data, RowSpec("concat", (1, 3)), "mean")
    assert concat.combiner.layers == (1, 3)
    assert concat.classifier.coef_.shape[1] == 2 * research_data.train.features(1, "mean").shape[1]


def test_fit_layer_mix_on_the_command_line(tiny_gpt2_dir, sms_labelled):
    runner = CliRunner()
    base = [
        "fit",
        "--model",
        str(tiny_gpt2_dir),
        "--data",
        str(sms_labelled),
        "--max-length",
        "48",
        "--json",
        "-q",
    ]
    mixed = runner.invoke(main, [*base, "--layer", "mix"])
    assert mixed.exit_code == 0, mixed.output
    summary = json.loads(mixed.output)
    assert summary["layer"] == "mix" and summary["head"].endswith("-lmix-last.json")
    assert len(summary["mix_weights"]) == 4
    test = summary["metrics"]["test"]
    confusion = np.asarray(test["confusion_matrix"])
    assert confusion.sum() == summary["n"]["test"] == 18  # 20% of 90, stratified
    assert test["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-12)
    concat = runner.invoke(main, [*base, "--layer", "1,3"])
    assert concat.exit_code == 0, concat.output
    assert json.loads(concat.output)["layer"] == "1+3"
    bad = runner.invoke(main, [*base, "--layer", "1,9"])
    assert bad.exit_code == 1 and "\n" not in bad.output.strip()


def test_the_mix_gradient_equals_autograd_in_float64():
    """The hand-written gradient (softmax Jacobian included) against torch autograd of the
    same objective, and central finite differences, at a random point: to 1e-6."""
    import torch

    from probe.heads.mix import mix_loss_and_gradient

    rng = np.random.default_rng(0)
    layers, n, dim, k, C = 4, 50, 6, 3, 0.7
    stack = rng.normal(size=(layers, n, dim))
    codes = rng.integers(0, k, n)
    theta = rng.normal(size=layers + k * dim + k)
    loss, gradient = mix_loss_and_gradient(theta, stack, codes, k, C)

    t = torch.tensor(theta, requires_grad=True)
    weights = torch.softmax(t[:layers], 0)
    W = t[layers : layers + k * dim].reshape(k, dim)
    mixed = torch.einsum("l,lnd->nd", weights, torch.tensor(stack))
    logits = mixed @ W.T + t[layers + k * dim :]
    objective = torch.nn.functional.cross_entropy(logits, torch.tensor(codes)) + (W**2).sum() / (
        2 * C * n
    )
    objective.backward()
    assert abs(loss - objective.item()) < 1e-12
    assert np.abs(gradient - t.grad.numpy()).max() < 1e-6

    step = 1e-6
    numeric = np.array(
        [
            (
                mix_loss_and_gradient(theta + step * e, stack, codes, k, C)[0]
                - mix_loss_and_gradient(theta - step * e, stack, codes, k, C)[0]
            )
            / (2 * step)
            for e in np.eye(len(theta))
        ]
    )
    assert np.abs(gradient - numeric).max() < 1e-6
    assert np.abs(gradient[:layers]).max() > 1e-3  # the mixing weights' gradient is exercised
