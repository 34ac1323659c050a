"""One pass of a frozen backbone over a dataset -> every requested layer, both pools, cached.

The forward pass is the expensive part, so it is arranged to waste nothing: texts are
batched by length under a token budget (padding ~1.03x the real tokens instead of ~3x),
the LM head is never run (the base model is called), blocks above the highest requested
layer are never run (a hook stops the pass), and each batch is pooled and moved to CPU as
fp16 before the next, so memory stays flat in N. The pass itself, without the cache, is
``probe.features.forward``; this module decides what to compute and stores it, on this
machine. ``probe.features.commands.extract`` (``probe.extract``) sits above it and the Ray
engine, which fills the store first when asked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probe.data.readers import TextDataset, text_sha1
from probe.errors import ProbeError
from probe.features.batching import DEFAULT_TOKEN_BUDGET, length_sorted_batches
from probe.features.device import BackgroundWriter
from probe.features.forward import encode_texts, pooled_batches, reading_for
from probe.features.layers import resolve_layers
from probe.features.models.fusion import compiled_blocks
from probe.features.models.loading import Backbone
from probe.features.store import caches as store
from probe.features.store import views
from probe.features.store.rowstore import RowStore, Setting, layers_to_compute
from probe.messages import hint, progress, say, warn

TRUNCATION_SIDE = "right"  # keep the beginning of a text that is too long
NOTHING_COMPILED = "--compile: nothing ran (every row was in the store)"


# --- the cached extraction ----------------------------------------------------------------

SHARD_ROWS = 4096  # rows per committed shard: what a killed run can lose at most...
SHARD_SECONDS = 60.0  # ...or this much compute, whichever comes first


def extract(
    model: str | Backbone,
    data: TextDataset,
    layers: str | Sequence[int] = "all",
    *,
    max_length: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    token_budget: int | None = None,
    use_compile: bool = False,
    shard_rows: int = SHARD_ROWS,
    prompt: str | None = None,
    chat_template: bool = False,
    attn: str = "auto",
    trust_remote_code: bool = False,
    site: str = "block",
    positions: Sequence[str] = (),
) -> Path:
    """Cache the features of ``data`` and return its view: one complete HDF5 file.

    Only the rows the store lacks are computed, each with every layer up to the highest
    requested one and both pools (the pass computes them anyway: extract once); the rest are
    read from the store, so when every row is there no model is loaded. A killed run keeps
    its committed shards and the next one computes only the rest. A view that is already
    complete gets the labels of ``data`` if they differ (and says so).

    ``dtype`` (``--dtype``) overrides the device's compute dtype; ``token_budget`` None
    sizes batches from free memory on a GPU (1024 padded tokens on CPU); ``use_compile`` fuses
    each block with ``torch.compile`` (``probe.features.models.fusion``); whether that worked is
    recorded in the view (``compiled``, ``compile_outcome``) and warned (a silent fallback to
    eager would read as a slow machine, so even ``-q`` shows it). ``prompt`` and
    ``chat_template`` wrap each text first (``probe.features.models.prompts``) and, with
    ``trust_remote_code``, are part of the row setting; ``attn`` picks the attention kernel.
    ``site`` (``--site``: block, attn, mlp, resid_mid) and ``positions`` (``--position``:
    first, max, index:K, marker:TEXT, stored beside last and mean) are part of it where not
    the default, so default rows keep their keys.
    """
    from probe.features.models.loading import load_backbone
    from probe.features.models.prompts import check_prompt

    prompt = check_prompt(prompt)
    from probe.features.models.sites import check_reading, site_layers  # torch: lazily

    site, pools = check_reading(site, positions, use_compile)  # before any model loads
    info, wanted, max_length = resolve_request(model, layers, max_length, trust_remote_code)
    wanted = site_layers(site, layers, wanted)
    hashes = text_keys(data.texts)
    text_options = {
        "prompt": prompt,
        "chat_template": chat_template,
        "trust_remote_code": trust_remote_code,
        "site": site,
    }
    setting = row_setting(model, info, max_length, device, dtype, pools=pools, **text_options)
    key = views.view_key(setting, hashes)
    final_path = views.view_file(key, out)

    existing = store.read_attrs(final_path) if final_path.is_file() else None
    if existing and existing.get("key") == key and existing.get("complete") and not force:
        stored = [int(x) for x in existing.get("layers", [])]
        if set(wanted) <= set(stored):
            views.sync_labels(final_path, data.labels, data.ids, data.source)
            say(f"cache hit: {final_path} (no model run)")
            if use_compile:
                warn(NOTHING_COMPILED)
            return final_path
        wanted = sorted(set(wanted) | set(stored))  # the view keeps what it had

    rows = RowStore(setting)
    pending, missing, todo = views.start_view(
        final_path, rows, key, wanted, info.name, data.source, hashes, force
    )
    started = time.perf_counter()
    compiled = None
    if len(todo):
        if len(missing) < len(hashes):
            say(f"{len(hashes) - len(missing)} of {len(hashes)} texts already in the store")
        if isinstance(model, Backbone):
            backbone = model
        else:
            backbone = load_backbone(
                model, device, dtype, attn=attn, trust_remote_code=trust_remote_code
            )
            for note in backbone.notes:
                say(note)
        if site != "block":
            from probe.features.models.sites import require_site

            require_site(backbone.model, site)
        _hint_faster_dtype(backbone, dtype)
        with compiled_blocks(backbone.model, use_compile) as compiled:
            _compute_rows(
                backbone,
                rows,
                data.texts,
                hashes,
                todo,
                wanted,
                force=force,
                token_budget=token_budget,
                shard_rows=shard_rows,
            )
    elapsed = time.perf_counter() - started
    attrs = {
        **view_attributes(
            info, setting, key, data.source, elapsed, len(todo), len(hashes) - len(missing)
        ),
        **_sentence_attributes(setting, data, hashes),
        "compile_requested": bool(use_compile),
        "compiled": bool(compiled is not None and compiled.worked),
    }
    if use_compile:
        attrs["compile_outcome"] = compiled.describe() if compiled is not None else NOTHING_COMPILED
        warn(attrs["compile_outcome"])
    views.materialise(final_path, rows, hashes, wanted, attrs, data.labels, data.ids)
    pending.discard()
    if len(todo):
        say(f"extracted {len(todo)} texts in {elapsed:.1f} s")
    else:
        say(f"every text was in the store: {final_path} (no model run)")
    return final_path


def resolve_request(model, layers, max_length: int | None, trust_remote_code: bool = False):
    """What an extraction request means for this model: (model info, layers, max length);
    checked before any model is loaded."""
    from probe.features.models.loading import describe_model

    info = describe_model(model, trust_remote_code)
    wanted = resolve_layers(layers, info.num_layers)
    max_length = info.default_max_length if max_length is None else int(max_length)
    if max_length < 1:
        raise ProbeError("--max-length must be at least 1")
    return info, wanted, max_length


def text_keys(texts) -> np.ndarray:
    """uint8 [N, 20]: each text's sha1, its row's key in the store."""
    return np.frombuffer(b"".join(text_sha1(t) for t in texts), np.uint8).reshape(-1, 20)


def row_setting(model, info, max_length: int, device, dtype, pools=None, **text_options) -> Setting:
    """The setting of the rows a request computes: model, tokenizer, length, compute dtype
    and (sentence rows) the text options; rows of two settings never answer for each other."""
    from probe.features.pooling import POOL_NAMES

    dtype_name = compute_dtype_name(model, device, dtype)
    return Setting(
        info.fingerprint,
        info.tokenizer_id,
        max_length,
        TRUNCATION_SIDE,
        dtype_name,
        tuple(pools or POOL_NAMES),
        **text_options,
    )


def compute_dtype_name(model: str | Backbone, device: str | None, dtype: str | None = None) -> str:
    """The dtype the forward pass runs in: part of the row setting (fp16 rows from a GPU
    must not answer for an fp32 CPU run). Known without loading the model."""
    from probe.features.device import compute_dtype, dtype_name

    if isinstance(model, Backbone):
        loaded = dtype_name(next(model.model.parameters()).dtype)
        if dtype not in (None, "auto") and dtype != loaded:
            raise ProbeError(f"the loaded backbone computes in {loaded}, not --dtype {dtype}")
        return loaded
    from probe.features.device import surely_no_gpu

    if device in (None, "auto", "cpu") and dtype in (None, "auto") and surely_no_gpu():
        return "float32"  # compute_dtype's CPU default, known without importing torch
    from probe.features.models.loading import pick_device

    return dtype_name(compute_dtype(pick_device(device), requested=dtype))


TOKENIZE_CHUNK = 16384  # texts tokenised and length-sorted together: bounds the token ids held


def _compute_rows(
    backbone,
    rows: RowStore,
    texts,
    hashes,
    todo,
    wanted,
    *,
    force,
    token_budget,
    shard_rows,
) -> None:
    """Run the backbone over the texts at ``todo`` and commit their rows in shards.

    Each text gets the layers it lacks (``RowStore.plan``: texts with stored shallow layers
    get only the deeper ones), so the store holds each (text, layer) once. Three things
    overlap: the next chunk of texts is tokenised in a thread, the model runs on this one,
    and finished shards are written and committed by a background writer (one, in order, one
    shard queued at most; a failed write stops the run at the next shard). Within a chunk of
    ``TOKENIZE_CHUNK`` texts batches are length-sorted, so padding stays ~3% while the token
    ids held stay bounded on a 10M-text corpus. A re-run after a kill computes only the
    uncommitted rows; they may meet other batch shapes (equal to float rounding).
    """
    from probe.features.device import auto_token_budget, prefetched

    max_length = rows.setting.max_length
    if force:
        plan = [(todo, layers_to_compute(wanted, rows.setting.site))]
    else:
        plan = [(todo[group], layers) for group, layers in rows.plan(hashes[todo], wanted)]
    work = [
        (group[i : i + TOKENIZE_CHUNK], layers)
        for group, layers in plan
        for i in range(0, len(group), TOKENIZE_CHUNK)
    ]
    budgets = {  # padded tokens per batch, by the number of layers a batch keeps
        len(layers): token_budget
        or auto_token_budget(backbone, len(layers), max_length, DEFAULT_TOKEN_BUDGET)
        for _, layers in plan
    }
    bar = progress(0, "extract", unit="tok")  # the total grows as chunks are tokenised
    truncated = 0

    def tokenize(item):
        chunk, layers = item
        setting = rows.setting
        chunk_texts = [texts[i] for i in chunk]
        encoded = encode_texts(
            backbone, chunk_texts, max_length, setting.prompt, setting.chat_template
        )
        lengths = np.asarray([len(ids) for ids in encoded.token_ids], dtype=np.int64)
        if lengths.min() == 0:
            empty = int((lengths == 0).sum())
            raise ProbeError(f"{empty} texts have no tokens; remove them from the data")
        reading = reading_for(
            backbone,
            chunk_texts,
            encoded.token_ids,
            setting.site,
            setting.pools,
            setting.prompt,
            setting.chat_template,
        )
        return chunk, layers, encoded, lengths, reading

    def commit(positions: np.ndarray, lengths: np.ndarray, pooled: dict, layers) -> None:
        # truncated: exact unless a text is exactly max_length tokens long
        rows.commit(
            hashes[positions],
            lengths,
            pooled,
            layers,
            truncated=lengths >= max_length,
            prefer=force,
        )

    total_characters = sum(len(texts[i]) for i in todo)
    tokens_seen = characters_seen = 0
    with BackgroundWriter(depth=1) as writer:
        shards = _ShardBuffer(writer, commit, shard_rows)
        for chunk, layers, encoded, lengths, reading in prefetched(work, tokenize, depth=1):
            truncated += encoded.truncated
            tokens_seen += int(lengths.sum())
            characters_seen += sum(len(texts[i]) for i in chunk)
            rate = tokens_seen / max(characters_seen, 1)  # tokens per character so far
            bar.set_total(tokens_seen + rate * (total_characters - characters_seen))
            shards.start(layers)
            batches = length_sorted_batches(lengths, budgets[len(layers)])
            tokens = encoded.token_ids
            for batch, pooled in pooled_batches(backbone, tokens, batches, layers, True, reading):
                shards.add(chunk[batch], lengths[batch], pooled)
                bar.update(int(lengths[batch].sum()))
        shards.flush()
    bar.close()
    if truncated:
        say(f"truncated {truncated} of {len(todo)} texts to {max_length} tokens")


class _ShardBuffer:
    """Pooled batches gathered into shards: one goes to the writer every ``shard_rows`` rows
    or ``SHARD_SECONDS`` of compute, whichever comes first (what a killed run can lose), and
    whenever the layers computed change (a shard holds one set of layers)."""

    def __init__(self, writer: BackgroundWriter, commit, shard_rows: int):
        self.writer, self.commit, self.shard_rows = writer, commit, shard_rows
        self.pending: list[tuple[np.ndarray, np.ndarray, dict]] = []
        self.layers: list[int] = []
        self.started = time.perf_counter()

    def start(self, layers: list[int]) -> None:
        """The layers of the batches that follow."""
        if layers != self.layers:
            self.flush()
            self.layers = list(layers)

    def add(self, positions: np.ndarray, lengths: np.ndarray, pooled: dict) -> None:
        self.pending.append((positions, lengths, pooled))
        held = sum(len(p) for p, _, _ in self.pending)
        if held >= self.shard_rows or time.perf_counter() - self.started > SHARD_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            positions = np.concatenate([p for p, _, _ in self.pending])
            lengths = np.concatenate([n for _, n, _ in self.pending])
            pooled = {  # (n_layers, rows, D) per pool
                pool: np.concatenate([b[pool] for _, _, b in self.pending], axis=1)
                for pool in self.pending[0][2]
            }
            self.pending.clear()
            self.writer.submit(self.commit, positions, lengths, pooled, self.layers)
        self.started = time.perf_counter()


def _hint_faster_dtype(backbone: Backbone, requested: str | None) -> None:
    """Say once per process when this CPU would run several times faster in bf16 (AMX),
    without switching: the default must give the same rows on every CPU."""
    from probe.features.device import cpu_has_fast_bf16, dtype_name

    parameter = next(backbone.model.parameters())
    if requested in (None, "auto") and parameter.device.type == "cpu":
        if dtype_name(parameter.dtype) == "float32" and cpu_has_fast_bf16():
            hint("this CPU has AMX bf16 units: --dtype bfloat16 extracts ~3x faster")


def view_attributes(info, setting: Setting, key: str, source, seconds, computed, reused) -> dict:
    """What every view records about itself (word views add their unit and pool): where its
    rows came from and what this run computed."""
    return {
        "key": key,
        "setting": setting.key,
        "model": info.name,
        "model_fingerprint": info.fingerprint,
        "tokenizer": info.tokenizer_id,
        "n_layers_model": info.num_layers,
        "max_length": setting.max_length,
        "truncation_side": setting.truncation_side,
        "compute_dtype": setting.compute_dtype,
        "dtype": "float16",
        "data_source": str(source),
        "extract_seconds": round(seconds, 3),
        "computed_rows": int(computed),
        "reused_rows": int(reused),
    }


def _sentence_attributes(setting: Setting, data, hashes) -> dict:
    """A sentence view's own: pools, text options, labels, versions (attributes, never key
    parts: a new torch does not invalidate the store)."""
    import torch
    import transformers

    from probe import __version__

    return {
        "pools": list(setting.pools),
        **text_format(setting),
        "labels_source": str(data.source),
        "skipped_empty": int(data.skipped_empty),
        "dataset_fingerprint": views.dataset_fingerprint(hashes),
        "probe_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }


def text_format(setting_or_meta) -> dict:
    """``prompt``/``chat_template``/``trust_remote_code`` where used ({} otherwise): what a
    view and a head fitted on it record, so ``probe predict`` wraps texts the same way."""
    from probe.features.store.rowstore import OPTIONAL_DEFAULTS

    get = setting_or_meta.get if isinstance(setting_or_meta, dict) else setting_or_meta.__dict__.get
    values = {name: get(name, default) for name, default in OPTIONAL_DEFAULTS.items()}
    return {
        name: value if isinstance(value, str) else bool(value)  # h5py reads numpy bools
        for name, value in values.items()
        if value != OPTIONAL_DEFAULTS[name]
    }
