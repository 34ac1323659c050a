"""One module per task type: a head estimator, its report and the resampled metrics the
research layer's intervals use, and the few functions fit, sweep, save, predict and export
call (``make_head``, ``outputs``, ``split_report``, ``resampled``, ``tensors``...). A new task
is a new module here and a line in ``TASK_MODULES``; classification is the house's original
path (``probe.heads.estimator``)."""

from __future__ import annotations

from importlib import import_module

from probe.errors import ProbeError

TASK_MODULES = {
    "regression": "probe.heads.tasks.regression",
    "multi-label": "probe.heads.tasks.multilabel",
}


def task_module(kind: str):
    """The module of task ``kind``; a one-line error naming the known ones."""
    if kind not in TASK_MODULES:
        raise ProbeError(f"unknown task {kind!r}: {', '.join(TASK_MODULES)} or classification")
    return import_module(TASK_MODULES[kind])
