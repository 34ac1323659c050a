"""The one channel to the user: the CLI's -q/-v decide what library lines reach stderr."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from probe import messages


def test_levels_follow_quiet_normal_verbose(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        messages.configure("quiet")
        messages.say("hidden by -q")
        messages.warn("shown even with -q")
        assert not messages.shown() and messages.progress(3, "job")._bar is None
        messages.configure("normal")
        messages.say("a result line")
        messages.detail("hidden without -v")
        assert messages.shown()
        messages.configure("verbose")
        messages.detail("a detail line")
    finally:
        messages.configure("normal")
    assert stream.getvalue().splitlines() == [
        "shown even with -q",
        "a result line",
        "a detail line",
    ]


def test_a_library_user_sees_nothing_until_asking():
    """In a fresh interpreter (a notebook), say and detail are silent; logging shows them."""
    script = (
        "import logging, probe.messages as m\n"
        "m.say('quiet by default'); m.detail('also quiet')\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s')\n"
        "m.say('now shown')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == ["probe now shown"]
    assert logging.getLogger("probe") is messages.LOGGER


def test_a_hint_is_said_once_per_process(monkeypatch, said):
    monkeypatch.setattr(messages, "_HINTED", set())
    for _ in range(3):
        messages.hint("a hint")
        messages.say("a line")
    assert said == ["a hint", "a line", "a line", "a line"]


def test_the_amx_hint_is_said_once_however_many_extractions_run(
    monkeypatch, said, tiny_gpt2_dir, sms_subset
):
    """A fine-tuning run extracts three times in one process; the hint came with each."""
    import probe.features.device
    from probe.data.readers import read_dataset
    from probe.features.extract import extract

    monkeypatch.setattr(messages, "_HINTED", set())
    monkeypatch.setattr(probe.features.device, "cpu_has_fast_bf16", lambda: True)  # this CPU
    data = read_dataset(str(sms_subset))
    for layers in ("0", "1", "0"):
        extract(str(tiny_gpt2_dir), data, layers, max_length=16, force=True)
    hints = [line for line in said if "AMX" in line]
    assert hints == ["this CPU has AMX bf16 units: --dtype bfloat16 extracts ~3x faster"]
    assert sum(line.startswith("attention:") for line in said) == 3  # three real extractions
