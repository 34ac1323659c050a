"""The GPU path on a real GPU: skipped where there is none (CI, most sessions).

Run by ``benchmarks/gpu_checks.sh`` on a lent GPU machine. On CPU the same decisions are
tested through their pure inputs (``test_device.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import VARIED_TEXTS
from probe.data.readers import TextDataset
from probe.features.batching import DEFAULT_TOKEN_BUDGET
from probe.features.device import auto_token_budget
from probe.features.extract import extract
from probe.features.forward import host_batch
from probe.features.models.loading import load_backbone
from probe.features.store.caches import open_cache

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TEXTS = [f"{VARIED_TEXTS[i % len(VARIED_TEXTS)]} {i}" for i in range(64)]


def assert_close_to_fp32(view, reference, relative: float):
    for layer in reference.layers:
        for pool in ("last", "mean"):
            a, b = view.features(layer, pool), reference.features(layer, pool)
            assert np.abs(a - b).max() <= relative * np.abs(b).max(), (layer, pool)


def test_gpu_rows_are_half_precision_and_close_to_cpu_fp32(tiny_gpt2_dir, tmp_path):
    data = TextDataset(TEXTS, None, "t")
    cpu = open_cache(extract(str(tiny_gpt2_dir), data, "all", device="cpu", out=tmp_path / "c.h5"))
    gpu = open_cache(extract(str(tiny_gpt2_dir), data, "all", device="cuda", out=tmp_path / "g.h5"))
    assert gpu.meta["compute_dtype"] in ("bfloat16", "float16")
    assert gpu.meta["computed_rows"] == len(TEXTS)  # no fp32 CPU row answered for the GPU
    assert_close_to_fp32(gpu, cpu, relative=0.05)


def test_gpu_in_fp32_matches_cpu_closely(tiny_gpt2_dir, tmp_path):
    data = TextDataset(TEXTS, None, "t")
    cpu = open_cache(extract(str(tiny_gpt2_dir), data, "all", device="cpu", out=tmp_path / "c.h5"))
    gpu = open_cache(
        extract(
            str(tiny_gpt2_dir), data, "all", device="cuda", dtype="float32", out=tmp_path / "g.h5"
        )
    )
    assert_close_to_fp32(gpu, cpu, relative=0.01)  # TF32 may be on for cuBLAS


def test_budget_from_free_memory_and_pinned_batches(tiny_gpt2_dir):
    backbone = load_backbone(str(tiny_gpt2_dir), device="cuda")
    budget = auto_token_budget(backbone, 4, 256, DEFAULT_TOKEN_BUDGET)
    assert budget > DEFAULT_TOKEN_BUDGET and budget % 64 == 0
    input_ids, mask = host_batch(backbone, [[1, 2, 3], [4, 5]])
    assert input_ids.is_pinned() and mask.is_pinned()


def test_compile_on_gpu_matches_eager(tiny_gpt2_dir, tmp_path):
    data = TextDataset(TEXTS, None, "t")
    eager = open_cache(
        extract(str(tiny_gpt2_dir), data, "all", device="cuda", out=tmp_path / "e.h5")
    )
    fused = open_cache(
        extract(
            str(tiny_gpt2_dir),
            data,
            "all",
            device="cuda",
            use_compile=True,
            force=True,
            out=tmp_path / "f.h5",
        )
    )
    assert_close_to_fp32(fused, eager, relative=0.02)


def test_host_copy_from_the_gpu_is_asynchronous_and_exact():
    from probe.features.device import HostCopy

    tensors = {"last": torch.randn(31, 512, 576, device="cuda").half()}
    copy = HostCopy(tensors)
    assert copy.host["last"].is_pinned() and copy.event is not None
    np.testing.assert_array_equal(copy.result()["last"], tensors["last"].cpu().numpy())
