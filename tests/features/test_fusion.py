"""``--compile``: blocks compiled with torch.compile give the eager numbers, and a compiler
failure falls back to eager instead of failing the extraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import VARIED_TEXTS
from probe.features.forward import embed_texts
from probe.features.models.architecture import transformer_blocks
from probe.features.models.fusion import compiled_blocks
from probe.features.models.loading import load_backbone

LAYERS = [0, 1, 2, 3]
# Fused kernels reorder float32 additions; features are then rounded to fp16. One fp16 ulp
# (2^-10 relative) plus fp32 noise near zero covers it.
TOLERANCE = {"rtol": 2e-3, "atol": 1e-4}


def features(backbone):
    return embed_texts(backbone, VARIED_TEXTS * 2, LAYERS, token_budget=128)


def test_compiled_blocks_match_eager_and_are_removed_afterwards(tiny_gpt2_dir, said):
    from torch._dynamo.utils import counters

    backbone = load_backbone(str(tiny_gpt2_dir), device="cpu")
    eager = features(backbone)
    graphs_before = counters["stats"]["unique_graphs"]
    with compiled_blocks(backbone.model) as compiled:
        fused = features(backbone)
    assert compiled and said == []  # no fallback: the blocks really ran compiled
    assert compiled.worked and compiled.describe() == "--compile: blocks ran compiled"
    assert counters["stats"]["unique_graphs"] > graphs_before
    for pool in ("last", "mean"):
        np.testing.assert_allclose(fused[pool], eager[pool], **TOLERANCE)
    assert all("forward" not in block.__dict__ for block in transformer_blocks(backbone.model))
    np.testing.assert_array_equal(features(backbone)["mean"], eager["mean"])  # eager again


def test_a_compiler_failure_falls_back_to_eager_with_one_line(tiny_gpt2_dir, monkeypatch, said):
    def broken_compile(function, **options):
        def run(*args, **kwargs):
            raise RuntimeError("Compiler: cc not found\nlong inductor traceback")

        return run

    backbone = load_backbone(str(tiny_gpt2_dir), device="cpu")
    eager = features(backbone)
    monkeypatch.setattr(torch, "compile", broken_compile)
    with compiled_blocks(backbone.model) as outcome:
        fallen_back = features(backbone)
    assert len(said) == 1 and "running eager" in said[0] and "\n" not in said[0]
    assert outcome.requested and not outcome.worked and not outcome
    assert outcome.describe().endswith("failed (Compiler: cc not found); ran eager")
    for pool in ("last", "mean"):
        np.testing.assert_array_equal(fallen_back[pool], eager[pool])  # the eager code ran


def test_disabled_leaves_the_model_alone(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir), device="cpu")
    with compiled_blocks(backbone.model, enabled=False) as compiled:
        assert not compiled
        assert all("forward" not in b.__dict__ for b in transformer_blocks(backbone.model))


@pytest.mark.parametrize("existing", [False, True])
def test_a_forward_patched_before_is_put_back(tiny_gpt2_dir, existing):
    backbone = load_backbone(str(tiny_gpt2_dir), device="cpu")
    block = transformer_blocks(backbone.model)[0]
    if existing:
        block.forward = block.forward  # an instance attribute, as accelerate's hooks leave
    before = block.__dict__.get("forward")
    with compiled_blocks(backbone.model):
        assert block.__dict__.get("forward") is not before
    assert block.__dict__.get("forward") is before


def test_the_view_records_whether_compiling_worked_and_says_so_quietly(
    tiny_gpt2_dir, sms_subset, monkeypatch
):
    """``--compile`` that fell back is recorded as not compiled, and one stderr line says so
    even with -q; a second run that computes nothing says that nothing ran."""
    from click.testing import CliRunner

    from probe.cli.main import main
    from probe.features.store.caches import read_attrs

    def broken_compile(function, **options):
        def run(*args, **kwargs):
            raise RuntimeError("Compiler: cc not found")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    args = [
        "extract",
        "--model",
        str(tiny_gpt2_dir),
        "--data",
        str(sms_subset),
        "--max-length",
        "32",
        "--compile",
        "-q",
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.stderr.splitlines() == [
        "--compile: torch.compile failed (Compiler: cc not found); ran eager"
    ]
    attrs = read_attrs(first.stdout.strip())
    assert attrs["compile_requested"] and not attrs["compiled"]
    again = CliRunner().invoke(main, args)
    assert again.stderr.splitlines() == ["--compile: nothing ran (every row was in the store)"]
    plain = CliRunner().invoke(main, args[:-2] + ["-q"])
    assert plain.exit_code == 0 and plain.stderr == ""  # no --compile, nothing to say
