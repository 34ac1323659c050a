"""Write a randomly initialised GPT-2 small (124M) as a save_pretrained folder.

Throughput and MFU depend on the shapes, not on the weights, so a GPU machine with no
network can benchmark GPT-2 small from this folder (``--model FOLDER``): same 12 blocks,
d = 768, 50,257-token vocabulary, tokenised by the shipped GPT-2 BPE files.

    python benchmarks/make_gpt2_small.py /tmp/gpt2-small
"""

from __future__ import annotations

import sys


def main() -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(sys.argv[1])  # GPT2Config() is GPT-2 small
    print(sys.argv[1])


if __name__ == "__main__":
    main()
