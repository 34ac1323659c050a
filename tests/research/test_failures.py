"""Failures show: rows that could not be fitted are listed and change the exit status, a head
that scikit-learn's solver fitted says so and records why, and a bug is not a failed row.

The failing rows are real: a tiny GPT-2 whose block 1 writes values past fp16's range, so the
cache stores inf at layer 2 (as a model with huge outlier activations would), and both of
that layer's rows fail on their features. The fallback is real too: a separable training
set and C = 1e300 (no penalty to speak of) send the fast path's loss to inf.
"""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from conftest import REPO, probe_env, probe_process, run_probe
from probe.heads.persistence import load_head
from probe.research.sweep import numbered_fit, run_sweep

FAILED_ROWS = ["layer 2 last", "layer 2 mean"]


@pytest.fixture(scope="module")
def overflow_gpt2_dir(tmp_path_factory):
    """The conftest's tiny GPT-2 with block 1's MLP output scaled by 1e9: layer 2's hidden
    states exceed 65504, so the fp16 cache holds inf there; layers 0, 1 and 3 (after the
    final norm) stay finite."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=50257, n_positions=256)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        model.transformer.h[1].mlp.c_proj.weight.mul_(1e9)
    folder = tmp_path_factory.mktemp("overflow-gpt2")
    model.save_pretrained(folder)
    return folder


def failed_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("failed: ")]


def test_failed_rows_are_listed_and_exit_3_after_the_files_are_written(
    overflow_gpt2_dir, sms_labelled, tmp_path
):
    out = tmp_path / "sweep"
    rows = {"model": overflow_gpt2_dir, "data": sms_labelled, "max_length": 48, "resamples": 50}
    result = run_probe("sweep", **rows, out_dir=out)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    lines = failed_lines(result.stderr)
    assert [line.split(": ")[1] for line in lines] == FAILED_ROWS, result.stderr
    assert all("InvalidTrainingData: X contains" in line for line in lines)
    assert result.stderr.splitlines()[-1].startswith("Error: 2 row(s) could not be fitted")
    assert "8 rows in" in result.stdout  # the summary was printed before the exit
    assert "2 could not be fitted (below)" in result.stdout

    report = json.loads((out / "sweep.json").read_text())  # written before the exit
    assert [e["row"] for e in report["errors"]] == FAILED_ROWS
    assert [e["error"] for e in report["errors"]] == [
        r["error"] for r in report["entries"] if r.get("error")
    ]
    assert report["best"]["layer"] != 2 and len(report["entries"]) == 8
    assert "InvalidTrainingData" in (out / "sweep.md").read_text()
    _, head = load_head(out / "head.json")
    assert (head["solver"], head["fallback_reason"]) == ("probe-lbfgs", None)

    kept = run_probe("sweep", **rows, out_dir=tmp_path / "kept", keep_going=True, q=True)
    assert kept.exit_code == 0, kept.output
    assert [line.split(": ")[1] for line in failed_lines(kept.stderr)] == FAILED_ROWS  # even -q
    assert "Error:" not in kept.stderr
    assert json.loads((tmp_path / "kept" / "sweep.json").read_text())["errors"]


def test_a_real_process_exits_3(overflow_gpt2_dir, sms_labelled, tmp_path):
    env = probe_env(tmp_path / "store")
    options = {"data": sms_labelled, "max_length": 48, "resamples": 50, "layers": "1,2", "q": True}
    failing = subprocess.run(
        probe_process("sweep", model=overflow_gpt2_dir, out_dir=tmp_path / "a", **options),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert failing.returncode == 3, failing.stderr
    assert [line.split(": ")[1] for line in failed_lines(failing.stderr)] == FAILED_ROWS
    assert (tmp_path / "a" / "sweep.json").is_file()


def test_a_clean_sweep_has_no_errors_and_exits_0(tiny_gpt2_dir, sms_labelled, tmp_path):
    out = tmp_path / "sweep"
    result = run_probe(
        "sweep", model=tiny_gpt2_dir, data=sms_labelled, max_length=48, layers="1", out_dir=out
    )
    assert result.exit_code == 0, result.output
    assert failed_lines(result.stderr) == []
    assert json.loads((out / "sweep.json").read_text())["errors"] == []


def test_a_failing_row_is_a_row_and_a_bug_stops_the_sweep(research_data):
    index, error = numbered_fit(7, research_data, 1, "last", C=-1.0)
    assert index == 7 and error == "InvalidTrainingData: C values must be positive"
    with pytest.raises(TypeError, match="bogus"):
        numbered_fit(0, research_data, 1, "last", bogus=True)
    with pytest.raises(TypeError):  # a None among the Cs is a caller's bug, not a failed row
        run_sweep(research_data, [1, 2], ["last"], Cs=(0.1, None), n_jobs=1, resamples=10)


def test_a_head_fitted_by_the_fallback_says_so_and_records_why(
    tiny_gpt2_dir, sms_labelled, tmp_path
):
    """Layer 1 (mean) of the 72 training texts is separable: at C = 1e300 no step along the
    fast path's preconditioned gradient lowers its objective (it overflowed before line
    searches refused a rise) and scikit-learn's lbfgs fits the head."""
    out = tmp_path / "heads" / "fallback.json"
    rows = {"model": tiny_gpt2_dir, "data": sms_labelled, "max_length": 48}
    result = run_probe("fit", **rows, layer=1, pool="mean", C="1e300", out=out, json=True)
    assert result.exit_code == 0, result.output
    reason = "SolverFailure: no step lowered the objective at C=1e+300"
    said = [line for line in result.stderr.splitlines() if "fast solver failed" in line]
    assert said == [
        f"layer 1 mean: fast solver failed ({reason}); fitted with scikit-learn's lbfgs"
    ], result.stderr
    _, head = load_head(out)  # the new fields are inside the checked record
    assert (head["solver"], head["fallback_reason"]) == ("sklearn-fallback", reason)
    summary = json.loads(result.stdout)
    assert (summary["solver"], summary["fallback_reason"]) == ("sklearn-fallback", reason)


def test_sweep_rows_record_the_fallback_and_say_it_once_each(tiny_gpt2_dir, sms_labelled, tmp_path):
    frame = pd.read_csv(sms_labelled)
    frame["split"] = ["train"] * 60 + ["validation"] * 15 + ["test"] * 15
    data = tmp_path / "split.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "sweep"
    result = run_probe(
        "sweep", model=tiny_gpt2_dir, data=data, max_length=48, C="1e300", out_dir=out
    )
    assert result.exit_code == 0, result.output
    entries = json.loads((out / "sweep.json").read_text())["entries"]
    fell_back = [r for r in entries if r["solver"] == "sklearn-fallback"]
    assert fell_back, "no row fell back: pick an input on which the fast path still fails"
    said = [line for line in result.stderr.splitlines() if "fast solver failed" in line]
    assert said == [
        f"layer {r['layer']} {r['pool']}: fast solver failed ({r['fallback_reason']}); "
        "fitted with scikit-learn's lbfgs"
        for r in fell_back
    ]
    assert all(r["fallback_reason"] is None for r in entries if r["solver"] == "probe-lbfgs")


def test_compare_lists_the_sweeps_failed_rows_and_exits_3(
    overflow_gpt2_dir, sms_labelled, tmp_path
):
    out = tmp_path / "compare"
    result = run_probe(
        "compare",
        model=overflow_gpt2_dir,
        data=sms_labelled,
        unfreeze="0",
        no_book=True,
        epochs=1,
        batch_size=16,
        max_length=32,
        lr_grid="1e-3",
        out_dir=out,
        q=True,
    )
    assert result.exit_code == 3, result.output
    assert [line.split(": ")[1] for line in failed_lines(result.stderr)] == FAILED_ROWS
    written = json.loads((out / "compare.json").read_text())
    assert [e["row"] for e in written["probe"]["errors"]] == FAILED_ROWS
