"""``probe compare`` end to end on a tiny random GPT-2 and real SMS texts, through the real CLI."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from conftest import REPO
from probe.cli import main

GRID = (1e-4, 1e-3)
FAST = ["--epochs", "1", "--batch-size", "16", "--max-length", "32", "--quiet"]


def repo_files() -> set[str]:
    """Files under the checkout a compare run could write into (outputs, not source edits)."""
    skip = {".git", ".venv", "cache", "__pycache__", ".ruff_cache", ".pytest_cache"}
    found = set()
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip]
        found.update(os.path.join(root, name) for name in files)
    return found


@pytest.fixture(scope="module")
def compared(tiny_gpt2_dir, tmp_path_factory):
    """One compare run (default out-dir, cwd in an empty folder), shared by the tests here."""
    from conftest import write_sms90

    folder = tmp_path_factory.mktemp("compare")
    data = write_sms90(folder / "sms90.csv")
    store, cwd = folder / "store", folder / "cwd"
    cwd.mkdir()
    before = repo_files()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(
            main,
            [
                "compare",
                "--model",
                str(tiny_gpt2_dir),
                "--data",
                str(data),
                *FAST,
                "--lr-grid",
                ",".join(map(str, GRID)),
                "--json",
            ],
            env={"PROBE_CACHE": str(store), "HF_HUB_OFFLINE": "1", "PROBE_OUT": None},
        )
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    return {
        "json": json.loads(result.output.strip().splitlines()[-1]),
        "out_dir": cwd
        / "results"
        / "reports"
        / f"compare-{tiny_gpt2_dir.name.replace('-', '_')}-sms90",
        "store": store,
        "cwd": cwd,
        "new_repo_files": repo_files() - before,
    }


def test_outputs_land_in_the_results_folder_not_in_the_store_or_the_checkout(compared):
    out_dir = compared["out_dir"]  # ./results/reports/compare-MODEL-DATA of the cwd
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "compare.json",
        "compare.md",
        "compare.png",
    ]
    assert [p.name for p in compared["cwd"].iterdir()] == ["results"]
    assert not (compared["store"] / "reports").exists()
    written = [p for p in compared["new_repo_files"] if "compare" in os.path.basename(p)]
    assert written == []
    assert json.loads((out_dir / "compare.json").read_text()) == compared["json"]


def test_every_row_has_a_ci_containing_its_accuracy(compared):
    result = compared["json"]
    methods = [row["method"] for row in result["finetune"]]
    assert methods == [
        "fine-tune, unfreeze 0",
        "fine-tune, unfreeze 1",
        "fine-tune, unfreeze 2",
        "fine-tune, unfreeze all",
        "book recipe (last block + norm)",
    ]
    assert [row["unfreeze"] for row in result["finetune"]] == [0, 1, 2, 3, 1]
    for row in [result["probe"], *result["finetune"]]:
        for metric in ("accuracy", "macro_f1"):
            low, high = row["ci"][metric]
            assert low <= row["test"][metric] <= high, (row["method"], metric)
            assert 0.0 <= low <= high <= 1.0
    for row in result["finetune"]:
        versus = row["vs_probe"]
        difference = row["test"]["accuracy"] - result["probe"]["test"]["accuracy"]
        assert versus["accuracy_difference"] == pytest.approx(difference, abs=1e-12)
        low, high = versus["ci"]
        assert low <= versus["accuracy_difference"] <= high
        assert versus["significant"] == (low > 0 or high < 0)


def test_body_lr_is_chosen_from_the_grid_on_validation(compared):
    rows = compared["json"]["finetune"]
    head_only, *searched, book = rows
    assert head_only["lr_body"] is None and len(head_only["trials"]) == 1
    for row in searched:
        assert [trial["lr_body"] for trial in row["trials"]] == list(GRID)
        assert row["lr_body"] in GRID
        best = max(row["trials"], key=lambda t: (t["val_accuracy"], -t["val_loss"]))
        assert row["lr_body"] == best["lr_body"]
        assert row["search_seconds"] == pytest.approx(sum(t["seconds"] for t in row["trials"]))
    assert (book["lr_body"], book["lr_head"], book["weight_decay"], book["batch_size"]) == (
        5e-5,
        5e-5,
        0.1,
        8,
    )
    assert book["epochs_run"] == 5  # the recipe's epochs, whatever --epochs says
    # LP-FT by default; the book's recipe keeps its untrained head
    assert [row["init_head"] for row in rows] == ["probe"] * (len(rows) - 1) + ["zero"]
    assert compared["json"]["settings"]["bootstrap"]["resamples"] == 1000


def test_markdown_marks_significance_and_cost(compared):
    table = (compared["out_dir"] / "compare.md").read_text()
    for row in compared["json"]["finetune"]:
        start = " (LP-FT)" if row["init_head"] == "probe" else ""  # the head's start, marked
        cell = f"| {row['method']}{start} |"
        line = next(text for text in table.splitlines() if text.startswith(cell))
        assert f"{row['test']['accuracy']:.4f} [{row['ci']['accuracy'][0]:.4f}, " in line
        assert line.count(" *") == int(row["vs_probe"]["significant"])
    assert "significantly" in table and "LR search" in table


def test_early_stopping_stops_and_keeps_the_best_epoch(tiny_gpt2_dir, sms_labelled):
    from probe.data.splits import load_splits
    from probe.finetune.training import FinetuneConfig, finetune

    splits = load_splits(data=str(sms_labelled), seed=0)
    config = FinetuneConfig(
        unfreeze=1,
        lr_body=0.0,
        lr_head=0.0,
        epochs=6,
        patience=1,
        batch_size=16,
        max_length=32,
        forgetting_check=False,
    )
    report = finetune(str(tiny_gpt2_dir), splits, config).report
    # nothing moves at lr 0, so validation never improves on epoch 1: stop after epoch 2
    assert len(report["epochs"]) == 2
    assert report["best_epoch"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr-grid", "fast"], "--lr-grid must be comma-separated numbers"),
        (["--lr-grid", "0,1e-5"], "--lr-grid needs at least one positive"),
    ],
)
def test_bad_lr_grid_is_one_line(tiny_gpt2_dir, sms_labelled, args, message):
    result = CliRunner().invoke(
        main, ["compare", "--model", str(tiny_gpt2_dir), "--data", str(sms_labelled), *args]
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_the_screen_gets_a_readable_table_not_a_dict_or_json(tiny_gpt2_dir, sms_labelled, tmp_path):
    """Without --json: one row per method under 100 columns, the data in words, where the full
    table went; the settings are words in compare.md too, and -v prints that table."""
    out = tmp_path / "compared"
    args = ["compare", "--model", str(tiny_gpt2_dir), "--data", str(sms_labelled), *FAST[:-1]]
    args += ["--unfreeze", "0", "--no-book", "--out-dir", str(out)]
    done = CliRunner().invoke(main, args, env={"PROBE_CACHE": str(tmp_path / "store")})
    assert done.exit_code == 0, done.output
    result = json.loads((out / "compare.json").read_text())
    lines = done.stdout.splitlines()
    assert lines[0] == f"probe vs fine-tuning: {tiny_gpt2_dir.name}; texts train 63, val 9, test 18"
    assert lines[2].split("  ")[0] == "method" and lines[3].startswith(result["probe"]["method"])
    row = result["finetune"][0]
    low, high = row["ci"]["accuracy"]
    assert lines[4].startswith("fine-tune, unfreeze 0 (LP-FT)")
    assert f"{row['test']['accuracy']:.4f} [{low:.3f}, {high:.3f}]" in lines[4]
    assert f"full table: {out / 'compare.md'}" in done.stdout
    assert "{" not in done.stdout and "|" not in done.stdout
    assert max(len(line) for line in lines if not line.startswith("full table")) <= 100
    assert "texts: train 63, val 9, test 18" in done.stderr.splitlines()  # said, not a dict
    assert "Settings: epochs 1, patience none, batch size 16" in (out / "compare.md").read_text()
    assert "{" not in (out / "compare.md").read_text()
    verbose = CliRunner().invoke(main, [*args, "-v"], env={"PROBE_CACHE": str(tmp_path / "store")})
    assert verbose.exit_code == 0 and "| method | body lr |" in verbose.stderr
