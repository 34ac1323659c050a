"""``--prompt`` and ``--chat-template``: what a text becomes before it is tokenized.

An instruction model reads a review differently when it is asked about it ("Review: ...
Sentiment:"), and a chat model expects its chat markup. Both change every number, so both
are part of the row setting: the same text under another prompt is another row.
"""

from __future__ import annotations

from collections.abc import Sequence

from probe.errors import ProbeError

PLACEHOLDER = "{text}"


def check_prompt(prompt: str | None) -> str | None:
    """The prompt, or a one-line error when it has no ``{text}`` to fill."""
    if prompt is None:
        return None
    prompt = prompt.replace("\\n", "\n")  # a shell's 'Review: {text}\nSentiment:'
    if PLACEHOLDER not in prompt:
        raise ProbeError(f"--prompt must contain {PLACEHOLDER}, e.g. 'Review: {{text}}\\nLabel:'")
    return prompt


def format_texts(
    texts: Sequence[str], tokenizer, prompt: str | None = None, chat_template: bool = False
) -> list[str]:
    """Each text put into ``prompt`` (plain replacement: other braces stay), then, with
    ``chat_template``, made the user turn of the tokenizer's chat template, ending where the
    assistant's answer would start."""
    texts = [prompt.replace(PLACEHOLDER, text) for text in texts] if prompt else list(texts)
    if not chat_template:
        return texts
    hf = getattr(tokenizer, "tokenizer", None)
    if hf is None or not getattr(hf, "chat_template", None):
        raise ProbeError(
            f"the tokenizer {tokenizer.name} has no chat template; drop --chat-template "
            "or give the markup with --prompt"
        )
    return [
        hf.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        for text in texts
    ]
