"""A ``.gguf`` model is converted once, and a log shows two lines for it, not a redrawn bar.

The GGUF is written here: a tiny random Llama (2 blocks, hidden 32, fp32 tensors) with a
byte-level GPT-2 tokenizer in its metadata, read by transformers' real GGUF loader, the path
``smollm2-135m`` takes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import probe_env, probe_process
from probe import messages
from probe.features.models.files import gguf_bar_shown


def _byte_characters() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes: a byte-level vocabulary's tokens."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    shifted = [b for b in range(256) if b not in printable]
    table = dict(zip(printable, printable, strict=True))
    table.update({b: 256 + n for n, b in enumerate(shifted)})
    return [chr(table[b]) for b in range(256)]


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    tokens = ["<|endoftext|>", *_byte_characters(), "Ġt", "Ġa", "he"]
    vocab, dim, ff, blocks = len(tokens), 32, 64, 2
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(blocks)
    writer.add_context_length(64)
    writer.add_embedding_length(dim)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(dim // 2)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges(["Ġ t", "Ġ a", "h e"])
    writer.add_token_types([3] + [1] * (vocab - 1))  # the first a control token
    for name in ("bos", "eos", "unk", "pad"):
        getattr(writer, f"add_{name}_token_id")(0)
    rng = np.random.default_rng(0)

    def tensor(name, *shape):
        writer.add_tensor(name, (0.05 * rng.normal(size=shape)).astype(np.float32))

    tensor("token_embd.weight", vocab, dim)
    for block in range(blocks):
        for norm in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{block}.{norm}.weight", np.ones(dim, np.float32))
        for name, shape in (
            ("attn_q", (dim, dim)),
            ("attn_k", (dim // 2, dim)),
            ("attn_v", (dim // 2, dim)),
            ("attn_output", (dim, dim)),
            ("ffn_gate", (ff, dim)),
            ("ffn_up", (ff, dim)),
            ("ffn_down", (dim, ff)),
        ):
            tensor(f"blk.{block}.{name}.weight", *shape)
    writer.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_log_gets_one_line_per_conversion_and_no_bar(tiny_gguf, sms_subset, tmp_path):
    """stderr in a file: "converting ... about N s" and "converted ... in N s", not
    transformers' per-tensor bar; the second run reuses the conversion and says nothing."""
    store = tmp_path / "store"
    command = probe_process("extract", model=tiny_gguf, data=sms_subset, max_length=16)
    logs = []
    for run in (1, 2):
        log = tmp_path / f"stderr{run}.log"
        with open(log, "w") as stderr:
            done = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=stderr, env=probe_env(store), timeout=300
            )
        logs.append(log.read_text())
        assert done.returncode == 0, logs[-1][-2000:]
    first = logs[0].splitlines()
    assert "converting tiny.gguf (0.1 MB) to fp32 once: about 1 s" in first
    assert any(line.startswith("converted tiny.gguf in ") for line in first), first
    assert "de-quantizing" not in logs[0] and "\r" not in logs[0] and "it/s" not in logs[0]
    assert "convert" not in logs[1]  # the converted model is reused


def test_the_bar_shows_on_a_terminal_only(tmp_path):
    leader, follower = os.openpty()
    try:
        with os.fdopen(follower, "w") as terminal, open(tmp_path / "log", "w") as log:
            messages.configure("normal")
            assert gguf_bar_shown(terminal) and not gguf_bar_shown(log)
            messages.configure("quiet")
            assert not gguf_bar_shown(terminal)
    finally:
        messages.configure("normal")
        os.close(leader)
