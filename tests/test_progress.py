"""Which progress a job shows where: a bar on a terminal, plain lines in logs, and in a
Jupyter kernel the notebook widget or plain lines, never a text bar. (The real kernel is
checked by tests/test_examples.py, which runs a notebook.)"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import types

import pytest

from probe.progress import Progress, choose_mode, in_notebook, progress_mode

WIDGETS = importlib.util.find_spec("ipywidgets") is not None


@pytest.mark.parametrize(
    ("quiet", "terminal", "notebook", "widgets", "mode"),
    [
        (True, True, False, False, "off"),
        (True, False, True, True, "off"),
        (False, True, False, False, "bar"),
        (False, False, False, True, "lines"),  # a log, a pipe, CI
        (False, False, True, True, "widget"),
        (False, False, True, False, "lines"),  # a kernel without ipywidgets
        (False, True, True, False, "lines"),  # a kernel whose stream says it is a terminal
    ],
)
def test_the_mode_rule(quiet, terminal, notebook, widgets, mode):
    assert choose_mode(quiet, terminal, notebook, widgets) == mode


def _fake_shell(monkeypatch, config: dict) -> None:
    """An IPython shell as ``get_ipython`` returns it, with ``config`` (a kernel's holds
    ``IPKernelApp``), and ipykernel imported: what a notebook's process looks like."""
    shell = types.SimpleNamespace(config=config)
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))


def test_a_kernel_gets_the_notebook_mode_and_its_lines_carry_no_bar(monkeypatch):
    assert not in_notebook()  # pytest is no kernel
    _fake_shell(monkeypatch, {"IPKernelApp": {"connection_file": "kernel.json"}})
    assert in_notebook()
    stream = io.StringIO()  # a kernel's stderr is no terminal
    expected = "widget" if WIDGETS else "lines"
    assert progress_mode(stream) == expected and progress_mode(stream, quiet=True) == "off"
    if not WIDGETS:
        with Progress(4, "job", stream=stream, interval=0.0) as progress:
            progress.update(4)
        assert progress._bar is None and "\r" not in stream.getvalue()
        assert stream.getvalue().splitlines()[-1].startswith("job: 4/4 it (100%)")


def test_a_terminal_ipython_is_no_notebook(monkeypatch):
    _fake_shell(monkeypatch, {"TerminalInteractiveShell": {}})
    assert not in_notebook()


def test_a_terminal_gets_a_bar_and_a_file_gets_lines(tmp_path):
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal, open(tmp_path / "log", "w") as log:
        assert progress_mode(terminal) == "bar" and progress_mode(log) == "lines"
        with Progress(2, "job", stream=terminal) as progress:
            progress.update(2)
        assert progress._bar is not None
    os.close(leader)


class Clock:
    """Seconds as a test sets them: a progress sequence replayed without waiting."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _replay(events, total, workers=1):
    """Plain lines (interval 0: one per update) of a job whose updates come at ``events``
    ((seconds, items) pairs); returns [(seconds, done, line)]."""
    clock, stream = Clock(), io.StringIO()
    progress = Progress(total, "job", stream=stream, interval=0.0, workers=workers, clock=clock)
    assert progress.mode == "lines"
    out = []
    for seconds, items in events:
        clock.now = seconds
        progress.update(items)
        out.append((seconds, progress.done, stream.getvalue().splitlines()[-1]))
    return out


def _eta(line: str) -> float | None:
    return float(line.rsplit("ETA ", 1)[1].split()[0]) if "ETA " in line else None


# (events, total, workers, seconds the whole job takes)
STARTUP = ([(60.0 + i, 1) for i in range(1000)], 1000, 1, 1059.0)  # a minute's load, then 1/s
BURST = (  # 100 cheap items in a second (rows already held), then the real work at 1/s
    [(0.01 * i, 1) for i in range(1, 101)] + [(1.0 + i, 1) for i in range(1, 901)],
    1000,
    1,
    901.0,
)
PAIRS = (  # two workers, 62 heads of 30 s each: they finish in pairs
    [(30.0 * k + lag, 1) for k in range(1, 32) for lag in (0.0, 1.0)],
    62,
    2,
    931.0,
)


@pytest.mark.parametrize(("events", "total", "workers", "end"), [STARTUP, BURST, PAIRS])
def test_the_first_eta_is_within_a_factor_of_two_of_the_truth(events, total, workers, end):
    """The old ETA (total pace since the start) said 59,000 s for the start-up job, 82 s for
    the burst: the first ETA printed now is within 2x of the time really left, and none is
    printed before 5% of the work and 10 s."""
    lines = _replay(events, total, workers)
    timed = [(seconds, done, _eta(line)) for seconds, done, line in lines if _eta(line)]
    assert timed, lines[-3:]
    seconds, done, first = timed[0]
    assert done >= 0.05 * total and seconds >= 10
    assert 0.5 <= first / (end - seconds) <= 2.0, (seconds, done, first, end - seconds)
    for later_seconds, _, later in timed:  # and it stays there
        assert 0.5 <= later / max(end - later_seconds, 1.0) <= 2.0 or end - later_seconds < 10


def test_slow_rates_read_as_rates():
    clock = Clock()
    progress = Progress(62, "sweep", unit="heads", quiet=True, workers=2, clock=clock)
    clock.now = 30.0
    progress.update()
    assert "0.033 heads/s" in progress.line() and "ETA" not in progress.line()
