"""``probe report``: every number in the page equals its JSON, and the page renders offline.

The results are made by the real commands (sweep, curve, compare) on a tiny random GPT-2 and
real SMS texts; the page is parsed back cell by cell and opened in headless Chromium.
"""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO, run_probe
from probe.cli import main

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def invoke(command: str, *positional, store: Path, **options) -> str:
    env = {"PROBE_CACHE": str(store), "HF_HUB_OFFLINE": "1"}
    result = run_probe(command, *positional, env=env, **options)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def results(tiny_gpt2_dir, tmp_path_factory):
    """A results folder holding a sweep, a learning curve and a comparison, and its report."""
    from conftest import write_sms90

    folder = tmp_path_factory.mktemp("report")
    data = write_sms90(folder / "sms90.csv")
    store, out = folder / "store", folder / "results"
    rows = {"model": tiny_gpt2_dir, "data": data, "store": store, "quiet": True}
    invoke("sweep", **rows, out_dir=out / "sweep", control=True, mdl=True, baselines=True)
    invoke(
        "curve",
        from_sweep=out / "sweep",
        sizes="1,2,4",
        seeds=2,
        quiet=True,
        out_dir=out / "curve",
        store=store,
    )
    invoke(
        "compare",
        **rows,
        unfreeze=0,
        no_book=True,
        epochs=1,
        max_length=32,
        out_dir=out / "compare",
    )
    (out / "notes.json").write_text('{"not": "a result"}')
    page = folder / "report.html"
    assert invoke("report", out, out=page, store=store).strip() == str(page)
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
        for key in (
            "test_accuracy",
            "test_balanced_accuracy",
            "test_auroc_ci",
            "test_average_precision",
            "selectivity_vs_random_ci",
            "selectivity_vs_bow",
            "memorisation_capacity",
            "mdl_compression",
        ):
            assert f"sweep/sweep.json#entries/{i}/{key}" in sources
    for where in (
        "majority/test_accuracy",
        "majority/test_balanced_accuracy_ci",
        "bag_of_words/test_accuracy_ci",
        f"random_weights/{len(sweep['entries']) - 1}/test_accuracy",
    ):
        assert f"sweep/sweep.json#baselines/{where}" in sources
    for where in ("probe/ci/accuracy", "finetune/0/ci/accuracy", "finetune/0/vs_probe/ci"):
        assert f"compare/compare.json#{where}" in sources
    assert compare["finetune"][0]["vs_probe"]["ci"]
    assert any(where.startswith("curve/curve.json#points/") for where in sources)
    assert checked > 100


def test_the_selected_line_and_the_bold_row_name_the_json_best(results):
    sweep = json.loads((results["dir"] / "sweep" / "sweep.json").read_text())
    best = sweep["best"]
    line = re.search(
        r"<p>Selected on ([^:]+): layer (\S+), pool (\w+) \(bold row\)\.</p>", results["html"]
    )
    assert line is not None
    assert line.groups() == (sweep["selection"], str(best["layer"]), best["pool"])
    bold = re.findall(
        r'<tr class="best"><td data-path="sweep/sweep.json#entries/(\d+)/layer"', results["html"]
    )
    assert len(bold) == 1
    row = sweep["entries"][int(bold[0])]
    assert (row["layer"], row["pool"]) == (best["layer"], best["pool"])


def test_the_headline_names_the_rule_and_its_number(results):
    """Under the "Selected on" line: what selected the row, and the headline metric (accuracy
    by default) of the selected row with its CI, each number tagged with its JSON path."""
    sweep = json.loads((results["dir"] / "sweep" / "sweep.json").read_text())
    line = re.search(
        r"<p>Selected by ([^;<]+); headline test accuracy: (.*?)\.</p>", results["html"]
    )
    assert line is not None and line.group(1) == sweep["selected_by"]
    tagged = re.findall(r'<span data-path="sweep/sweep.json#([^"]+)">([^<]+)</span>', line.group(2))
    assert [path for path, _ in tagged] == [
        "best/test_accuracy",
        "best/test_accuracy_ci/0",
        "best/test_accuracy_ci/1",
    ]
    for path, text in tagged:
        assert printed_equals(text, resolve(results["dir"], f"sweep/sweep.json#{path}"))


def test_the_summary_bullets_say_what_the_json_holds(results):
    """Every number of the comparison's bullets, and each verdict, read back from the page."""
    compare = json.loads((results["dir"] / "compare" / "compare.json").read_text())
    section = results["html"].split("<h2>Probe vs fine-tuning")[1]
    bullets = [html_module.unescape(b) for b in re.findall(r"<li>(.*?)</li>", section)]
    assert len(bullets) == 1 + len(compare["finetune"])
    number = r"([-+]?\d+\.\d+)"
    probe_row = compare["probe"]
    first = re.search(
        rf"test accuracy {number} \[{number}, {number}\], {number} s "
        rf"\(extract \+ (\d+) heads\)",
        bullets[0],
    )
    assert first is not None, bullets[0]
    values = [probe_row["test"]["accuracy"], *probe_row["ci"]["accuracy"], probe_row["seconds"]]
    assert all(map(printed_equals, first.groups()[:4], values)), (bullets[0], values)
    assert int(first.group(5)) == probe_row["heads_fitted"]
    for bullet, row in zip(bullets[1:], compare["finetune"], strict=True):
        found = re.search(
            rf"^(.+?): (.+?) \(accuracy {number}, 95% CI \[{number}, {number}\]\)"
            rf"; chosen run {number} s",
            bullet,
        )
        assert found is not None, bullet
        method, verdict, *numbers = found.groups()
        versus = row["vs_probe"]
        assert method == row["method"]
        expected = [versus["accuracy_difference"], *versus["ci"], row["seconds"]]
        assert all(map(printed_equals, numbers, expected)), (bullet, expected)
        assert (verdict == "not significantly different") == (not versus["significant"])


def svg_points(page: str, gid: str) -> list[tuple[float, float]]:
    """The (x, y) points of one plotted series, read from its SVG group: a line's path, or
    a marker-only series' <use> elements."""
    group = re.search(rf'<g id="{gid}">(.*?)</g>', page, re.S)
    assert group is not None, gid
    body = re.sub(r"<defs>.*?</defs>", "", group.group(1), flags=re.S)
    path = re.search(r'<path d="([^"]+)"', body)
    if path:
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path.group(1))]
        return list(zip(numbers[::2], numbers[1::2], strict=True))
    uses = re.findall(r'<use [^>]*x="([-\d.]+)" y="([-\d.]+)"', page.split(f'<g id="{gid}">')[1])
    return [(float(x), float(y)) for x, y in uses[:1]]


def test_plotted_points_are_the_json_values(results):
    """The layer plot's series, read back from the SVG, are one affine map of the JSON:
    test, validation and random-weights accuracy per layer, the bag-of-words line and the
    selected star all land where their values say."""
    import numpy as np

    sweep = json.loads((results["dir"] / "sweep" / "sweep.json").read_text())
    page = results["html"]
    pairs = []  # (value, svg y) and (layer, svg x)
    xs = []
    for pool in ("last", "mean"):
        rows = sorted((r for r in sweep["entries"] if r["pool"] == pool), key=lambda r: r["layer"])
        random = sorted(
            (r for r in sweep["baselines"]["random_weights"] if r["pool"] == pool),
            key=lambda r: r["layer"],
        )
        for gid, values in (
            (f"sweep0-test-{pool}", [r["test_accuracy"] for r in rows]),
            (f"sweep0-val-{pool}", [r["val_accuracy"] for r in rows]),
            (f"sweep0-random-{pool}", [r["test_accuracy"] for r in random]),
        ):
            points = svg_points(page, gid)
            assert len(points) == len(values), gid
            pairs += [(v, y) for v, (_, y) in zip(values, points, strict=True)]
            xs += [(r["layer"], x) for r, (x, _) in zip(rows, points, strict=True)]
    values, ys = np.array(pairs).T
    slope, intercept = np.polyfit(values, ys, 1)
    assert slope < 0 and np.abs(values * slope + intercept - ys).max() < 0.01  # pixels
    layers, svg_x = np.array(xs).T
    x_slope, x_intercept = np.polyfit(layers, svg_x, 1)
    assert x_slope > 0 and np.abs(layers * x_slope + x_intercept - svg_x).max() < 0.01
    bow = svg_points(page, "sweep0-bag_of_words")
    expected = sweep["baselines"]["bag_of_words"]["test_accuracy"] * slope + intercept
    assert abs(bow[0][1] - expected) < 0.01 and bow[0][1] == bow[1][1]
    (star,) = svg_points(page, "sweep0-selected")
    best = sweep["best"]
    assert abs(star[0] - (best["layer"] * x_slope + x_intercept)) < 0.01
    assert abs(star[1] - (best["test_accuracy"] * slope + intercept)) < 0.01


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


def _sweep_titles(page: str) -> list[str]:
    section = page.split("<h2>Sweep: ")[1].split("<h2>")[0]
    return re.findall(r"<th>([^<]*)</th>", section)


def test_held_out_numbers_say_whether_they_are_validation_or_cross_validated(results, tmp_path):
    """The sweep had no --val: its val_* numbers are out of fold, and the page says
    "cross-validated"; the same file with a validation split says "validation"."""
    from probe.report.html import write_report

    sweep = json.loads((results["dir"] / "sweep" / "sweep.json").read_text())
    assert sweep["selection"] == "5-fold cross-validation"
    titles = _sweep_titles(results["html"])
    assert "cross-validated accuracy" in titles and "layer" in titles
    assert not [title for title in titles if title.startswith("val ")]
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "sweep.json").write_text(json.dumps({**sweep, "selection": "validation"}))
    page = write_report(tmp_path / "val", tmp_path / "val.html").read_text()
    assert "validation accuracy" in _sweep_titles(page)
    assert "cross-validated" not in page.split("<h2>Sweep: ")[1]


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
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--screenshot={shot}",
            "--window-size=1280,1600",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            results["page"].as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.exists(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))  # (1600, 1280) grey levels
    assert pixels.shape == (1600, 1280)
    dark = float((pixels < 200).mean())
    assert 0.01 < dark < 0.9 and len(np.unique(pixels)) > 20  # text, tables, plots: not blank
