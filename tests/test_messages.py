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
