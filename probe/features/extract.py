"""One pass of a frozen backbone over a dataset -> every requested layer, both pools, cached.

The forward pass is the expensive part, so it is arranged to waste nothing: texts are
batched by length under a token budget (padding ~1.05x the real tokens instead of ~3x),
the LM head is never run (the base model is called), blocks above the highest requested
layer are never run (a hook stops the pass), and each batch is pooled and moved to CPU as
fp16 before the next, so memory stays flat in N.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probe.data.readers import TextDataset, text_sha1
from probe.errors import ProbeError
from probe.features import store
from probe.features.batching import DEFAULT_TOKEN_BUDGET, collate, length_sorted_batches
from probe.features.layers import resolve_layers
from probe.features.models import Backbone

TRUNCATION_SIDE = "right"  # keep the beginning of a text that is too long
MAX_BATCH_SIZE = 512


# --- the forward pass ---------------------------------------------------------------------


class _StopForward(Exception):
    """Raised by a hook once the highest requested layer has been computed."""


def hidden_states_by_layer(model, input_ids, attention_mask, layers: Sequence[int]) -> dict:
    """Run ``model`` only as far as needed; return {layer: hidden (B, T, D)}.

    Numbering follows ``output_hidden_states``: layer 0 is the input of block 0 (the
    embeddings), layer i < L the output of block i-1, layer L the model's final output
    (after the final norm, where there is one).
    """
    from probe.features.architecture import base_model, transformer_blocks

    blocks = transformer_blocks(model)
    top = max(layers)
    captured: dict[int, object] = {}
    handles = []

    def keep_input(layer):
        def hook(module, args, kwargs):
            captured[layer] = args[0] if args else kwargs["hidden_states"]
            if layer == top:
                raise _StopForward

        return hook

    def keep_output(layer):
        def hook(module, args, output):
            captured[layer] = output[0] if isinstance(output, tuple) else output
            if layer == top:
                raise _StopForward

        return hook

    if 0 in layers and len(blocks):
        handles.append(blocks[0].register_forward_pre_hook(keep_input(0), with_kwargs=True))
    for layer in layers:
        if 0 < layer < len(blocks):
            handles.append(blocks[layer - 1].register_forward_hook(keep_output(layer)))
    try:
        output = base_model(model)(input_ids=input_ids, attention_mask=attention_mask)
        captured[len(blocks)] = output.last_hidden_state
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return {layer: captured[layer] for layer in layers}


def pooled_batch(backbone: Backbone, token_ids, layers: Sequence[int]) -> dict[str, np.ndarray]:
    """{pool: float16 [n_layers, B, D]} for one batch of token id lists."""
    import torch

    from probe.features.pooling import POOLS

    device = next(backbone.model.parameters()).device
    input_ids, attention_mask = collate(token_ids, backbone.tokenizer.pad_id, device)
    with torch.inference_mode():
        hidden = hidden_states_by_layer(backbone.model, input_ids, attention_mask, layers)
        return {
            name: torch.stack([pool(hidden[layer], attention_mask) for layer in layers])
            .to(torch.float16)
            .cpu()
            .numpy()
            for name, pool in POOLS.items()
        }


def embed_texts(
    backbone: Backbone,
    texts: Sequence[str],
    layers: Sequence[int],
    max_length: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
) -> dict[str, np.ndarray]:
    """Features for a few texts without the cache: {pool: float32 [n_layers, N, D]}.

    Values are rounded through fp16 exactly as the cache stores them, so a head applied
    here gives the predictions it gives on cached features.
    """
    encoded = backbone.tokenizer.encode(list(texts), max_length or backbone.default_max_length)
    lengths = [len(ids) for ids in encoded.token_ids]
    if min(lengths, default=1) == 0:
        raise ProbeError("a text is empty or whitespace-only after tokenization")
    out = {
        pool: np.zeros((len(layers), len(texts), backbone.hidden_size), np.float32)
        for pool in store.POOL_NAMES
    }
    for rows in length_sorted_batches(lengths, token_budget, MAX_BATCH_SIZE):
        batch = pooled_batch(backbone, [encoded.token_ids[i] for i in rows], layers)
        for pool in store.POOL_NAMES:
            out[pool][:, rows] = batch[pool]
    return out


# --- the cached extraction ----------------------------------------------------------------


def extract(
    model: str | Backbone,
    data: TextDataset,
    layers: str | Sequence[int] = "all",
    *,
    max_length: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    quiet: bool = True,
    device: str | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    log=None,
) -> Path:
    """Cache the features of ``data`` and return the complete HDF5 file's path.

    A complete file with the same key and a superset of the layers is returned without
    loading the model; an unfinished run with the same settings is resumed.
    """
    from probe.features.models import describe_model, load_backbone

    log = log or (lambda message: None)
    info = describe_model(model)
    wanted = resolve_layers(layers, info.num_layers)
    max_length = info.default_max_length if max_length is None else int(max_length)
    if max_length < 1:
        raise ProbeError("--max-length must be at least 1")
    hashes = np.frombuffer(b"".join(text_sha1(t) for t in data.texts), np.uint8).reshape(-1, 20)
    key = store.cache_key(info.fingerprint, info.tokenizer_id, max_length, TRUNCATION_SIDE, hashes)
    final_path = Path(out) if out else store.features_dir() / f"{key}.h5"
    _ensure_writable(final_path.parent)

    existing = store.read_attrs(final_path) if final_path.is_file() else None
    if existing and existing.get("key") == key and existing.get("complete") and not force:
        stored = [int(x) for x in existing.get("layers", [])]
        if set(wanted) <= set(stored):
            log(f"cache hit: {final_path} (no model run)")
            return final_path
        wanted = sorted(set(wanted) | set(stored))  # recompute once, keep what was there

    backbone = model if isinstance(model, Backbone) else load_backbone(model, device=device)
    encoded = backbone.tokenizer.encode(data.texts, max_length)
    lengths = [len(ids) for ids in encoded.token_ids]
    if min(lengths) == 0:
        empty = sum(n == 0 for n in lengths)
        raise ProbeError(f"{empty} texts have no tokens; remove them from the data")
    if encoded.truncated:
        log(f"truncated {encoded.truncated} of {len(lengths)} texts to {max_length} tokens")
    batches = length_sorted_batches(lengths, token_budget, MAX_BATCH_SIZE)
    run = store.PartialRun(Path(f"{final_path}.partial"))
    if force:
        run.discard()
    run.start(
        {"key": key, "layers": wanted, "max_length": max_length, "n": len(lengths),
         "token_budget": token_budget, "n_batches": len(batches), "model": backbone.name}
    )  # fmt: skip
    done = run.committed_batches()
    if done:
        log(f"resuming: {len(done)} of {len(batches)} batches already committed")

    progress = _progress_bar(sum(lengths), quiet)
    progress.update(sum(lengths[i] for b in done for i in batches[b]))
    started = time.perf_counter()
    for index, rows in enumerate(batches):
        if index in done:
            continue
        token_ids = [encoded.token_ids[i] for i in rows]
        pooled = pooled_batch(backbone, token_ids, wanted)
        run.commit(
            index,
            {"rows": rows, "n_tokens": np.asarray([lengths[i] for i in rows], np.int32), **pooled},
        )
        progress.update(sum(lengths[i] for i in rows))
    progress.close()
    elapsed = time.perf_counter() - started

    store.assemble(
        run, final_path, len(batches), len(lengths), backbone.hidden_size, wanted, hashes,
        {**_attributes(backbone, info, key, data, hashes, max_length, encoded.truncated),
         "extract_seconds": round(elapsed, 3), "resumed_batches": len(done)},
        labels=data.labels, ids=data.ids,
    )  # fmt: skip
    log(f"extracted {len(lengths)} texts, {sum(lengths)} tokens in {elapsed:.1f} s")
    return final_path


def _attributes(backbone, info, key, data, hashes, max_length, truncated) -> dict:
    import torch
    import transformers

    from probe import __version__

    return {
        "key": key,
        "model": backbone.name,
        "model_fingerprint": info.fingerprint,
        "tokenizer": info.tokenizer_id,
        "causal": bool(backbone.causal),
        "n_layers_model": backbone.num_layers,
        "max_length": max_length,
        "truncation_side": TRUNCATION_SIDE,
        "truncated": int(truncated),
        "pools": list(store.POOL_NAMES),
        "dtype": "float16",
        "data_source": str(data.source),
        "skipped_empty": int(data.skipped_empty),
        "dataset_fingerprint": store.dataset_fingerprint(hashes),
        "probe_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }


def _ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe_file = folder / f".write-test-{time.time_ns()}"
        probe_file.touch()
        probe_file.unlink()
    except OSError as exc:
        raise ProbeError(f"cache directory {folder} is not writable ({exc.strerror})") from None


def _progress_bar(total_tokens: int, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total_tokens,
        unit="tok",
        unit_scale=True,
        desc="extract",
        disable=quiet or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
