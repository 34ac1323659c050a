"""The example notebooks run, start to end, in a real Jupyter kernel, with a store of their own;
and inside that kernel progress picks the notebook mode."""

from __future__ import annotations

import importlib.util
import os

from conftest import REPO

NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
HANG_SECONDS = 600  # per cell: a cell still running then is stuck (no timing assert)


def test_the_quickstart_notebook_runs_in_a_kernel(tmp_path, monkeypatch, isolated_cache):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "commit it without outputs"
    client = NotebookClient(
        notebook,
        timeout=HANG_SECONDS,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # a failing cell raises CellExecutionError with its traceback
    assert (tmp_path / "sms60.parquet").is_file()
    assert any(isolated_cache.glob("features/*.h5")), "the notebook used another store"
    mode = next(cell for cell in notebook.cells if "progress-mode" in cell.metadata.get("tags", []))
    shown = mode.outputs[-1]["data"]["text/plain"]
    widgets = importlib.util.find_spec("ipywidgets") is not None
    assert shown == repr("widget" if widgets else "lines")
    progress = [
        output["text"]
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("name") == "stderr" and output["text"].startswith(("extract:", "sweep:"))
    ]
    assert progress and len(progress) <= 6  # a line every few seconds and a last one
    assert not any("\r" in text for text in progress)  # no bar redrawn into the saved output
