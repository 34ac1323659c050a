"""Partial-unfreeze fine-tuning: the end-to-end baseline the probe is measured against.

The last N blocks below the head (and the final norm, when the head reads the final layer)
train together with a linear head on the pooled hidden state of layer K; everything else is
frozen, embeddings included (they are tied to the LM head of GPT-2 and SmolLM2, and training
them would be a different experiment). Blocks above K are dropped: never run, never trained.

The frozen blocks below the first trainable one run once per example, not once per epoch
(:mod:`probe.finetune.prefix`), so an epoch costs the N trainable blocks only. Frozen modules run in
eval mode (no dropout): that is what makes a stored prefix equal to a recomputed one; the
trainable blocks use their configured dropout. The trained module, its plan of blocks and
its AdamW groups are :mod:`probe.finetune.classifier`; this module runs the epochs.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from probe.data.readers import TextDataset, text_sha1
from probe.errors import ProbeError
from probe.features.batching import collate, length_sorted_batches
from probe.features.models import architecture
from probe.features.pooling import POOL_NAMES, check_pool
from probe.finetune.classifier import (
    FinetuneClassifier,
    FinetuneConfig,
    Plan,
    adamw,
    make_plan,
    param_groups,
)
from probe.finetune.forgetting import compare_checks, language_check
from probe.finetune.head_init import starting_head
from probe.finetune.prefix import DTYPES, Prefix, load_or_compute_prefix, prefix_key
from probe.jsonable import to_jsonable
from probe.messages import progress, say

# --- data -----------------------------------------------------------------------------------


@dataclass
class EncodedSplit:
    name: str
    token_ids: list[list[int]]
    labels: np.ndarray  # (N,) int64 codes into label_names
    text_hashes: np.ndarray  # (N, 20) uint8
    max_length: int = 0
    truncated: int = 0  # texts cut to max_length
    prefix: Prefix | None = None


def encode_split(name, dataset: TextDataset, backbone, label_names, max_length) -> EncodedSplit:
    encoded = backbone.tokenizer.encode(dataset.texts, max_length)
    empty = sum(len(ids) == 0 for ids in encoded.token_ids)
    if empty:
        raise ProbeError(f"{empty} {name} texts have no tokens; remove them from the data")
    code = {label: i for i, label in enumerate(label_names)}
    unknown = sorted(set(dataset.labels) - set(code))
    if unknown:
        raise ProbeError(f"{name} labels not seen in train: {', '.join(unknown[:5])}")
    hashes = np.frombuffer(b"".join(text_sha1(t) for t in dataset.texts), np.uint8)
    return EncodedSplit(
        name,
        encoded.token_ids,
        np.asarray([code[v] for v in dataset.labels], np.int64),
        hashes.reshape(-1, 20),
        max_length,
        encoded.truncated,
    )


def attach_prefix(split: EncodedSplit, backbone, plan: Plan, config) -> None:
    """Load or compute the frozen prefix of ``split`` (once per model, texts and layer)."""
    if split.prefix is not None or plan.first_trainable == 0 or not config.prefix_cache:
        return
    key = prefix_key(
        backbone.fingerprint,
        backbone.tokenizer.name,
        split.max_length,
        split.text_hashes,
        plan.first_trainable,
        config.prefix_dtype,
    )
    split.prefix = load_or_compute_prefix(
        backbone.model,
        split.token_ids,
        backbone.tokenizer.pad_id,
        plan.first_trainable,
        key,
        config.prefix_dtype,
    )


def _inputs(classifier, backbone, split: EncodedSplit, rows, device):
    input_ids, mask = collate([split.token_ids[i] for i in rows], backbone.tokenizer.pad_id, device)
    start = None
    if split.prefix is not None:
        start = split.prefix.batch(rows, classifier.head.weight.dtype, device)  # (B, T, D)
    return input_ids, mask, start


# --- training and evaluation ----------------------------------------------------------------


def evaluate(classifier, backbone, split: EncodedSplit, token_budget: int) -> tuple:
    """(logits (N, C) float32, mean loss) in length-sorted batches, no grad."""
    device = classifier.head.weight.device
    lengths = [len(ids) for ids in split.token_ids]
    logits = np.zeros((len(lengths), classifier.head.out_features), np.float32)
    was_training = classifier.training
    classifier.eval()
    with torch.inference_mode():
        for rows in length_sorted_batches(lengths, token_budget, max_batch_size=256):
            input_ids, mask, start = _inputs(classifier, backbone, split, rows, device)
            logits[rows] = classifier(input_ids, mask, start).float().cpu().numpy()
    classifier.train(was_training)
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(split.labels))
    return logits, float(loss)


def train_epoch(classifier, backbone, split, optimizer, config, rng, progress) -> dict:
    """One pass over shuffled length-bucketed batches; returns loss and throughput."""
    device = classifier.head.weight.device
    lengths = np.asarray([len(ids) for ids in split.token_ids])
    shuffle = rng.permutation(len(lengths))  # ties in length land in new batches each epoch
    batches = [
        shuffle[rows]
        for rows in length_sorted_batches(
            lengths[shuffle], config.batch_size * max(lengths), config.batch_size
        )
    ]
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    classifier.train_mode()
    total_loss, tokens, started = 0.0, 0, time.perf_counter()
    for index in rng.permutation(len(batches)):
        rows = batches[index]
        input_ids, mask, start = _inputs(classifier, backbone, split, rows, device)
        logits = classifier(input_ids, mask, start)  # (B, C)
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(split.labels[rows]).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        optimizer.step()
        total_loss += loss.item() * len(rows)
        tokens += int(lengths[rows].sum())
        rate = tokens / max(time.perf_counter() - started, 1e-9)
        progress.update(len(rows))
        progress.set_postfix(loss=f"{loss.item():.4f}", tok_s=f"{rate:,.0f}", refresh=False)
    classifier.eval()
    seconds = time.perf_counter() - started
    return {
        "train_loss": total_loss / len(lengths),
        "train_seconds": seconds,
        "tokens_per_s": tokens / max(seconds, 1e-9),
    }


def fit_epochs(classifier, backbone, encoded: dict, optimizer, config) -> tuple:
    """Train ``config.epochs`` epochs, validating after each; leave the best epoch's weights.

    Returns (history rows, prefix info). The frozen prefix of train and val is loaded or
    computed inside epoch 1's time: it is that epoch's cost.
    """
    rng = np.random.default_rng(config.seed)
    plan = classifier.plan
    history, prefix_info, best_key, best_state = [], {}, None, None
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        for name in ("train", "val"):
            attach_prefix(encoded[name], backbone, plan, config)
            prefix = encoded[name].prefix
            if prefix is not None and name not in prefix_info:
                prefix_info[name] = {
                    "seconds": prefix.seconds,
                    "hit": prefix.hit,
                    "computed_seconds": prefix.computed_seconds,
                }
        bar = progress(len(encoded["train"].labels), f"epoch {epoch}/{config.epochs}", unit="ex")
        stats = train_epoch(classifier, backbone, encoded["train"], optimizer, config, rng, bar)
        bar.close()
        val_logits, val_loss = evaluate(
            classifier, backbone, encoded["val"], config.eval_token_budget
        )
        val_accuracy = float((val_logits.argmax(1) == encoded["val"].labels).mean())
        row = {
            "epoch": epoch,
            **stats,
            "val_accuracy": val_accuracy,
            "val_loss": val_loss,
            "seconds": time.perf_counter() - epoch_started,
        }
        history.append(row)
        say(
            f"epoch {epoch}: train loss {stats['train_loss']:.4f}, val acc {val_accuracy:.4f}, "
            f"val loss {val_loss:.4f}, {row['seconds']:.1f} s"
        )
        if best_key is None or (val_accuracy, -val_loss) > best_key:
            best_key, best_state = (val_accuracy, -val_loss), _trainable_state(classifier)
            best_epoch = epoch
        elif config.patience and epoch - best_epoch >= config.patience:
            break  # early stopping: the best epoch's weights are restored below
    _restore(classifier, best_state)
    return history, prefix_info


@dataclass
class FinetuneResult:
    report: dict
    classifier: FinetuneClassifier
    backbone: object
    label_names: list[str]
    max_length: int
    test_logits: np.ndarray | None = field(default=None, repr=False)


def finetune(model, splits, config: FinetuneConfig, device=None) -> FinetuneResult:
    """Fine-tune ``model`` (a ``--model`` spec or a loaded Backbone, trained in place)."""
    from probe.features.models.loading import Backbone, load_backbone, module_fingerprint

    started = time.perf_counter()
    if config.prefix_dtype not in DTYPES:
        raise ProbeError(f"--prefix-dtype must be one of {', '.join(DTYPES)}")
    if config.epochs < 1 or config.batch_size < 1:
        raise ProbeError("--epochs and --batch-size must be at least 1")
    check_pool(config.pool)  # before the model loads: a typo costs nothing
    if config.pool not in POOL_NAMES:  # positions are read from a cache, not fine-tuned
        raise ProbeError(f"unknown pool '{config.pool}'; choose {' or '.join(POOL_NAMES)}")
    backbone = model if isinstance(model, Backbone) else load_backbone(model, device=device)
    backbone.model.float()  # AdamW on fp16 weights loses the small updates: train in fp32
    plan = make_plan(
        backbone.num_layers,
        architecture.final_norm(backbone.model) is not None,
        config.unfreeze,
        config.layer,
    )
    device = next(backbone.model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(config.seed)

    label_names = sorted(set(splits.train.labels))
    if len(label_names) < 2:
        raise ProbeError(f"the training data has one class ({label_names[0]}); need at least 2")
    max_length = int(config.max_length or backbone.default_max_length)
    encoded = {
        name: encode_split(name, getattr(splits, name), backbone, label_names, max_length)
        for name in ("train", "val", "test")
    }
    truncated = sum(split.truncated for split in encoded.values())
    if truncated:
        say(
            f"truncated {truncated} of {sum(len(s.labels) for s in encoded.values())} texts "
            f"to {max_length} tokens"
        )
    classifier = FinetuneClassifier(backbone.model, plan, config.pool, len(label_names)).to(device)
    classifier.freeze()
    start = starting_head(
        config.init_head, backbone, plan, config.pool, label_names, splits, max_length
    )  # before any weight moves: the probe's features are keyed by these weights
    if start.weight is not None:
        with torch.no_grad():
            classifier.head.weight.copy_(torch.as_tensor(start.weight))
            classifier.head.bias.copy_(torch.as_tensor(start.bias))
    groups = param_groups(classifier, config)
    optimizer = adamw(groups, config.lr_head)
    trainable_params = sum(p.numel() for g in groups for p in g["params"])

    before = language_check(backbone) if config.forgetting_check else None
    history, prefix_info = fit_epochs(classifier, backbone, encoded, optimizer, config)
    best = max(history, key=lambda row: (row["val_accuracy"], -row["val_loss"]))

    test_started = time.perf_counter()
    attach_prefix(encoded["test"], backbone, plan, config)
    test_logits, test_loss = evaluate(
        classifier, backbone, encoded["test"], config.eval_token_budget
    )
    test_seconds = time.perf_counter() - test_started
    after = language_check(backbone) if config.forgetting_check else None
    if plan.unfrozen > 0:  # the weights changed: nothing may reuse caches keyed by the old ones
        backbone.fingerprint = module_fingerprint(backbone.model)

    metrics = classification_metrics(encoded["test"].labels, test_logits.argmax(1), label_names)
    metrics["loss"] = test_loss
    report = {
        "model": backbone.name,
        "data": {name: len(split.labels) for name, split in encoded.items()},
        "truncated": {name: split.truncated for name, split in encoded.items()},
        "label_names": label_names,
        "unfreeze": plan.unfrozen,
        "unfreeze_arg": str(config.unfreeze),
        "layer": plan.layer,
        "num_blocks": plan.num_blocks,
        "final_norm_trainable": plan.final_norm_trainable,
        "pool": config.pool,
        "max_length": max_length,
        "config": asdict(config),
        "init_head": start.info,
        "prefix_cache": bool(config.prefix_cache and plan.first_trainable > 0),
        "prefix": prefix_info,
        "trainable_params": trainable_params,
        "param_groups": [
            {
                "name": g["name"],
                "lr": g["lr"],
                "weight_decay": g["weight_decay"],
                "params": sum(p.numel() for p in g["params"]),
            }
            for g in groups
        ],
        "best_epoch": best["epoch"],
        "epochs": history,
        "test": metrics,
        "forgetting": compare_checks(before, after),
        "time": {
            "epochs_seconds": [row["seconds"] for row in history],
            "test_seconds": test_seconds,
            "total_seconds": time.perf_counter() - started,
        },
        "peak_memory_mb": peak_memory_mb(device),
        "device": str(device),
    }
    return FinetuneResult(report, classifier, backbone, label_names, max_length, test_logits)


def _trainable_state(classifier) -> dict[str, torch.Tensor]:
    return {
        name: param.detach().clone()
        for name, param in classifier.named_parameters()
        if param.requires_grad
    }


def _restore(classifier, state: dict[str, torch.Tensor]) -> None:
    params = dict(classifier.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def classification_metrics(codes_true, codes_pred, label_names: list[str]) -> dict:
    """``probe.heads.metrics.classification_report`` on class codes: the probe's report format."""
    from probe.heads.metrics import classification_report

    names = np.asarray(label_names, dtype=object)
    return classification_report(names[codes_true], names[codes_pred], label_names)


def peak_memory_mb(device) -> float:
    """GPU: peak allocated by torch since the run began; CPU: the process's peak RSS."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- the head, saved for probe predict -------------------------------------------------------


def unfold_binary(head: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    """(C, D), (C,) as a probe head stores them: one row for two classes, since
    softmax([z0, z1])[1] == sigmoid(z1 - z0)."""
    weight = head.weight.detach().cpu().numpy().astype(np.float64)
    bias = head.bias.detach().cpu().numpy().astype(np.float64)
    if weight.shape[0] == 2:
        return weight[1:] - weight[:1], bias[1:] - bias[:1]
    return weight, bias


def save_finetuned(result: FinetuneResult, out_dir: str | Path) -> Path:
    """The fine-tuned backbone and its head, servable by ``probe predict --head DIR/head.json``.

    Layout: ``DIR/model/`` (save_pretrained, plus tokenizer files for HF tokenizers),
    ``DIR/head.json`` + ``head.safetensors``, ``DIR/finetune.json`` (the report). The model
    has its own folder because a model's fingerprint hashes every ``.safetensors`` file in
    its directory, the head's included. The whole backbone is saved, blocks above the head's
    layer too (unchanged), so its layer numbering is the original's.
    """
    import json

    from transformers.utils import logging as transformers_logging

    from probe.features.models.loading import model_fingerprint
    from probe.features.models.tokenize import HFTokenizer
    from probe.heads.persistence import classifier_from_weights, save_head

    transformers_logging.disable_progress_bar()  # our output stays one report
    out = Path(out_dir)
    model_dir = out / "model"
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        backbone = result.backbone
        backbone.model.save_pretrained(model_dir)
        if isinstance(backbone.tokenizer, HFTokenizer):
            backbone.tokenizer.tokenizer.save_pretrained(model_dir)
    except OSError as exc:
        raise ProbeError(f"cannot write {model_dir}: {exc.strerror or exc}") from None
    weight, bias = unfold_binary(result.classifier.head)
    classifier = classifier_from_weights(weight, bias, list(result.label_names))
    meta = {
        "model": str(model_dir.resolve()),  # absolute: the head may be used from elsewhere
        "model_fingerprint": model_fingerprint(str(model_dir)),
        "layer": result.report["layer"],
        "pool": result.report["pool"],
        "max_length": result.max_length,
        "label_names": list(result.label_names),
        "finetuned_from": backbone.name,
        "metrics": result.report["test"],
    }
    head_path = out / "head.json"
    save_head(head_path, classifier, meta)
    (out / "finetune.json").write_text(json.dumps(to_jsonable(result.report), indent=2))
    return head_path
