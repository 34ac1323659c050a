"""Frozen-prefix cache: epoch time with it and without it, interleaved, on one model.

The target (issue 5): SmolLM2-135M (30 blocks) with N = 1 unfrozen, every epoch after the
first at least 10x faster with the prefix cache than a full-forward epoch. On a shared CPU
the load changes by the minute, so the two kinds of epoch alternate (with, without, with,
without, ...) on the same classifier and data, and the ratio is taken per round.

    nice -n 10 python benchmarks/bench_finetune_prefix.py --model smollm2-135m --rounds 2

Writes ``benchmarks/results/finetune_prefix_<model>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from probe.data.splits import load_splits
from probe.features.models.architecture import final_norm
from probe.features.models.loading import load_backbone
from probe.finetune.classifier import FinetuneClassifier, adamw, make_plan, param_groups
from probe.finetune.training import (
    FinetuneConfig,
    attach_prefix,
    encode_split,
    evaluate,
    train_epoch,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="data/sms_spam.csv")
    parser.add_argument("--unfreeze", default="1")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args()

    splits = load_splits(data=args.data, balance=True, seed=0)
    backbone = load_backbone(args.model, device="cpu")
    config = FinetuneConfig(
        unfreeze=args.unfreeze, max_length=args.max_length, batch_size=args.batch_size
    )
    has_norm = final_norm(backbone.model) is not None
    plan = make_plan(backbone.num_layers, has_norm, config.unfreeze, None)
    labels = sorted(set(splits.train.labels))

    def encode(name):
        return encode_split(name, getattr(splits, name), backbone, labels, args.max_length)

    cached = {name: encode(name) for name in ("train", "val")}
    plain = {name: encode(name) for name in ("train", "val")}
    classifier = FinetuneClassifier(backbone.model, plan, config.pool, len(labels))
    classifier.freeze()
    optimizer = adamw(param_groups(classifier, config), config.lr_head)
    rng = np.random.default_rng(0)

    def epoch(encoded: dict) -> float:
        from tqdm import tqdm

        started = time.perf_counter()
        train_epoch(
            classifier, backbone, encoded["train"], optimizer, config, rng, tqdm(disable=True)
        )
        evaluate(classifier, backbone, encoded["val"], config.eval_token_budget)
        return time.perf_counter() - started

    started = time.perf_counter()
    for name in cached:
        attach_prefix(cached[name], backbone, plan, replace(config, prefix_cache=True), print)
    prefix_seconds = time.perf_counter() - started
    rounds = []
    for index in range(args.rounds):
        with_prefix = epoch(cached)
        without = epoch(plain)
        rounds.append(
            {
                "with_prefix_s": with_prefix,
                "without_prefix_s": without,
                "speedup": without / with_prefix,
            }
        )
        print(
            f"round {index + 1}: with prefix {with_prefix:.1f} s, without {without:.1f} s, "
            f"{without / with_prefix:.1f}x"
        )
    tokens = sum(len(ids) for split in plain.values() for ids in split.token_ids)
    result = {
        "command": f"nice -n 10 python benchmarks/bench_finetune_prefix.py --model {args.model} "
        f"--rounds {args.rounds}",
        "model": args.model,
        "unfreeze": plan.unfrozen,
        "blocks": plan.num_blocks,
        "data": {name: len(split.labels) for name, split in plain.items()},
        "tokens_per_epoch": tokens,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "prefix_seconds": prefix_seconds,
        "prefix_hit": all(split.prefix.hit for split in cached.values()),
        "rounds": rounds,
        "median_speedup": float(np.median([r["speedup"] for r in rounds])),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads",
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"finetune_prefix_{args.model.rstrip('/').split('/')[-1]}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    hit_note = " (loaded from the cache)" if result["prefix_hit"] else ""
    lines = [
        f"# Frozen-prefix cache, {args.model}, N = {plan.unfrozen} of {plan.num_blocks} blocks",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{result['data']} examples, {tokens} tokens per epoch (train + validation pass), "
        f"max_length {args.max_length}, batch size {args.batch_size}. Prefix (epoch 1's extra "
        f"cost): {prefix_seconds:.1f} s{hit_note}.",
        "",
        "| round | epoch with prefix cache (s) | full-forward epoch (s) | speed-up |",
        "|---:|---:|---:|---:|",
        *[
            f"| {i + 1} | {r['with_prefix_s']:.1f} | {r['without_prefix_s']:.1f} | "
            f"{r['speedup']:.1f}x |"
            for i, r in enumerate(rounds)
        ],
        "",
        f"Median speed-up: {result['median_speedup']:.1f}x.",
        "",
    ]
    (out / f"{stem}.md").write_text("\n".join(lines))
    print(out / f"{stem}.md")


if __name__ == "__main__":
    main()
