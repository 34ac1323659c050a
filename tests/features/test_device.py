"""The GPU-side decisions, checked on CPU: dtype policy, batch sizing, copies, overlap.

No GPU here: the CUDA branches are exercised through their pure inputs (``bf16_supported``,
a free-memory figure); pinned copies and non-blocking transfers only run on a GPU.
"""

from __future__ import annotations

import threading
import time

import h5py
import numpy as np
import pytest
import torch

from probe.errors import ProbeError
from probe.features.device import (
    BackgroundWriter,
    activation_bytes_per_token,
    compute_dtype,
    cpu_has_fast_bf16,
    dtype_name,
    prefetched,
    to_device,
    token_budget_for_memory,
)

GPT2_SMALL = {"hidden_size": 768, "intermediate_size": 3072, "num_heads": 12}


def test_dtype_policy():
    assert compute_dtype("cpu") is torch.float32
    assert compute_dtype("cuda", bf16_supported=True) is torch.bfloat16
    assert compute_dtype("cuda:1", bf16_supported=False) is torch.float16
    assert dtype_name(torch.bfloat16) == "bfloat16"


def test_requested_dtype_wins_over_the_policy():
    assert compute_dtype("cpu", requested="bfloat16") is torch.bfloat16
    assert compute_dtype("cuda", bf16_supported=True, requested="float32") is torch.float32
    assert compute_dtype("cpu", requested="auto") is torch.float32
    with pytest.raises(ProbeError, match="unknown --dtype 'fp8'"):
        compute_dtype("cpu", requested="fp8")
    assert isinstance(cpu_has_fast_bf16(), bool)


def test_activation_bytes_count_kept_layers_mlp_and_attention_rows():
    per_token = activation_bytes_per_token(**GPT2_SMALL, kept_layers=13, max_length=512)
    # 13 x 768 kept + 4 x 768 block + 3 x 3072 MLP + 12 x 512 scores, 2 bytes each
    assert per_token == 2 * (13 * 768 + 4 * 768 + 3 * 3072 + 12 * 512)


def test_token_budget_from_free_memory():
    per_token = activation_bytes_per_token(**GPT2_SMALL, kept_layers=13, max_length=512)
    free = 70 * 2**30  # an H100 after loading GPT-2 small
    budget = token_budget_for_memory(free, **GPT2_SMALL, kept_layers=13, max_length=512)
    assert budget % 64 == 0
    assert budget * per_token <= 0.7 * free < (budget + 64) * per_token
    assert 900_000 < budget < 950_000  # 0.7 x 70 GiB / 56,832 bytes a token
    # half the memory, about half the budget; more layers kept, a smaller budget
    half = token_budget_for_memory(free // 2, **GPT2_SMALL, kept_layers=13, max_length=512)
    assert abs(half - budget / 2) <= 64
    assert token_budget_for_memory(free, **GPT2_SMALL, kept_layers=1, max_length=512) > budget


def test_token_budget_never_below_one_text():
    tiny_free = 1 << 20
    assert token_budget_for_memory(tiny_free, **GPT2_SMALL, kept_layers=13, max_length=512) == 512
    with pytest.raises(ValueError):
        token_budget_for_memory(0, **GPT2_SMALL, kept_layers=13, max_length=512)


def test_to_device_on_cpu_is_a_plain_copy_without_pinning():
    tensor = torch.arange(6)
    moved = to_device(tensor, "cpu")
    assert torch.equal(moved, tensor) and not moved.is_pinned()


def test_prefetched_keeps_order_and_runs_ahead_in_another_thread():
    threads = set()

    def prepare(item):
        threads.add(threading.get_ident())
        return item * item

    assert list(prefetched(range(50), prepare, depth=3)) == [i * i for i in range(50)]
    assert threads and threading.get_ident() not in threads


def test_prefetched_raises_at_the_failing_item():
    def prepare(item):
        if item == 3:
            raise KeyError("bad item")
        return item

    seen = []
    with pytest.raises(KeyError, match="bad item"):
        for value in prefetched(range(10), prepare):
            seen.append(value)
    assert seen == [0, 1, 2]


def test_prefetched_stops_its_thread_when_closed_early():
    produced = []
    stream = prefetched(range(1000), lambda i: produced.append(i) or i, depth=2)
    assert next(stream) == 0
    stream.close()
    time.sleep(0.1)
    assert len(produced) <= 5  # the thread stopped instead of running through 1000 items
    assert not any(t.name == "probe-prefetch" for t in threading.enumerate())


def write_shard(folder, index, values):
    with h5py.File(folder / f"shard-{index}.h5", "w") as handle:
        handle["values"] = values


@pytest.mark.parametrize("enabled", [True, False])
def test_background_writer_writes_every_batch_in_order(tmp_path, enabled):
    order = []
    with BackgroundWriter(depth=2, enabled=enabled) as writer:
        for index in range(20):
            writer.submit(write_shard, tmp_path, index, np.full(4, index, np.float16))
            writer.submit(order.append, index)
    assert order == list(range(20))
    for index in range(20):
        with h5py.File(tmp_path / f"shard-{index}.h5") as handle:
            assert (handle["values"][:] == index).all()


def test_background_writer_error_is_raised_not_lost(tmp_path):
    writer = BackgroundWriter()
    writer.submit(write_shard, tmp_path / "no-such-folder", 0, np.zeros(2))
    with pytest.raises(OSError):
        writer.close()


def test_embeddings_identical_with_and_without_overlap(tiny_gpt2_dir):
    """Overlap moves collation to a thread; batches and numbers must not change at all."""
    from conftest import VARIED_TEXTS
    from probe.features.forward import embed_texts
    from probe.features.models.loading import load_backbone

    backbone = load_backbone(str(tiny_gpt2_dir), device="cpu")
    texts = VARIED_TEXTS * 3
    overlapped = embed_texts(backbone, texts, [0, 2, 3], token_budget=128, overlap=True)
    serial = embed_texts(backbone, texts, [0, 2, 3], token_budget=128, overlap=False)
    for pool in ("last", "mean"):
        np.testing.assert_array_equal(overlapped[pool], serial[pool])  # same batch shapes


def test_backbone_on_cpu_computes_in_fp32_with_sdpa(tiny_gpt2_dir):
    from probe.features.models.loading import load_backbone

    model = load_backbone(str(tiny_gpt2_dir), device="cpu").model
    assert next(model.parameters()).dtype is torch.float32
    assert model.config._attn_implementation == "sdpa"


def test_host_copy_on_cpu_is_ready_at_once_and_equal():
    from probe.features.device import HostCopy

    tensors = {"last": torch.randn(3, 4, 8).half(), "mean": torch.randn(3, 4, 8).half()}
    copy = HostCopy(tensors)
    assert copy.done()
    result = copy.result()
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(result[name], tensor.numpy())


def test_pooled_batches_hand_out_every_batch_once_in_order(tiny_gpt2_dir):
    """With overlap a batch is handed out after the next is queued: same rows, same order,
    same numbers as without."""
    from probe.features.forward import pooled_batches
    from probe.features.models.loading import load_backbone

    backbone = load_backbone(str(tiny_gpt2_dir))
    texts = ["one", "two words", "three words here", "and a fourth, longer text", "five"]
    ids = backbone.tokenizer.encode(texts, 32).token_ids
    batches = [np.array([0, 1]), np.array([2]), np.array([3, 4])]
    lagged = list(pooled_batches(backbone, ids, batches, [0, 1], overlap=True))
    direct = list(pooled_batches(backbone, ids, batches, [0, 1], overlap=False))
    assert [r.tolist() for r, _ in lagged] == [b.tolist() for b in batches]
    for (_, a), (_, b) in zip(lagged, direct, strict=True):
        np.testing.assert_allclose(a["mean"], b["mean"], 1e-3, 1e-3)
