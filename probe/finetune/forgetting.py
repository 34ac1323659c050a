"""Did fine-tuning damage the language model? Perplexity and a greedy continuation.

Unfreezing blocks for classification moves weights the LM head also depends on, so the
fine-tuning report measures, before and after training, the backbone's perplexity on a fixed
reference text shipped with probe (``probe/assets/reference.txt``, plain prose written for
the project) and its greedy continuation of a fixed prompt. Both are deterministic: with no
block unfrozen they come out bitwise identical, and any drift is the training's doing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from importlib import resources

import torch

REFERENCE_TEXT = resources.files("probe") / "assets" / "reference.txt"
PROMPT = "The miller opened the green book and"
CONTINUATION_TOKENS = 24
PERPLEXITY_WINDOW = 512  # tokens per window; windows do not overlap


@dataclass
class LanguageCheck:
    perplexity: float
    continuation: str
    continuation_ids: list[int]


def language_check(backbone) -> LanguageCheck | None:
    """Perplexity on the reference text and the greedy continuation; None for encoders."""
    if not backbone.causal or not hasattr(backbone.model, "get_output_embeddings"):
        return None
    if backbone.model.get_output_embeddings() is None:
        return None
    text = REFERENCE_TEXT.read_text(encoding="utf-8")
    ids = backbone.tokenizer.encode([text], max_length=1 << 30).token_ids[0]
    prompt = backbone.tokenizer.encode([PROMPT], max_length=1 << 30).token_ids[0]
    window = min(PERPLEXITY_WINDOW, backbone.max_context)
    continuation = greedy_continuation(backbone.model, prompt, CONTINUATION_TOKENS)
    return LanguageCheck(
        perplexity=perplexity(backbone.model, ids, window),
        continuation=decode(backbone.tokenizer, continuation),
        continuation_ids=continuation,
    )


def compare_checks(before: LanguageCheck | None, after: LanguageCheck | None) -> dict | None:
    """Before, after and the drift, as the report prints them."""
    if before is None or after is None:
        return None
    return {
        "perplexity_before": before.perplexity,
        "perplexity_after": after.perplexity,
        "perplexity_drift": after.perplexity - before.perplexity,
        "perplexity_drift_pct": 100.0 * (after.perplexity / before.perplexity - 1.0),
        "continuation_before": before.continuation,
        "continuation_after": after.continuation,
        "continuation_unchanged": before.continuation_ids == after.continuation_ids,
        "prompt": PROMPT,
    }


def perplexity(model, token_ids: list[int], window: int) -> float:
    """exp(mean next-token NLL) over non-overlapping windows of the LM-head model."""
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(token_ids) - 1, window):
            chunk = torch.tensor([token_ids[start : start + window]], device=device)  # (1, T)
            if chunk.shape[1] < 2:
                break
            logits = model(input_ids=chunk, use_cache=False).logits.float()  # (1, T, V)
            nll = torch.nn.functional.cross_entropy(logits[0, :-1], chunk[0, 1:], reduction="sum")
            total_nll += float(nll)
            total_tokens += chunk.shape[1] - 1
    model.train(was_training)
    return math.exp(total_nll / max(total_tokens, 1))


def greedy_continuation(model, prompt_ids: list[int], new_tokens: int) -> list[int]:
    """Argmax decoding without a KV cache: a few dozen short forwards, fully deterministic."""
    device = next(model.parameters()).device
    ids = list(prompt_ids)
    was_training = model.training
    model.eval()
    import inspect

    last_only = (
        {"logits_to_keep": 1}
        if "logits_to_keep" in inspect.signature(model.forward).parameters
        else {}
    )
    with torch.inference_mode():
        for _ in range(new_tokens):
            inputs = torch.tensor([ids], device=device)  # (1, T)
            logits = model(input_ids=inputs, use_cache=False, **last_only).logits  # (1, T', V)
            ids.append(int(logits[0, -1].argmax()))
    model.train(was_training)
    return ids[len(prompt_ids) :]


def decode(tokenizer, token_ids: list[int]) -> str:
    from probe.features.models.tokenize import HFTokenizer, gpt2_encoding

    if isinstance(tokenizer, HFTokenizer):
        return tokenizer.tokenizer.decode(token_ids)
    return gpt2_encoding().decode(token_ids)


def as_dict(check: LanguageCheck | None) -> dict | None:
    return None if check is None else asdict(check)
