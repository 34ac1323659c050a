"""Extraction throughput per token budget: which batch size suits this machine.

For each budget: plan ``length_sorted_batches`` over the first N texts and time
``pooled_batch`` (all layers, both pools) over every batch; no cache writes. Prints real
tokens/s per budget; the figures in ``benchmarks/results/extract_token_budget.md`` came
from it (run several times: single timings on a shared VM swing by about +-10%).

    python benchmarks/bench_token_budget.py --n 1000 512 768 1024 2048
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("budgets", type=int, nargs="+", help="padded tokens per batch")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="data/sms_spam.csv")
    parser.add_argument("--n", type=int, default=1000, help="first N texts")
    args = parser.parse_args()

    from probe.data.readers import read_dataset
    from probe.features.batching import length_sorted_batches
    from probe.features.forward import pooled_batch
    from probe.features.models.loading import load_backbone

    backbone = load_backbone(args.model, device="cpu")
    texts = read_dataset(args.data).texts[: args.n]
    token_ids = backbone.tokenizer.encode(texts, backbone.default_max_length).token_ids
    lengths = [len(ids) for ids in token_ids]
    layers = list(range(backbone.num_layers + 1))
    pooled_batch(backbone, token_ids[:64], layers)  # warm-up
    for budget in args.budgets:
        batches = length_sorted_batches(lengths, budget)
        started = time.perf_counter()
        for rows in batches:
            pooled_batch(backbone, [token_ids[i] for i in rows], layers)
        rate = sum(lengths) / (time.perf_counter() - started)
        print(f"budget {budget}: {len(batches)} batches, {rate:.1f} real tokens/s", flush=True)


if __name__ == "__main__":
    main()
