"""Extraction on Ray Data (``probe extract --engine ray``, extra ``probe[distributed]``).

The same forward pass as the single-process path, spread over a pool of Ray actors:

    driver: texts the store lacks, longest first --> ray.data dataset (blocks of rows)
    actors: one backbone each (one GPU each where the cluster has GPUs); tokenise a block,
            batch it by length under the token budget, pool --> fp16 [rows, layers, D]
    driver: each finished block --> one shard + index entry (the row store's commit)

Only the driver writes to the store, so the store's file lock and atomic shards are all
the coordination there is. Ray restarts a killed actor and retries its block
(``max_restarts``/``max_task_retries``), so a lost worker costs one block; a lost driver
costs the uncommitted blocks, and a rerun skips every committed row.

Ray is optional: without it ``--engine ray`` is a one-line error naming the extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from probe.errors import ProbeError, is_bare_exception, one_line
from probe.features.pooling import POOL_NAMES
from probe.messages import progress, say

RAY_MISSING = "--engine ray needs Ray, which is not installed: pip install 'probe[distributed]'"
ROWS_PER_BLOCK = 256  # texts per Ray block: one task, one committed shard


def import_ray():
    """The ``ray`` module with Ray Data, or a one-line error naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs ray[data])
    except ImportError:
        raise ProbeError(RAY_MISSING) from None
    return ray


# --- the actor ------------------------------------------------------------------------------


class EmbedBlock:
    """Callable class for ``map_batches``: Ray makes one per actor, so one backbone each."""

    def __init__(
        self,
        model: str,
        layers: Sequence[int],
        max_length: int,
        token_budget: int | None,
        device: str,
        dtype: str,
        use_compile: bool = False,
    ):
        from contextlib import ExitStack

        from probe.features.batching import DEFAULT_TOKEN_BUDGET
        from probe.features.device import auto_token_budget, dtype_name
        from probe.features.models.fusion import compiled_blocks
        from probe.features.models.loading import load_backbone

        self.backbone = load_backbone(model, device=device, dtype=dtype)
        loaded = dtype_name(next(self.backbone.model.parameters()).dtype)
        if loaded != dtype:
            raise ProbeError(f"a Ray worker computes in {loaded}, the driver planned {dtype}")
        self.layers = list(layers)
        self.max_length = max_length
        self.token_budget = token_budget or auto_token_budget(
            self.backbone, len(self.layers), max_length, DEFAULT_TOKEN_BUDGET
        )  # sized from this worker's own free GPU memory
        self._compiled = ExitStack()  # compiled for the actor's life: one compile per actor
        self._compiled.enter_context(compiled_blocks(self.backbone.model, use_compile))

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{position, text} -> {position, n_tokens, last, mean}; pools as fp16 (rows, L, D)."""
        from probe.features.batching import length_sorted_batches
        from probe.features.forward import pooled_batches

        backbone = self.backbone
        token_ids = backbone.tokenizer.encode(list(block["text"]), self.max_length).token_ids
        lengths = np.asarray([len(ids) for ids in token_ids], np.int32)
        if lengths.min(initial=1) == 0:
            raise ProbeError(f"{int((lengths == 0).sum())} texts have no tokens; remove them")
        shape = (len(lengths), len(self.layers), backbone.hidden_size)
        out = {"position": np.asarray(block["position"], np.int64), "n_tokens": lengths}
        out.update({pool: np.empty(shape, np.float16) for pool in POOL_NAMES})
        batches = length_sorted_batches(lengths, self.token_budget)
        for rows, pooled in pooled_batches(backbone, token_ids, batches, self.layers):
            for pool in POOL_NAMES:
                out[pool][rows] = pooled[pool].transpose(1, 0, 2)  # (L, B, D) -> (B, L, D)
        return out


# --- the driver -----------------------------------------------------------------------------


def fill_store_on_ray(
    model: str,
    data,
    layers="all",
    *,
    max_length: int | None = None,
    token_budget: int | None = None,
    dtype: str | None = None,
    use_compile: bool = False,
    workers: int | None = None,
    address: str | None = None,
    rows_per_block: int | None = None,
    on_block: Callable[[], None] | None = None,
) -> str:
    """Compute on Ray the rows of ``data`` the store lacks; return their compute dtype.

    Afterwards the local pass (``probe.features.extract.extract``) finds every row present
    and only builds the view. ``on_block`` runs after each commit (tests use it to kill a
    worker mid-run).
    ``token_budget`` None: each worker sizes its batches (from free memory on a GPU);
    ``dtype`` overrides the cluster's compute dtype (``--dtype``). ``workers`` None: one per
    GPU the cluster has, else one per ``CPU_GROUP`` CPUs (``default_workers``).
    """
    from probe.features.extract import TRUNCATION_SIDE, resolve_request, text_keys
    from probe.features.models.loading import Backbone
    from probe.features.store.rowstore import RowStore, Setting
    from probe.features.store.views import distinct_positions

    if isinstance(model, Backbone):
        raise ProbeError("--engine ray loads the model in each worker: pass a model name or path")
    info, wanted, max_length = resolve_request(model, layers, max_length)
    hashes = text_keys(data.texts)
    ray, started = start_ray(address, workers)
    try:
        workers = check_placement(ray.cluster_resources(), workers)
        device, dtype = cluster_device_and_dtype(ray, dtype)
        setting = Setting(info.fingerprint, info.tokenizer_id, max_length, TRUNCATION_SIDE, dtype)
        rows = RowStore(setting)
        todo = distinct_positions(hashes, rows.missing(hashes, wanted))
        if not len(todo):
            return dtype
        rows_per_block = rows_per_block or block_rows(len(todo), workers)
        say(f"ray: {len(todo)} of {len(hashes)} texts to compute on {workers} {device} workers")
        # each text gets the layers it lacks (one Ray pass per pattern): stored once
        for group, computed in rows.plan(hashes[todo], wanted):

            def commit(positions, n_tokens, pooled, computed=computed):
                rows.commit(
                    hashes[positions],
                    n_tokens,
                    pooled,
                    computed,
                    truncated=np.asarray(n_tokens) >= max_length,
                )
                if on_block is not None:
                    on_block()

            with progress(len(group), "extract (ray)", unit="text") as bar:
                embed_on_ray(
                    model,
                    data.texts,
                    todo[group],
                    computed,
                    commit,
                    max_length=max_length,
                    dtype=dtype,
                    device=device,
                    token_budget=token_budget,
                    workers=workers,
                    rows_per_block=rows_per_block,
                    progress=bar,
                    use_compile=use_compile,
                )
        return dtype
    finally:
        if started:
            ray.shutdown()


def fill_for_view(
    model,
    data,
    layers,
    *,
    force: bool = False,
    prompt: str | None = None,
    chat_template: bool = False,
    trust_remote_code: bool = False,
    **options,
) -> str:
    """``probe.extract(..., engine="ray")``'s first step (``probe.features.commands``): the
    rows the store lacks, computed on Ray; returns the cluster's compute dtype, which the view
    step then uses (a CPU driver must not recompute a GPU cluster's rows in its own dtype).
    Options the workers cannot honour are refused before anything starts."""
    if force:
        raise ProbeError("--force is not supported with --engine ray; run without it")
    if prompt or chat_template or trust_remote_code:
        raise ProbeError(
            "--prompt, --chat-template and --trust-remote-code run with --engine local only"
        )
    return fill_store_on_ray(model, data, layers, **options)


Sink = Callable[[np.ndarray, np.ndarray, dict], None]  # (positions, n_tokens, {pool: (L,n,D)})


def block_rows(n_rows: int, workers: int) -> int:
    """Rows per block: ``ROWS_PER_BLOCK``, less when that would leave a worker idle.

    Four blocks per worker at least, so a small job still spreads over every worker and a
    killed worker's retry is a small share of the run.
    """
    return max(1, min(ROWS_PER_BLOCK, -(-n_rows // (4 * workers))))


def embed_on_ray(
    model: str,
    texts: Sequence[str],
    positions: np.ndarray,
    layers: Sequence[int],
    sink: Sink,
    *,
    max_length: int,
    dtype: str,
    device: str = "cpu",
    token_budget: int | None = None,
    workers: int = 2,
    rows_per_block: int = ROWS_PER_BLOCK,
    progress=None,
    use_compile: bool = False,
) -> int:
    """Embed ``texts[positions]`` on the running Ray cluster; hand each block to ``sink``.

    Blocks reach ``sink`` in completion order, each exactly once (a retried block is
    delivered once, after its retry). Returns the number of rows delivered.
    """
    ray = import_ray()
    import pandas as pd

    positions = np.asarray(positions, np.int64)
    if not len(positions):
        return 0
    by_length = positions[np.argsort([-len(texts[i]) for i in positions], kind="stable")]
    frame = pd.DataFrame({"position": by_length, "text": [texts[i] for i in by_length]})
    blocks = [frame.iloc[i : i + rows_per_block] for i in range(0, len(frame), rows_per_block)]
    dataset = ray.data.from_pandas(blocks)
    # Ray Data's actor pools default to max_restarts=-1 and max_task_retries=-1: a killed
    # actor is restarted (reloading its backbone) and the block it held runs again.
    mapped = dataset.map_batches(
        EmbedBlock,
        fn_constructor_kwargs={
            "model": model,
            "layers": list(layers),
            "max_length": max_length,
            "token_budget": token_budget,
            "device": device,
            "dtype": dtype,
            "use_compile": use_compile,
        },
        batch_size=rows_per_block,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        **({"num_gpus": 1} if device.startswith("cuda") else {"num_cpus": 1}),
    )
    delivered = 0
    try:
        for block in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            pooled = {
                pool: np.ascontiguousarray(block[pool].transpose(1, 0, 2)) for pool in POOL_NAMES
            }
            sink(block["position"], block["n_tokens"], pooled)
            delivered += len(block["position"])
            if progress is not None:
                progress.update(len(block["position"]))
    except ray.exceptions.RayError as exc:
        raise ProbeError(f"Ray extraction failed: {_root_message(exc)}") from None
    return delivered


CPU_GROUP = 4  # CPUs per CPU worker: one backbone uses a few cores well, not dozens


def default_workers(resources: dict) -> int:
    """One worker per GPU of the cluster; without GPUs one per ``CPU_GROUP`` CPUs, one CPU
    left to the driver and Ray's own tasks."""
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return gpus
    return max(1, (int(resources.get("CPU", 1)) - 1) // CPU_GROUP)


def check_placement(resources: dict, workers: int | None) -> int:
    """The worker count to use, or a one-line error when the cluster cannot hold it: an
    actor Ray cannot place waits forever, so the request is checked before it is made."""
    if workers is None:
        return default_workers(resources)
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if gpus and workers > gpus:
        raise ProbeError(
            f"--workers {workers} needs {workers} GPUs (one each); the cluster has {gpus}: "
            f"use --workers {gpus} or leave --workers out"
        )
    room = max(cpus - 1, 1)  # one CPU for the driver's and Ray Data's own tasks
    if not gpus and workers > room:
        raise ProbeError(
            f"--workers {workers} needs {workers + 1} CPUs (one each, one for Ray's own "
            f"tasks); the cluster has {cpus}: use --workers {room} or leave --workers out"
        )
    return workers


def cluster_device_and_dtype(ray, requested: str | None = None) -> tuple[str, str]:
    """("cuda", bf16/fp16 as a GPU worker reports it) on a cluster with GPUs, else CPU fp32;
    a ``requested`` dtype (``--dtype``) replaces the default (the driver may have no GPU)."""
    from probe.features.device import compute_dtype, dtype_name

    device = "cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu"
    if requested not in (None, "auto") or device == "cpu":
        return device, dtype_name(compute_dtype(device, requested=requested))

    @ray.remote(num_gpus=1)
    def gpu_dtype() -> str:
        return dtype_name(compute_dtype("cuda"))

    return "cuda", ray.get(gpu_dtype.remote())


HEALTH_CHECKS = {  # a loaded small machine answers late: give its raylet ~2 min, not ~15 s
    "health_check_period_ms": 5000,
    "health_check_timeout_ms": 20000,
    "health_check_failure_threshold": 10,
}


def start_ray(address: str | None, workers: int | None):
    """Join ``address`` or start a local Ray; True if we started one.

    A local Ray gets one CPU per worker plus one for the driver and Ray Data's own tasks
    (every CPU when ``workers`` is None), and patient health checks. Start-up fails now and
    then on a loaded machine (the raylet's 30 s start-up wait, missed heartbeats), so a
    failed start is retried once, then reported in one line.
    """
    import logging

    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # probe prints its own progress lines
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # probe prints its own progress
    kwargs = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "runtime_env": worker_environment(address),
    }
    if address is None:
        import os

        cpus = os.cpu_count() or 1
        kwargs["num_cpus"] = cpus if workers is None else workers + 1
        kwargs["_system_config"] = HEALTH_CHECKS
    # a failed start: RayError, OSError (ConnectionError, TimeoutError), RuntimeError and
    # ValueError from ray.init, and a bare Exception for the raylet's start-up timeout
    failed = (ray.exceptions.RayError, OSError, RuntimeError, ValueError)
    for attempt in (1, 2):
        try:
            ray.init(address=address, **kwargs)
            return ray, True
        except Exception as exc:  # a bare one included: see ``failed``; the rest are bugs
            if not (is_bare_exception(exc) or isinstance(exc, failed)):
                raise
            ray.shutdown()
            if attempt == 2 or address is not None:
                raise ProbeError(
                    f"Ray did not start at {address or 'local'} "
                    f"({one_line(_root_message(exc), 80)}); on a busy machine try again, or "
                    "start it once with 'ray start --head' and pass --address auto"
                ) from None
    raise AssertionError("unreachable")


def worker_environment(address: str | None) -> dict:
    """Workers use the driver's store and models folder (converted GGUF weights, fingerprint
    memos) instead of their own: always on a local Ray; on a cluster only the ones the user
    named (``PROBE_CACHE``, ``PROBE_MODELS``), i.e. folders the nodes share."""
    import os

    from probe.files import cache_root, models_root

    places = {"PROBE_CACHE": cache_root, "PROBE_MODELS": models_root}
    named = {name: where for name, where in places.items() if os.environ.get(name)}
    chosen = named if address is not None else places
    if not chosen:
        return {}
    return {"env_vars": {name: str(where().resolve()) for name, where in chosen.items()}}


def _root_message(exc: BaseException) -> str:
    """The user-facing line of a Ray error: our ProbeError's text where there is one."""
    cause = exc
    while getattr(cause, "cause", None) is not None and cause.cause is not cause:
        cause = cause.cause
    if isinstance(cause, ProbeError):
        return str(cause)
    from probe.errors import short_reason

    return short_reason(cause)
