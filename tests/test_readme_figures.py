"""The README's figures are rendered from the results JSON (benchmarks/render_readme.py).

A hand edit to a rendered block, or a results file changed without re-rendering, fails the
first test; the others check on a small synthetic README and results folder that the renderer
rewrites only its blocks and that --check catches a difference.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPORT = [{"layer": 3, "labels_equal": 7, "n": 8, "max_prob_diff": 2.4e-5, "export_mb": 1.0}]
OPTIONS = {"texts": 500, "results": {"bf16 eager": {"speedup_vs_fp32_eager_wall": 2.5}}}
PREFIX = "# Title\r\n\nprose with trailing spaces   \nand ünïcode, kept byte for byte.\n\n"
INLINE_LINE = "- a bullet whose line is long enough to push the block to the next line, "
SUFFIX = "\n\n## After\n\nthe end, without a final newline"


@pytest.fixture
def renderer(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("render_readme")


def write_results(folder: Path, export=EXPORT, options=OPTIONS) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "export_smollm2.json").write_text(json.dumps(export))
    (folder / "extract_options_10k.json").write_text(json.dumps(options))
    return folder


def test_the_readme_figures_are_the_results(renderer, capsys):
    """Fails on a hand edit inside a block or a results JSON changed without re-rendering:
    run `python benchmarks/render_readme.py` and commit the README."""
    code = renderer.main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_a_block_is_rewritten_and_the_rest_kept(renderer, tmp_path):
    results = write_results(tmp_path / "results")
    readme = tmp_path / "README.md"
    middle = "\n\ntext between the blocks  \n"
    stale = "<!-- figures: export -->\nParity: 1/2 texts, typed by hand.\n<!-- /figures -->"
    inline = f"{INLINE_LINE}<!-- figures: bf16 -->9x, typed<!-- /figures -->; the bullet goes on."
    readme.write_bytes(f"{PREFIX}{stale}{middle}{inline}{SUFFIX}".encode())

    assert renderer.main(["--check", "--readme", str(readme), "--results", str(results)]) == 1
    assert renderer.main(["--readme", str(readme), "--results", str(results)]) == 0

    text = readme.read_bytes().decode()
    assert text.startswith(PREFIX) and text.endswith(SUFFIX) and middle in text
    assert "labels equal on 7/8 texts, probabilities within 2.4e-5" in " ".join(text.split())
    assert "typed" not in text
    bullet = text[text.index(INLINE_LINE) :]
    assert bullet.startswith(f"{INLINE_LINE}<!-- figures: bf16 -->\n`bfloat16` extracts 2.50x")
    assert bullet.endswith(f"<!-- /figures -->; the bullet goes on.{SUFFIX}")
    assert renderer.main(["--check", "--readme", str(readme), "--results", str(results)]) == 0
    assert renderer.main(["--readme", str(readme), "--results", str(results)]) == 0
    assert readme.read_bytes().decode() == text  # rendering again changes nothing


def test_check_fails_on_a_hand_edit_or_a_new_result(renderer, tmp_path, capsys):
    results = write_results(tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- figures: export -->\n<!-- /figures -->\n")
    args = ["--readme", str(readme), "--results", str(results)]
    renderer.main(args)
    rendered = readme.read_text()

    readme.write_text(rendered.replace("7/8", "8/8"))
    assert renderer.main(["--check", *args]) == 1
    assert "block(s) export" in capsys.readouterr().err
    assert "8/8" in readme.read_text()  # --check never writes

    readme.write_text(rendered)
    write_results(results, export=[{**EXPORT[0], "labels_equal": 6}])
    assert renderer.main(["--check", *args]) == 1


def test_the_demo_renders_its_time_once_the_demo_wrote_one(renderer, tmp_path):
    """After a demo rerun only the renderer needs rerunning; its timings.json is optional."""
    figures = importlib.import_module("readme_figures")
    demo = tmp_path / "demo_sms"
    demo.mkdir()
    entries = [{"layer": layer, "pool": pool} for layer in range(3) for pool in ("last", "mean")]
    best = {
        "layer": 2,
        "pool": "mean",
        "C": 0.1,
        "test_accuracy": 0.9,
        "test_accuracy_ci": [0.8, 1],
    }
    sweep = {"n": {"train": 8, "test": 2}, "best": best, "entries": entries}
    (demo / "sweep.json").write_text(json.dumps({**sweep, "n_indistinguishable": 1}))
    without = figures.render_block("demo", figures.Results(tmp_path))
    assert "all 3 layers of the 10 SMS texts" in without and "demo_sms/README.md" in without
    assert "layer 2 mean, C 0.1, test accuracy 0.900 [0.800, 1.000]" in without

    seconds = {"extract": 120.04, "sweep": 60.0, "total": 400.0}
    timing = {"cpu": "AMD EPYC", "cores": 2, "fresh_install": True, "seconds": seconds}
    (demo / "timings.json").write_text(json.dumps({**timing, "load_average": [[0.4], [1.9]]}))
    with_time = figures.render_block("demo", figures.Results(tmp_path))
    assert "extraction 120.0 s, sweep 60.0 s, the whole demo 400.0 s, install included" in with_time
    assert "AMD EPYC, 2 cores, otherwise idle, load 0-2" in with_time


@pytest.mark.parametrize(
    ("readme", "message"),
    [
        ("<!-- figures: nosuch -->x<!-- /figures -->", "no formatter for block nosuch"),
        ("<!-- figures: export -->x\n<!-- figures: bf16 -->y<!-- /figures -->", "has no"),
        ("x<!-- /figures -->", "without a start marker"),
        ("<!-- figures: prompt -->x<!-- /figures -->", "prompt_sst2.json is missing"),
    ],
)
def test_a_broken_block_is_one_line_naming_it(renderer, tmp_path, capsys, readme, message):
    results = write_results(tmp_path / "results")
    path = tmp_path / "README.md"
    path.write_text(readme)
    assert renderer.main(["--readme", str(path), "--results", str(results)]) == 2
    assert message in capsys.readouterr().err
    assert path.read_text() == readme
