"""Where the time of one extraction batch goes: torch profiler table, by operator.

Used for the analysis in ``benchmarks/results/extract_smollm2_sms.md`` (GEMMs ~82% of a
batch, the rest element-wise work and attention). Prints the table; writes nothing.

    python benchmarks/profile_extract.py --model smollm2-135m --token-budget 1024
"""

from __future__ import annotations

import argparse

from probe.features.batching import DEFAULT_TOKEN_BUDGET


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="data/sms_spam.csv")
    parser.add_argument("--n", type=int, default=400, help="first N texts to plan batches from")
    parser.add_argument("--token-budget", type=int, default=DEFAULT_TOKEN_BUDGET)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from torch.profiler import ProfilerActivity, profile

    from probe.data.readers import read_dataset
    from probe.features.batching import length_sorted_batches
    from probe.features.forward import pooled_batch
    from probe.features.models.loading import load_backbone

    backbone = load_backbone(args.model, device="cpu")
    texts = read_dataset(args.data).texts[: args.n]
    token_ids = backbone.tokenizer.encode(texts, backbone.default_max_length).token_ids
    batches = length_sorted_batches([len(ids) for ids in token_ids], args.token_budget, 512)
    batch = [token_ids[i] for i in batches[len(batches) // 2]]  # a typical, mid-length batch
    layers = list(range(backbone.num_layers + 1))
    pooled_batch(backbone, batch, layers)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.repeats):
            pooled_batch(backbone, batch, layers)
    print(f"batch: {len(batch)} texts x {max(map(len, batch))} tokens, {args.repeats} repeats")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
