"""``--compile``: fuse the element-wise work between a block's GEMMs with ``torch.compile``.

On CPU the GEMMs already run at the machine's peak; what eager PyTorch loses is the
memory-bound work between them (norms, rotary, SiLU x mul, residual adds), one kernel and
one pass over the activations each. Inductor fuses those into a few loops per block.

Regional compilation: each block's ``forward`` is compiled, not the whole model, so

- every block shares one graph (same code, parameters are graph inputs): a few seconds of
  compile instead of minutes (the whole base model took 213 s on the 2-core AVX2 VM);
- the early-stop and capture hooks stay in eager code around the blocks;
- ``dynamic=True`` means one graph for every batch shape (length-sorted batches vary both).

Measured (``benchmarks/results/extract_cpu_fusion.md``, 2-core AVX-512 CPU): 1.05-1.12x in
fp32 and 1.18x in bf16 once compiled, 6-10 s to compile; on 10k short texts that did not pay
back, hence a flag, off by default. A failure to compile (an unsupported architecture, no
C++ compiler) falls back to eager for every block with one log line: the numbers are the
same within float rounding either way, so a fallback never changes what is cached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class _Fallback:
    """Shared by all blocks of one model: the first compile error switches them all to eager."""

    def __init__(self, log: Callable[[str], None]):
        self.failed = False
        self.log = log

    def fail(self, exc: BaseException) -> None:
        from probe.errors import short_reason

        if not self.failed:
            self.failed = True
            self.log(f"--compile: torch.compile failed ({short_reason(exc)}); running eager")


def _guarded(eager: Callable, compiled: Callable, fallback: _Fallback) -> Callable:
    def forward(*args, **kwargs):
        if not fallback.failed:
            try:
                return compiled(*args, **kwargs)
            except Exception as exc:  # compile errors surface at the first call
                fallback.fail(exc)
        return eager(*args, **kwargs)

    return forward


@contextmanager
def compiled_blocks(model, enabled: bool = True, log=None) -> Iterator[bool]:
    """Within the block, every transformer block of ``model`` runs compiled (when
    ``enabled``); the eager forwards are put back on exit. Yields whether it compiled."""
    if not enabled:
        yield False
        return
    import torch

    from probe.features.architecture import find_blocks

    fallback = _Fallback(log or (lambda message: None))
    found = find_blocks(model)
    if found is None:  # ALBERT-style shared layers: nothing per block to compile
        fallback.log("--compile: this model has no list of blocks; running eager")
        yield False
        return
    blocks = list(found)
    patched = [block.__dict__.get("forward") for block in blocks]  # e.g. accelerate's hooks
    for block in blocks:
        eager = block.forward
        block.forward = _guarded(eager, torch.compile(eager, dynamic=True), fallback)
    try:
        yield True
    finally:
        for block, before in zip(blocks, patched, strict=True):
            if before is None:
                del block.forward  # the class's forward is back
            else:
                block.forward = before
