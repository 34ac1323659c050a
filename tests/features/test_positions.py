"""``--position``: each stored position equals an index computed by hand.

The tiny GPT-2 of the model matrix, one unpadded text at a time through transformers itself,
gives every token's hidden state; ``first``, ``index:K`` (either sign), ``max`` and
``marker:TEXT`` must equal the token picked (or the max taken) by hand, within
``rtol = atol = 2e-3`` (fp16 storage). A marker missing from some texts is one line naming
how many; default extractions keep their row key.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_zoo import build_model, train_tokenizer

from conftest import VARIED_TEXTS
from probe.data.readers import TextDataset
from probe.errors import ProbeError
from probe.features.extract import extract
from probe.features.pooling import parse_positions
from probe.features.store.caches import open_cache

TOLERANCE = 2e-3
MAX_LENGTH = 120
TEXTS = [t for t in VARIED_TEXTS if t.strip() and len(t) < 120][:6]
PROMPT = "Q: {text} Answer: yes"
MARKER = " Answer:"


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    root = tmp_path_factory.mktemp("positions")
    tokenizer = train_tokenizer(VARIED_TEXTS * 3 + [PROMPT] * 5, root / "tokenizer", False)
    return build_model("gpt2", root / "gpt2", tokenizer)


def per_token(folder, texts):
    """[(L+1, T, D) float32] per text and the tokenizer, from transformers alone."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    states = []
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        with torch.inference_mode():
            output = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        layers = [*output.hidden_states[:-1], output.last_hidden_state]
        states.append(torch.stack([s[0].float() for s in layers]).numpy())
    return states, tokenizer


def test_each_position_equals_a_hand_computed_index(gpt2, tmp_path):
    positions = ["first,max,index:2,index:-2", f"marker:{MARKER}"]
    dataset = TextDataset(TEXTS, labels=None, source="positions")
    path = extract(
        str(gpt2),
        dataset,
        "all",
        max_length=MAX_LENGTH,
        token_budget=80,
        prompt=PROMPT,
        positions=positions,
        out=tmp_path / "view.h5",
    )
    cache = open_cache(path)
    assert set(cache.pools) >= {"last", "mean", "first", "max", "index:2", "index:-2"}
    assert f"marker:{MARKER}" in cache.pools
    states, tokenizer = per_token(gpt2, [PROMPT.replace("{text}", t) for t in TEXTS])
    after = len(tokenizer(" yes", add_special_tokens=False)["input_ids"])  # tokens after marker
    by_hand = {
        "first": lambda s: s[:, 0],
        "index:2": lambda s: s[:, 2],
        "index:-2": lambda s: s[:, s.shape[1] - 2],
        "last": lambda s: s[:, -1],
        "max": lambda s: s.max(axis=1),
        f"marker:{MARKER}": lambda s: s[:, s.shape[1] - 1 - after],
    }
    for pool, pick in by_hand.items():
        expected = np.stack([pick(s) for s in states], axis=1)  # (L+1, N, D)
        for layer in cache.layers:
            np.testing.assert_allclose(
                cache.features(layer, pool),
                expected[layer],
                TOLERANCE,
                TOLERANCE,
                err_msg=f"{pool} layer {layer}",
            )


def test_a_missing_marker_is_one_line_naming_how_many(gpt2):
    texts = ["the answer: yes", "no marker here", "nothing", "answer: no"]
    dataset = TextDataset(texts, labels=None, source="positions")
    with pytest.raises(ProbeError) as error:
        extract(str(gpt2), dataset, "1", max_length=MAX_LENGTH, positions=["marker:answer:"])
    message = str(error.value)
    assert "\n" not in message and message.startswith("2 of 4 texts lack the marker")


def test_too_short_texts_and_bad_specs_are_one_line(gpt2):
    dataset = TextDataset(["hi", "a longer text than that"], labels=None, source="positions")
    with pytest.raises(ProbeError, match="too short for index:40"):
        extract(str(gpt2), dataset, "1", max_length=MAX_LENGTH, positions=["index:40"])
    for bad in ("index:x", "middle", "marker:", "marker:a/b"):
        with pytest.raises(ProbeError) as error:
            parse_positions([bad])
        assert "\n" not in str(error.value)


def test_positions_parse_and_keep_default_keys():
    assert parse_positions(["first, max", "index:+2,last", "marker:, A:"]) == (
        "first",
        "max",
        "index:2",
        "marker:, A:",
    )
    assert parse_positions([]) == ()
