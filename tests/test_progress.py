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
