"""What changes when extraction runs on a GPU: compute dtype, batch size, copies, overlap.

The forward pass is the same code on every device; this module holds the few decisions
that differ, each as a small function a CPU test can check:

- ``compute_dtype``: bf16 where the GPU supports it (fp32's range, so no overflow in
  residual streams), else fp16; fp32 on CPU by default (half precision is slower on AVX2;
  on AMX CPUs ``--dtype bfloat16`` is ~3x faster, an explicit choice); ``--dtype`` wins.
- ``token_budget_for_memory``: padded tokens per batch from a free-memory figure, so a GPU
  is filled without an out-of-memory error; a pure function of numbers.
- ``to_device``: pinned host memory and a non-blocking copy on CUDA only (pinning on CPU
  costs a copy and buys nothing).
- ``prefetched`` and ``BackgroundWriter``: host-side work (collating the next batch,
  writing a finished one) runs in one background thread while the device computes. PyTorch
  releases the GIL inside its kernels, so a thread overlaps without the cost of processes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# --- dtype ----------------------------------------------------------------------------------


DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def compute_dtype(device: str, bf16_supported: bool | None = None, requested: str | None = None):
    """The dtype the backbone runs in on ``device`` (features are stored as fp16 anyway).

    ``requested`` (``--dtype``) wins unless it is ``auto``/None. ``bf16_supported``
    defaults to asking the GPU; tests pass it to check the policy. The CPU default stays
    fp32 even where bf16 is faster (AMX): the same command gives the same rows on any CPU.
    """
    import torch

    if requested not in (None, "auto"):
        if requested not in DTYPE_CHOICES:
            from probe.errors import ProbeError

            choices = ", ".join(DTYPE_CHOICES)
            raise ProbeError(f"unknown --dtype '{requested}'; use one of {choices}")
        return getattr(torch, requested)
    if not str(device).startswith("cuda"):
        return torch.float32
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    return torch.bfloat16 if bf16_supported else torch.float16


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX tiles, where bf16 GEMMs run several times faster than fp32
    (3.3x measured on a 2-core Xeon); on AVX2-only CPUs bf16 is slower than fp32."""
    import torch

    probe_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe_amx()) if probe_amx is not None else False
    except RuntimeError:
        return False


def surely_no_gpu() -> bool:
    """True where CUDA cannot be available: Linux without any GPU driver's device nodes
    (NVIDIA ``/dev/nvidia*``, ROCm ``/dev/kfd``, WSL ``/dev/dxg``). A cache lookup then
    knows the default device is the CPU without importing torch (~1.4 s of opening the
    caches); anywhere else torch is asked."""
    import glob
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return False
    return not (
        glob.glob("/dev/nvidia*") or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg")
    )


def dtype_name(dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: the form the row store's setting records."""
    return str(dtype).removeprefix("torch.")


# --- batch size from memory -----------------------------------------------------------------

SAFETY_FRACTION = 0.7  # of the free memory; the rest absorbs allocator fragmentation
BUDGET_MULTIPLE = 64


def activation_bytes_per_token(
    *,
    hidden_size: int,
    intermediate_size: int,
    num_heads: int,
    kept_layers: int,
    max_length: int,
    dtype_bytes: int = 2,
) -> int:
    """Peak device bytes one padded token costs during an inference-mode forward pass.

    Held for the whole batch: the hidden states of every requested layer (pooled at the
    end). Live inside one block: residual, norm output, q/k/v and attention output (~4 x D),
    the MLP's intermediate activations (up to 3 x I for a gated MLP), and, should SDPA fall
    back to its math kernel, one row of attention scores per head (H x T). Conservative on
    purpose: an overestimate costs a little speed, an underestimate a crashed run.
    """
    per_token = (
        kept_layers * hidden_size + 4 * hidden_size + 3 * intermediate_size + num_heads * max_length
    )
    return dtype_bytes * per_token


def token_budget_for_memory(free_bytes: int, *, safety: float = SAFETY_FRACTION, **shape) -> int:
    """Padded tokens per batch that fit in ``safety`` x ``free_bytes`` (measured after loading).

    Rounded down to a multiple of 64; never below ``max_length``, so the longest text always
    fits in a batch of its own (if even that does not fit, the GPU is too small for the
    model at this max length and the run fails at its first batch, which comes first).
    ``shape`` is what ``activation_bytes_per_token`` takes.
    """
    if free_bytes <= 0:
        raise ValueError("free_bytes must be positive")
    per_token = activation_bytes_per_token(**shape)
    budget = int(safety * free_bytes) // per_token
    budget -= budget % BUDGET_MULTIPLE
    return max(budget, int(shape["max_length"]))


def free_device_memory(device) -> int | None:
    """Free bytes on a CUDA device (probed once, after the model is loaded); None on CPU."""
    import torch

    if not str(device).startswith("cuda"):
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


CPU_HALF_PRECISION_BUDGET_FACTOR = 2  # bf16 on an AMX CPU: 2048 tokens 7% faster than 1024


def auto_token_budget(backbone, kept_layers: int, max_length: int, default: int) -> int:
    """``token_budget_for_memory`` for a loaded backbone on CUDA; on CPU ``default`` (fp32)
    or twice that in half precision, whose faster GEMMs want larger batches (measured in
    ``benchmarks/results/extract_cpu_fusion.md``)."""
    import torch

    parameter = next(backbone.model.parameters())
    free = free_device_memory(parameter.device)
    if free is None:
        half = parameter.dtype in (torch.bfloat16, torch.float16)
        return default * CPU_HALF_PRECISION_BUDGET_FACTOR if half else default
    config = backbone.model.config  # a task wrapper shares its base model's config
    hidden = backbone.hidden_size
    intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1)
    return token_budget_for_memory(
        free,
        hidden_size=hidden,
        intermediate_size=intermediate or 4 * hidden,
        num_heads=heads,
        kept_layers=kept_layers,
        max_length=max_length,
        dtype_bytes=parameter.element_size(),
    )


# --- host <-> device copies -----------------------------------------------------------------


def to_device(tensor, device):
    """Copy a host tensor to ``device``: pinned and non-blocking on CUDA, as-is on CPU.

    A non-blocking copy from pinned memory lets the host go on (collating the next batch)
    while the copy and the kernels queued behind it run; from pageable memory it would
    silently block.
    """
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    pinned = tensor if tensor.is_pinned() else tensor.pin_memory()
    return pinned.to(device, non_blocking=True)


# --- overlap --------------------------------------------------------------------------------

_DONE = object()


class HostCopy:
    """Tensors on their way to the host as numpy arrays; ``result()`` waits for them.

    On CUDA the copy goes into pinned buffers with ``non_blocking`` and an event marks its
    end, so the host can queue the next forward pass before this copy is done; elsewhere
    the copy is made at once. ``result()`` hands out pageable copies: the pinned buffers go
    back to torch's caching host allocator instead of living in a shard being gathered.
    """

    def __init__(self, tensors: dict):
        import torch

        self.event = None
        cuda = [t for t in tensors.values() if t.device.type == "cuda"]
        if not cuda:
            self.host = {name: t.cpu() for name, t in tensors.items()}
            return
        self.host = {}
        for name, tensor in tensors.items():
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            buffer.copy_(tensor, non_blocking=True)
            self.host[name] = buffer
        self.event = torch.cuda.Event()
        self.event.record(torch.cuda.current_stream(cuda[0].device))

    def done(self) -> bool:
        return self.event is None or self.event.query()

    def result(self) -> dict:
        if self.event is None:
            return {name: t.numpy() for name, t in self.host.items()}
        self.event.synchronize()
        return {name: t.numpy().copy() for name, t in self.host.items()}


def prefetched(items: Iterable, prepare: Callable[[Any], Any], depth: int = 2) -> Iterator:
    """Yield ``prepare(item)`` for each item, in order, computed ``depth`` ahead in a thread.

    An exception in ``prepare`` is raised here, at the item that caused it. Closing the
    generator early stops the thread after at most ``depth`` extra items.
    """
    results: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                results.put((True, prepare(item)))
        except BaseException as exc:  # handed to the consumer, raised there
            results.put((False, exc))
            return
        results.put((True, _DONE))

    thread = threading.Thread(target=work, name="probe-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = results.get()
            if not ok:
                raise value
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                results.get(timeout=0.05)
            except queue.Empty:
                pass


class BackgroundWriter:
    """Run ``write(*args)`` calls in order in one background thread, at most ``depth`` queued.

    The bound keeps memory flat (a slow disk slows the producer instead of piling up
    batches). The first error stops the writer and is raised by the next ``submit`` or by
    ``close``, so a failed write is never silent. With ``enabled=False`` each call runs at
    once in the caller's thread: the same results, no overlap (tests compare the two).
    """

    def __init__(self, depth: int = 2, enabled: bool = True):
        self.enabled = enabled
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="probe-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _DONE:
                return
            if self._error is None:
                write, args = job
                try:
                    write(*args)
                except BaseException as exc:
                    self._error = exc

    def submit(self, write: Callable, *args) -> None:
        if self._error is not None:
            raise self._error
        if not self.enabled:
            write(*args)
            return
        self._queue.put((write, args))

    def close(self) -> None:
        """Wait for every queued write; raise the first error one of them hit."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif self._thread is not None and self._thread.is_alive():
            self._queue.put(_DONE)  # the caller's error wins; queued writes still finish
            self._thread.join()
        return False
