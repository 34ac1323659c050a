"""``probe fit``, ``probe sweep``, ``probe predict`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import probe.features.models.loading
from conftest import REPO, cli_args, probe_env, probe_process, run_probe


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def refuse_models(monkeypatch):
    monkeypatch.setattr(
        probe.features.models.loading, "load_backbone", lambda *a, **k: pytest.fail("model loaded")
    )


@pytest.fixture
def head(sms_rows, tmp_path):
    result = run_probe(
        "fit", **sms_rows, layer=2, pool="mean", out=tmp_path / "h" / "sms.json", q=True
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "h" / "sms.json"


def test_fit_reports_saves_and_runs_no_model_the_second_time(sms_rows, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_OUT")  # the default: ./results/heads
    first = run_probe("fit", **sms_rows, layer=-1, q=True)
    assert first.exit_code == 0, first.output
    for fragment in ("layer 3  pool last", "train 72  test 18", "test:", "macro avg", "confusion"):
        assert fragment in first.output
    default_head = next((tmp_path / "results" / "heads").glob("*.json"))
    assert default_head.name.endswith("-sms90-l3-last.json")
    assert default_head.with_suffix(".safetensors").is_file()
    saved = default_head.read_bytes()

    refuse_models(monkeypatch)
    refused = run_probe("fit", **sms_rows, layer=3, class_weight="balanced", q=True)
    assert_one_line_error(refused, str(default_head.relative_to(tmp_path)), "--overwrite")
    assert default_head.read_bytes() == saved  # the head that was there is untouched
    second = run_probe(
        "fit", **sms_rows, layer=3, json=True, class_weight="balanced", overwrite=True
    )
    assert second.exit_code == 0, second.output
    assert f"replacing the head at {default_head.relative_to(tmp_path)}" in second.stderr
    assert default_head.read_bytes() != saved
    report = json.loads(second.stdout)
    assert report["layer"] == 3 and report["n"] == {"train": 72, "test": 18}
    assert report["C_search"]["method"] == "5-fold cross-validation"
    assert set(report["metrics"]["test"]["per_class"]) == {"ham", "spam"}


def test_new_labels_fit_loads_no_model(sms_rows, sms_labelled, tmp_path):
    """In a fresh process: the backbone's weights and modeling code are never touched."""
    extracted = run_probe("extract", **sms_rows, q=True)
    assert extracted.exit_code == 0, extracted.output
    frame = pd.read_csv(sms_labelled)
    frame["label"] = (frame.text.str.len() > 60).map({True: "long", False: "short"})
    frame[["text", "label"]].to_csv(tmp_path / "lengths.csv", index=False)
    labels, out = tmp_path / "lengths.csv", tmp_path / "l.json"
    fit = cli_args("fit", model=sms_rows["model"], labels=labels, layer=2, out=out, json=True)
    code = (
        "import sys, probe.features.models.loading\n"
        "probe.features.models.loading.load_backbone = None  # any call fails\n"
        "from probe.cli import main\n"
        f"args = {fit!r}\n"
        "try:\n    main(args)\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('MODULES', sorted(m for m in ('transformers', 'torch') if m in sys.modules))\n"
    )
    env = probe_env(tmp_path / "store")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "MODULES []"
    report = json.loads(done.stdout[: done.stdout.rindex("MODULES")])
    assert set(report["metrics"]["test"]["per_class"]) == {"long", "short"}


def test_sweep_writes_table_json_plot_and_best_head(sms_rows, tmp_path):
    out = tmp_path / "sweep"
    result = run_probe("sweep", **sms_rows, layers="1:4", out_dir=out, jobs=1, json=True, q=True)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["entries"]) == 6 and report["best"]["test"]["n"] == 18
    assert {p.name for p in out.iterdir()} >= {"sweep.md", "sweep.json", "sweep.png", "head.json"}
    assert json.loads((out / "sweep.json").read_text())["best"] == report["best"]
    table = run_probe("predict", "free prize, call now", head=report["head"])
    assert table.exit_code == 0 and table.output.splitlines()[0].split()[0] == "label"


def test_a_sweep_replaces_its_selected_head_only_when_told(sms_rows, tmp_path):
    out = tmp_path / "sweep"
    first = run_probe("sweep", **sms_rows, layers="2,3", out_dir=out, jobs=1, q=True)
    assert first.exit_code == 0, first.output
    saved = (out / "head.json").read_bytes()
    with pytest.MonkeyPatch.context() as patch:  # refused before any work: no model, no fit
        refuse_models(patch)
        patch.setattr("probe.research.sweep.run_sweep", lambda *a, **k: pytest.fail("swept"))
        again = run_probe("sweep", **sms_rows, layers="2,3", out_dir=out, jobs=1, q=True)
    assert_one_line_error(again, str(out / "head.json"), "--overwrite")
    assert (out / "head.json").read_bytes() == saved
    replaced = run_probe("sweep", **sms_rows, layers="2,3", out_dir=out, jobs=1, overwrite=True)
    assert replaced.exit_code == 0, replaced.output
    assert f"replacing the head at {out / 'head.json'}" in replaced.stderr


def test_sweep_prints_a_short_summary_and_leaves_the_table_in_its_files(
    sms_rows, tmp_path, monkeypatch
):
    """The selected row with its CI, the top 5 rows by the selection score, the row count and
    where the full table went, under 100 columns; -v adds the table (stderr), whole."""
    monkeypatch.chdir(tmp_path)
    result = run_probe("sweep", **sms_rows, layers="0:4:1", out_dir="sweep", jobs=1)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    best, lines = report["best"], result.stdout.splitlines()
    low, high = best["test_accuracy_ci"]
    assert lines[0] == (
        f"selected: layer {best['layer']}, pool {best['pool']}, C {best['C']:g}; test accuracy "
        f"{best['test_accuracy']:.4f} [{low:.3f}, {high:.3f}]"
    )
    assert lines[1] == "chosen by out-of-fold log loss"
    start = lines.index("top 5 of 8 rows by CV log-loss (lower is better):") + 2
    shown = [line.lstrip("* ").split()[:2] for line in lines[start : start + 5]]
    ranked = sorted(report["entries"], key=lambda row: row["selection_log_loss"])[:5]
    assert shown == [[str(row["layer"]), row["pool"]] for row in ranked]
    assert "8 rows in" in result.stdout and "full table: sweep/sweep.md" in result.stdout
    assert max(len(line) for line in lines) <= 100 and "|" not in result.stdout
    table = (tmp_path / "sweep" / "sweep.md").read_text().splitlines()
    assert sum(line.startswith("| ") for line in table) == 9  # its header and 8 rows
    verbose = run_probe(
        "sweep", **sms_rows, layers="0:4:1", out_dir="sweep", jobs=1, v=True, overwrite=True
    )
    assert verbose.stdout.startswith("selected: ") and "|" not in verbose.stdout
    assert (tmp_path / "sweep" / "sweep.md").read_text().strip() in verbose.stderr


def test_predict_table_jsonl_and_data_file(head, sms_labelled, tmp_path):
    table = run_probe("predict", "WINNER! call now", "see you soon", head=head)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["label", "ham", "spam", "text"] and len(lines) == 3
    pd.read_csv(sms_labelled).head(5).to_csv(tmp_path / "five.csv", index=False)
    jsonl = run_probe("predict", head=head, data=tmp_path / "five.csv", json=True)
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(rows) == 5 and set(rows[0]) == {"text", "label", "probabilities"}
    assert rows[0]["label"] in ("ham", "spam")


def damaged(head, how):
    if how == "truncated":
        head.write_bytes(head.read_bytes()[:100])
    elif how == "edited":
        head.write_text(head.read_text().replace('"pool": "mean"', '"pool": "last"'))
    elif how == "weights":
        weights = head.with_suffix(".safetensors")
        weights.write_bytes(weights.read_bytes()[:-8])
    return head


@pytest.mark.parametrize(
    ("how", "fragment"),
    [("truncated", "damaged"), ("edited", "damaged"), ("weights", "does not match")],
)
def test_damaged_head_is_a_one_line_error(head, how, fragment):
    assert_one_line_error(run_probe("predict", "hi", head=damaged(head, how)), fragment)


def test_bad_inputs_are_one_line_errors(sms_rows, head, tmp_path, tiny_gpt2_dir):
    fit = {**sms_rows, "q": True}
    assert_one_line_error(run_probe("fit", **fit, layer=7), "invalid layer '7'", "0..3")
    assert_one_line_error(run_probe("fit", **fit, pool="median"), "unknown pool 'median'")
    one_class = tmp_path / "one.csv"
    pd.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x"] * 3}).to_csv(one_class, index=False)
    assert_one_line_error(
        run_probe("fit", model=tiny_gpt2_dir, data=one_class), "at least 2 classes"
    )
    missing = run_probe("fit", model=tiny_gpt2_dir, data=tmp_path / "nope.csv")
    assert_one_line_error(missing, "not found")
    assert_one_line_error(run_probe("predict", "hi", head=tmp_path / "missing.json"), "not found")
    assert_one_line_error(run_probe("predict", head=head), "give texts as arguments")


def test_head_refused_for_another_model(head, tmp_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    other = tmp_path / "other-gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=32, n_head=2)).save_pretrained(other)
    result = run_probe("predict", "hello", head=head, model=other)
    assert_one_line_error(result, "was fitted on model", "fit a head for this model")


def test_real_processes(sms_rows, tmp_path):
    extracted = run_probe("extract", **sms_rows, q=True)
    cache = extracted.output.strip().splitlines()[-1]
    env = probe_env(tmp_path / "store")

    def run(command, *texts, **options):
        return subprocess.run(
            probe_process(command, *texts, **options),
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=300,
        )

    fit = run("fit", data=cache, layer=3, out=tmp_path / "h.json", q=True)
    assert fit.returncode == 0, fit.stderr
    assert fit.stdout.strip().endswith(f"head: {tmp_path / 'h.json'}")
    predict = run("predict", "Call now to claim", head=tmp_path / "h.json", json=True)
    assert predict.returncode == 0, predict.stderr
    assert json.loads(predict.stdout)["text"] == "Call now to claim"
    bad = run("fit", data=cache, layer=9)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("Error: invalid layer '9'")


def test_new_labels_are_found_in_whichever_caches_of_the_store_hold_them(sms_rows, tmp_path):
    """Two views in the store: the labelled texts split across both, and none in one of
    them alone, still make one training set (no model run, every labelled text used)."""
    frame = pd.read_csv(sms_rows["data"])
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    frame.iloc[:45].to_csv(first, index=False)
    frame.iloc[45:].to_csv(second, index=False)
    for part in (first, second):
        done = run_probe("extract", model=sms_rows["model"], data=part, max_length=48, q=True)
        assert done.exit_code == 0, done.output
    frame["label"] = (frame.text.str.len() > 60).map({True: "long", False: "short"})
    for rows, name in ((frame, "all.csv"), (frame.iloc[45:], "second_only.csv")):
        rows[["text", "label"]].to_csv(tmp_path / name, index=False)
        fit = run_probe(
            "fit",
            model=sms_rows["model"],
            labels=tmp_path / name,
            layer=2,
            max_length=48,
            out=tmp_path / f"{name}.json",
            json=True,
        )
        assert fit.exit_code == 0, fit.output
        report = json.loads(fit.stdout[fit.stdout.index("{") :])
        assert sum(report["n"].values()) == len(rows)
