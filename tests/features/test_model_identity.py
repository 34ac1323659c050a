"""Opening cached features needs a model's identity and shape, not the model: both come from
the store's memo after the first time, so neither torch nor transformers is imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, probe_env
from probe.features.models import loading
from probe.features.models.loading import describe_model


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_a_model_is_described_once_then_from_the_memo(family, tiny_gpt2_dir, tiny_bert_dir):
    """Known answer: the description through transformers' AutoConfig. The second one, with
    the config reader broken, must come from the memo and equal it field for field."""
    folder = str(tiny_gpt2_dir if family == "gpt2" else tiny_bert_dir)
    through_transformers = describe_model(folder)
    original = loading.read_config
    loading.read_config = lambda *args, **kwargs: pytest.fail("the memo should answer")
    try:
        remembered = describe_model(folder)
    finally:
        loading.read_config = original
    assert remembered == through_transformers
    expected_tokenizer = "tiktoken:gpt2" if family == "gpt2" else "hf:"
    assert remembered.tokenizer_id.startswith(expected_tokenizer)


def test_a_changed_config_is_a_new_model_and_is_read_again(tiny_gpt2_dir, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(tiny_gpt2_dir, folder)
    before = describe_model(str(folder))
    config = json.loads((folder / "config.json").read_text())
    config["n_positions"] = 128  # the context length the description reports
    (folder / "config.json").write_text(json.dumps(config))
    after = describe_model(str(folder))
    assert after.fingerprint != before.fingerprint
    assert (before.max_context, after.max_context) == (256, 128)


def test_opening_cached_features_imports_neither_torch_nor_transformers(
    tiny_gpt2_dir, sms_labelled, isolated_cache
):
    """A real extraction first; then, in a fresh process, opening those caches for a head."""
    from probe.features.device import surely_no_gpu
    from probe.heads.rows import prepare

    if not surely_no_gpu():
        pytest.skip("a GPU driver is present: torch is asked for the default device")
    prepare(str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48)
    script = (
        "import sys; from probe.heads.rows import prepare; "
        f"data = prepare({str(tiny_gpt2_dir)!r}, data={str(sms_labelled)!r}, max_length=48); "
        "print(len(data.train), [m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=probe_env(isolated_cache),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "[]", done.stdout
    assert int(done.stdout.split()[0]) > 0
