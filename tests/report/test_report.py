"""``probe report``: every number in the page equals its JSON, and the page renders offline.

The results are made by the real commands (sweep, curve, compare) on a tiny random GPT-2 and
real SMS texts; the page is parsed back cell by cell and opened in headless Chromium.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from probe.cli import main

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def invoke(args: list[str], store: Path) -> str:
    result = CliRunner().invoke(main, args, env={"PROBE_CACHE": str(store), "HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def results(tiny_gpt2_dir, tmp_path_factory):
    """A results folder holding a sweep, a learning curve and a comparison, and its report."""
    from conftest import write_sms90

    folder = tmp_path_factory.mktemp("report")
    data = write_sms90(folder / "sms90.csv")
    store, out = folder / "store", folder / "results"
    model = ["--model", str(tiny_gpt2_dir)]
    sweep_help = invoke(["sweep", "--help"], store)
    research = [flag for flag in ("--control", "--mdl") if flag in sweep_help]
    invoke(["sweep", *model, "--data", str(data), "--quiet", "--out-dir", str(out / "sweep"),
            *research], store)  # fmt: skip
    invoke(["curve", "--from-sweep", str(out / "sweep"), "--sizes", "1,2,4", "--seeds", "2",
            "--quiet", "--out-dir", str(out / "curve")], store)  # fmt: skip
    invoke(["compare", *model, "--data", str(data), "--unfreeze", "0", "--no-book",
            "--epochs", "1", "--max-length", "32", "--quiet", "--out-dir",
            str(out / "compare")], store)  # fmt: skip
    (out / "notes.json").write_text('{"not": "a result"}')
    page = folder / "report.html"
    assert invoke(["report", str(out), "--out", str(page)], store).strip() == str(page)
    return {"dir": out, "page": page, "html": page.read_text(encoding="utf-8")}


class Cells(HTMLParser):
    """Every table cell: (data-path or None, text)."""

    def __init__(self):
        super().__init__()
        self.cells: list[tuple[str | None, str]] = []
        self._open: list | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self._open = [dict(attrs).get("data-path"), ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._open is not None:
            self.cells.append((self._open[0], self._open[1].strip()))
            self._open = None


def printed_equals(text: str, value) -> bool:
    """``text`` is ``value`` rounded to the digits ``text`` shows."""
    if text in ("yes", "no"):
        return value is (text == "yes")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    tolerance = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
    return abs(float(text) - value) <= tolerance * (1 + 1e-9)


def resolve(folder: Path, where: str):
    name, _, path = where.partition("#")
    value = json.loads((folder / name).read_text())
    for part in path.split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


NUMBER = re.compile(r"^-?\d")


def test_every_number_in_the_tables_equals_the_json(results):
    parser = Cells()
    parser.feed(results["html"])
    checked = 0
    for where, text in parser.cells:
        if where is None:
            assert not NUMBER.match(text), f"a number with no source: {text!r}"
            continue
        value = resolve(results["dir"], where)
        if isinstance(value, str):
            assert text == value, where
        elif text.startswith("["):  # a CI, or a list of settings
            printed = [part.strip() for part in text.strip("[]").split(",")]
            assert len(printed) == len(value), where
            assert all(map(printed_equals, printed, value)), (where, text, value)
        else:
            assert printed_equals(text, value), (where, text, value)
        checked += 1
    sweep = json.loads((results["dir"] / "sweep" / "sweep.json").read_text())
    compare = json.loads((results["dir"] / "compare" / "compare.json").read_text())
    sources = {where for where, _ in parser.cells}
    for i in range(len(sweep["entries"])):  # every sweep row's test accuracy is in the table
        assert f"sweep/sweep.json#entries/{i}/test_accuracy" in sources
    for where in ("probe/ci/accuracy", "finetune/0/ci/accuracy", "finetune/0/vs_probe/ci"):
        assert f"compare/compare.json#{where}" in sources
    assert compare["finetune"][0]["vs_probe"]["ci"]
    assert any(where.startswith("curve/curve.json#points/") for where in sources)
    assert checked > 100


def test_the_page_is_self_contained(results):
    page = results["html"]
    assert page.count("<svg") == 3  # layer plot, learning curve, compare
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", page)
    assert "notes.json" in page  # an unknown JSON file is listed, not rendered
    assert "versions.torch" in page  # the settings and versions that made the comparison
    assert "compare/compare.json#settings/lr_grid" in page
    assert "<th>accuracies</th>" not in page  # per-seed lists stay in the JSON


def test_unknown_keys_get_columns_and_missing_ones_a_dash(results, tmp_path):
    from probe.report.html import write_report

    sweep = json.loads((results["dir"] / "sweep" / "sweep.json").read_text())
    sweep["entries"][0]["probe_rank"] = 7
    sweep["entries"][0]["mdl"] = {"online_bits": 123.45}
    sweep["entries"][0]["test_accuracy_ci"] = [0.25, 0.75]
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "sweep.json").write_text(json.dumps(sweep))
    old = REPO / "benchmarks" / "results" / "compare-smollm2_135m-sms_spam.json"
    if old.exists():  # a comparison written before CIs existed still renders
        shutil.copy(old, tmp_path / "new" / "compare-old.json")
    page = write_report(tmp_path / "new", tmp_path / "page.html").read_text()
    assert "<th>probe rank</th>" in page and "<th>mdl online bits</th>" in page
    assert 'data-path="sweep.json#entries/0/mdl/online_bits">123.5</td>' in page
    assert 'data-path="sweep.json#entries/0/test_accuracy_ci">[0.2500, 0.7500]</td>' in page
    assert "<td>-</td>" in page  # rows without the new keys


@pytest.mark.parametrize("setup", ["missing", "empty"])
def test_a_folder_without_results_is_one_line(tmp_path, setup):
    folder = tmp_path / "results"
    if setup == "empty":
        folder.mkdir()
        (folder / "broken.json").write_text("{not json")
    result = CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()


def test_it_renders_in_headless_chromium(results, tmp_path):
    browser = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if browser is None:
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")
    import numpy as np
    from PIL import Image

    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}",
         "--window-size=1280,1600", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={tmp_path / 'profile'}", results["page"].as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.exists(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))  # (1600, 1280) grey levels
    assert pixels.shape == (1600, 1280)
    dark = float((pixels < 200).mean())
    assert 0.01 < dark < 0.9 and len(np.unique(pixels)) > 20  # text, tables, plots: not blank
