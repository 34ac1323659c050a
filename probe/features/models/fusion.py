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
C++ compiler) falls back to eager for every block with one line said: the numbers are the
same within float rounding either way, so a fallback never changes what is cached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from probe.messages import say


class CompileOutcome:
    """What ``--compile`` did, shared by all blocks of one model: the first compile error
    switches them all to eager. Truthy while the blocks run compiled; ``worked`` once a
    compiled call has returned (what a view records, rather than that it was asked for)."""

    def __init__(self, requested: bool):
        self.requested = requested
        self.failed = False
        self.ran_compiled = False
        self.reason: str | None = None

    def __bool__(self) -> bool:
        return self.requested and not self.failed

    @property
    def worked(self) -> bool:
        return self.requested and self.ran_compiled and not self.failed

    def fail(self, exc: BaseException) -> None:
        from probe.errors import short_reason

        if not self.failed:
            self.failed = True
            self.reason = short_reason(exc)
            say(f"--compile: torch.compile failed ({self.reason}); running eager")

    def describe(self) -> str:
        """One line for the user: compiled, fell back (and why), or had nothing to run."""
        if self.failed:
            return f"--compile: torch.compile failed ({self.reason}); ran eager"
        if self.ran_compiled:
            return "--compile: blocks ran compiled"
        return "--compile: nothing ran compiled"


def _guarded(eager: Callable, compiled: Callable, outcome: CompileOutcome) -> Callable:
    def forward(*args, **kwargs):
        if not outcome.failed:
            try:
                result = compiled(*args, **kwargs)
                outcome.ran_compiled = True
                return result
            except (RuntimeError, OSError, ImportError) as exc:
                # compile errors surface at the first call: torch's are RuntimeErrors
                # (dynamo's Unsupported, BackendCompilerFailed, InductorError,
                # CppCompileError); a missing compiler or Triton can be OSError or
                # ImportError. The eager call below raises what is wrong with the inputs.
                outcome.fail(exc)
        return eager(*args, **kwargs)

    return forward


@contextmanager
def compiled_blocks(model, enabled: bool = True) -> Iterator[CompileOutcome]:
    """Within the block, every transformer block of ``model`` runs compiled (when
    ``enabled``); the eager forwards are put back on exit. Yields a ``CompileOutcome``."""
    outcome = CompileOutcome(enabled)
    if not enabled:
        yield outcome
        return
    import torch

    from probe.features.models.architecture import find_blocks

    found = find_blocks(model)
    if found is None:  # ALBERT-style shared layers: nothing per block to compile
        outcome.failed, outcome.reason = True, "this model has no list of blocks"
        say("--compile: this model has no list of blocks; running eager")
        yield outcome
        return
    blocks = list(found)
    patched = [block.__dict__.get("forward") for block in blocks]  # e.g. accelerate's hooks
    for block in blocks:
        eager = block.forward
        block.forward = _guarded(eager, torch.compile(eager, dynamic=True), outcome)
    try:
        yield outcome
    finally:
        for block, before in zip(blocks, patched, strict=True):
            if before is None:
                del block.forward  # the class's forward is back
            else:
                block.forward = before
