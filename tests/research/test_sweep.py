"""Labelled cached rows from every kind of input, and the layer x pool sweep."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import probe.features.models.loading
from conftest import run_probe
from probe.data.readers import read_dataset
from probe.errors import ProbeError
from probe.features.extract import extract
from probe.heads.cached import CachedSplit
from probe.heads.rows import prepare
from probe.research.sweep import public, run_sweep
from probe.research.sweep_report import markdown_table, plot_sweep, with_ci


def refuse_models(monkeypatch):
    """From now on, any attempt to load a backbone fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the backbone was loaded")

    monkeypatch.setattr(probe.features.models.loading, "load_backbone", refuse)


def test_one_file_is_split_stratified_and_extracted_once(
    tiny_gpt2_dir, sms_labelled, monkeypatch, said
):
    data = prepare(str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48)
    assert (len(data.train), len(data.test), data.val) == (72, 18, None)
    assert "holding out 18 of 90 examples (20%, stratified, seed 0)" in "\n".join(said)
    assert sorted(data.test.labels.tolist()).count("spam") == 6  # 20% of each class
    assert data.layers == [0, 1, 2, 3] and data.max_length == 48
    assert data.model == str(tiny_gpt2_dir.resolve())
    first_test = set(data.test.parts[0][1].tolist())

    refuse_models(monkeypatch)
    again = prepare(str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48, seed=1)
    assert again.cache_keys == data.cache_keys
    assert set(again.test.parts[0][1].tolist()) != first_test
    texts = read_dataset(str(sms_labelled)).texts
    features = again.test.features(3, "last")
    assert features.shape == (18, 32) and features.dtype == np.float32
    assert again.test.labels.tolist() == [
        read_dataset(str(sms_labelled)).labels[i] for i in again.test.parts[0][1]
    ]
    assert len(texts) == 90


def test_split_column_and_its_names(tiny_gpt2_dir, sms_labelled, tmp_path):
    frame = pd.read_csv(sms_labelled)
    frame["split"] = ["train"] * 60 + ["validation"] * 15 + ["test"] * 15
    path = tmp_path / "with_split.csv"
    frame.to_csv(path, index=False)
    data = prepare(str(tiny_gpt2_dir), data=str(path), max_length=48)
    assert (len(data.train), len(data.val), len(data.test)) == (60, 15, 15)
    assert data.val.labels.tolist() == frame.label[60:75].tolist()

    frame["split"] = ["train"] * 80 + ["holdout"] * 10
    frame.to_csv(path, index=False)
    with pytest.raises(ProbeError, match="unknown split values holdout"):
        prepare(str(tiny_gpt2_dir), data=str(path), max_length=48)


def test_cache_files_as_inputs_must_match_the_model(tiny_gpt2_dir, sms_labelled, tmp_path):
    dataset = read_dataset(str(sms_labelled))
    train = extract(str(tiny_gpt2_dir), dataset.subset([i < 70 for i in range(90)]), max_length=48)
    test = extract(str(tiny_gpt2_dir), dataset.subset([i >= 70 for i in range(90)]), max_length=48)
    data = prepare(train=str(train), test=str(test))
    assert (len(data.train), len(data.test)) == (70, 20)
    assert data.model == str(tiny_gpt2_dir)  # as the cache recorded it
    pd.read_csv(sms_labelled)[70:].to_csv(tmp_path / "test.csv", index=False)
    mixed = prepare(train=str(train), test=str(tmp_path / "test.csv"), max_length=48)
    assert mixed.cache_keys["test"] == data.cache_keys["test"]  # extracted with the cache's model

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    other = tmp_path / "other-gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=32, n_head=2)).save_pretrained(other)
    with pytest.raises(ProbeError, match="was extracted with model"):
        prepare(str(other), train=str(train), test=str(test))


def new_label_file(sms_labelled, tmp_path, match="text", extra_text=None):
    """A different task on the same texts: long versus short messages, joined by ``match``:
    text, id (the texts are then wrong on purpose), or ids_only (no text column)."""
    frame = pd.read_csv(sms_labelled)
    expected = dict(
        zip(frame.id, np.where(frame.text.str.len() > 60, "long", "short"), strict=True)
    )
    frame["label"] = frame.id.map(expected)
    if match == "text":
        frame = frame.drop(columns=["id"])
    elif match == "id":
        frame["text"] = "text is not used when ids match"
    else:
        frame = frame.drop(columns=["text"])
    if extra_text:
        extra = pd.DataFrame({"text": extra_text, "label": ["long"] * len(extra_text)})
        frame = pd.concat([frame, extra])
    path = tmp_path / f"lengths_by_{match}.csv"
    frame.to_csv(path, index=False)
    return path, expected


@pytest.mark.parametrize("match", ["text", "id", "ids_only"])
def test_new_labels_join_cached_texts_without_a_model(
    tiny_gpt2_dir, sms_labelled, tmp_path, match, monkeypatch
):
    extract(str(tiny_gpt2_dir), read_dataset(str(sms_labelled)), max_length=48)
    refuse_models(monkeypatch)
    path, expected = new_label_file(sms_labelled, tmp_path, match=match)
    data = prepare(str(tiny_gpt2_dir), labels=str(path))  # the store is searched
    assert len(data.train) + len(data.test) == 90
    ids = pd.read_csv(sms_labelled).id.tolist()
    for split in (data.train, data.test):
        ((cache_path, rows),) = split.parts
        assert split.labels.tolist() == [expected[ids[row]] for row in rows]
    assert set(data.train.labels) == {"long", "short"}


def test_new_labels_for_uncached_texts_are_counted_and_shown(tiny_gpt2_dir, sms_labelled, tmp_path):
    cache = extract(str(tiny_gpt2_dir), read_dataset(str(sms_labelled)), max_length=48)
    path, _ = new_label_file(sms_labelled, tmp_path, extra_text=["never seen", "nor this one"])
    with pytest.raises(ProbeError, match=r"2 of 92 labelled texts are not in the cache") as caught:
        prepare(data=str(cache), labels=str(path))
    assert "'never seen'" in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture
def sms_data(tiny_gpt2_dir, sms_labelled):
    return prepare(str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48)


def test_validation_not_test_chooses_layer_and_pool(sms_data):
    """Validation = the test rows with flipped labels: the sweep must pick the entry worst
    on test; had test data chosen, it would pick the best."""
    flipped = np.where(sms_data.test.labels == "spam", "ham", "spam")
    sms_data.val = CachedSplit("val", sms_data.test.parts, flipped)
    result = run_sweep(sms_data, n_jobs=1, C=1.0)
    entries = result["entries"]
    assert len(entries) == 4 * 2
    test_accuracy = [row["test_accuracy"] for row in entries]
    assert max(test_accuracy) > min(test_accuracy)
    for row in entries:
        assert row["val_accuracy"] == pytest.approx(1 - row["test_accuracy"])
    losses = [row["selection_log_loss"] for row in entries]
    assert result["best"]["selection_log_loss"] == min(losses)  # chosen by validation loss
    assert result["best"]["test_accuracy"] < max(test_accuracy)  # not by test accuracy
    assert result["selection"] == "validation"


def test_sweep_outputs_table_json_and_plot(sms_data, tmp_path):
    result = run_sweep(sms_data, layers=[1, 3], pools=["mean"], n_jobs=1)
    assert result["selection"] == "5-fold cross-validation"
    best = result["best"]
    assert best["test"]["n"] == 18 and "confusion_matrix" in best["test"]
    table = markdown_table(result).splitlines()
    assert table[0].startswith("| layer | pool | C | CV log-loss | ≈ chosen | CV acc |")
    assert len(table) == 2 + 2 + 3  # header, 2 rows, blank, the selected row, the grouping
    assert table[-1].startswith("Grouped by text: 0 of 90 rows share a group")
    assert sum("**" in line for line in table) == 1
    assert "_best_result" not in public(result)
    png = plot_sweep(result, tmp_path / "plots" / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parallel_sweep_equals_serial(sms_data):
    sms_data.val = CachedSplit("val", sms_data.test.parts, sms_data.test.labels)
    serial = run_sweep(sms_data, layers=[2, 3], n_jobs=1, C=1.0)
    parallel = run_sweep(sms_data, layers=[2, 3], n_jobs=2, C=1.0)

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")} for r in rows]

    assert strip(parallel["entries"]) == strip(serial["entries"])


def test_unknown_layer_or_pool_is_a_one_line_error(sms_data):
    with pytest.raises(ProbeError, match="invalid layer '7'"):
        sms_data.layer("7")
    with pytest.raises(ProbeError, match="unknown pool 'max'"):
        run_sweep(sms_data, pools=["max"])
    assert sms_data.layer("-1") == 3


def test_one_class_training_labels_stop_before_extraction(tiny_gpt2_dir, tmp_path, monkeypatch):
    refuse_models(monkeypatch)
    path = tmp_path / "one.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "x", "x"]}).to_csv(path, index=False)
    with pytest.raises(ProbeError, match="at least 2 classes"):
        prepare(str(tiny_gpt2_dir), data=str(path))


def test_every_number_has_its_uncertainty(research_data, tmp_path):
    result = run_sweep(research_data, n_jobs=2, repeats=3, resamples=500)
    assert result["bootstrap"] == {"resamples": 500, "seed": 0, "level": 0.95}
    for row in result["entries"]:
        for split in ("val", "test"):
            for metric in ("accuracy", "macro_f1"):
                low, high = row[f"{split}_{metric}_ci"]
                assert low <= row[f"{split}_{metric}"] <= high
        assert row["repeats"] == 3 and row["repeat_accuracy_sd"] < 0.1  # 240 rows: a few points
        assert abs(row["repeat_accuracy_mean"] - row["test_accuracy"]) < 0.15
        assert isinstance(row["indistinguishable"], bool)
    assert any(row["repeat_accuracy_sd"] > 0 for row in result["entries"])  # refits differ
    best = result["best"]
    assert best["layer"] == 3 and best["indistinguishable"] and best["loss_difference_ci"] == [0, 0]
    assert result["selected_by"] == "validation log loss"
    assert not any(r["indistinguishable"] for r in result["entries"] if r["layer"] == 0)
    json.dumps(public(result))  # plain JSON types only
    table = markdown_table(result)
    assert "test acc [95% CI]" in table and "acc over 3 refits" in table and " ± " in table
    png = plot_sweep(result, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prefer_early_takes_the_shallowest_indistinguishable_row(research_data):
    # layers 2 and 3 are both informative; on 12 validation rows they cannot be told apart
    research_data.val = research_data.val.take(np.arange(12), "val")
    default = run_sweep(research_data, layers=[1, 2, 3], pools=["mean"], n_jobs=1)
    early = run_sweep(research_data, layers=[1, 2, 3], pools=["mean"], n_jobs=1, prefer_early=True)
    assert early["best"]["layer"] <= default["best"]["layer"]
    same = [row["layer"] for row in early["entries"] if row["indistinguishable"]]
    assert early["best"]["layer"] == min(same) and early["prefer_early"]
    assert early["selected_by"].endswith("the shallowest indistinguishable layer")
    assert early["lowest_loss"]["layer"] == default["best"]["layer"]


def test_without_validation_the_loss_is_out_of_fold(research_data):
    research_data.val = None
    result = run_sweep(research_data, layers=[0, 3], pools=["last"], n_jobs=1)
    assert result["selected_by"] == "out-of-fold log loss" and result["best"]["layer"] == 3
    assert all(row["selection_log_loss"] > 0 for row in result["entries"])


def test_a_metric_selects_the_row_and_heads_the_summary(research_data):
    from sklearn.metrics import balanced_accuracy_score

    result = run_sweep(
        research_data, layers=[0, 2, 3], pools=["mean"], n_jobs=1, metric="balanced_accuracy"
    )
    assert result["metric"] == "balanced_accuracy"
    assert result["selected_by"] == "validation balanced accuracy"
    best, entries = result["best"], result["entries"]
    assert best["selection_balanced_accuracy"] == max(
        row["selection_balanced_accuracy"] for row in entries
    )
    for row in entries:
        assert row["selection_balanced_accuracy"] == pytest.approx(row["val_balanced_accuracy"])
        for split in ("val", "test"):
            low, high = row[f"{split}_balanced_accuracy_ci"]
            assert low <= row[f"{split}_balanced_accuracy"] <= high
        assert "test_auroc" not in row and "test_average_precision_ci" not in row  # 3 classes
        assert len(row["balanced_accuracy_difference_ci"]) == 2
    assert not next(row for row in entries if row["layer"] == 0)["indistinguishable"]
    assert best["balanced_accuracy_difference_ci"] == [0.0, 0.0]
    head = result["_best_result"].classifier
    predicted = head.predict(research_data.test.features(best["layer"], "mean"))
    expected = balanced_accuracy_score(research_data.test.labels, predicted)
    assert best["test_balanced_accuracy"] == pytest.approx(expected)
    assert best["test"]["balanced_accuracy"] == best["test_balanced_accuracy"]
    table = markdown_table(result)
    assert "| val bal. acc | ≈ chosen | val acc |" in table and "test bal. acc [95% CI]" in table
    assert "Selected by validation balanced accuracy: layer" in table
    assert f"test balanced accuracy {with_ci(best, 'test_balanced_accuracy')}" in table
    assert "from the highest val balanced accuracy" in table
    json.dumps(public(result))
    with pytest.raises(ProbeError, match="needs a binary task; this one has 3 classes"):
        run_sweep(research_data, metric="auroc")
    with pytest.raises(ProbeError, match="unknown metric 'f2'"):
        run_sweep(research_data, metric="f2")


def test_the_default_sweep_reports_every_metric_and_heads_with_accuracy(sms_data):
    from sklearn.metrics import average_precision_score, roc_auc_score

    result = run_sweep(sms_data, layers=[1, 3], pools=["mean"], n_jobs=1, resamples=200)
    assert result["metric"] == "accuracy" and result["selected_by"] == "out-of-fold log loss"
    for row in result["entries"]:
        for metric in ("accuracy", "macro_f1", "balanced_accuracy", "auroc", "average_precision"):
            low, high = row[f"test_{metric}_ci"]
            assert low <= row[f"test_{metric}"] <= high
    best = result["best"]
    head = result["_best_result"].classifier
    positive = head.predict_proba(sms_data.test.features(best["layer"], "mean"))[:, 1]
    spam = sms_data.test.labels == head.classes_[1]
    assert best["test_auroc"] == pytest.approx(roc_auc_score(spam, positive))
    assert best["test_average_precision"] == pytest.approx(average_precision_score(spam, positive))
    table = markdown_table(result)
    assert "| test bal. acc | test AUROC |" in table and "test AUROC [95% CI]" not in table
    assert f"test accuracy {with_ci(best, 'test_accuracy')}" in table


def test_auroc_selects_on_validation_not_test(sms_data):
    """Validation = the test rows with flipped labels, so each row's validation AUROC is one
    minus its test AUROC: the sweep must pick the row worst on test."""
    flipped = np.where(sms_data.test.labels == "spam", "ham", "spam")
    sms_data.val = CachedSplit("val", sms_data.test.parts, flipped)
    result = run_sweep(sms_data, n_jobs=1, C=1.0, metric="auroc", resamples=200)
    test_auroc = [row["test_auroc"] for row in result["entries"]]
    for row in result["entries"]:
        assert row["val_auroc"] == pytest.approx(1 - row["test_auroc"])
        assert row["selection_auroc"] == pytest.approx(row["val_auroc"])
    assert max(test_auroc) > min(test_auroc)
    assert result["best"]["test_auroc"] == min(test_auroc)
    assert result["selected_by"] == "validation AUROC" and result["metric"] == "auroc"


def test_without_validation_a_metric_is_out_of_fold(research_data):
    research_data.val = None
    result = run_sweep(research_data, layers=[0, 3], pools=["last"], n_jobs=1, metric="macro_f1")
    assert result["selected_by"] == "out-of-fold macro-F1" and result["best"]["layer"] == 3
    assert all(0 < row["selection_macro_f1"] < 1 for row in result["entries"])
    assert "| CV macro-F1 | ≈ chosen | CV acc |" in markdown_table(result)


def test_metric_sweep_on_the_command_line(sms_rows, tmp_path):
    options = {"layers": "1,3", "resamples": 100, "out_dir": tmp_path / "sweep", "q": True}
    result = run_probe("sweep", **sms_rows, metric="auroc", prefer_early=True, json=True, **options)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["metric"] == "auroc"
    assert report["selected_by"] == "out-of-fold AUROC then the shallowest indistinguishable layer"
    assert all(row["test_auroc_ci"] and row["auroc_difference_ci"] for row in report["entries"])
    assert "test AUROC [95% CI]" in (tmp_path / "sweep" / "sweep.md").read_text()
    wrong = run_probe("sweep", **sms_rows, metric="f1", **options)
    assert wrong.exit_code == 1 and "unknown metric 'f1'" in wrong.output


def test_research_sweep_on_the_command_line(sms_rows, tmp_path):
    out = tmp_path / "sweep"
    research = {"control": True, "mdl": True, "repeats": 2, "prefer_early": True}
    result = run_probe(
        "sweep",
        **sms_rows,
        layers="1,3",
        **research,
        mix=True,
        concat="1,3",
        resamples=200,
        out_dir=out,
        json=True,
        q=True,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["entries"]) == 2 * 2 + 2 * 2  # 2 layers + mix + concat, 2 pools
    for row in report["entries"]:
        assert {
            "memorisation_capacity",
            "mdl_compression",
            "repeat_accuracy_sd",
            "test_accuracy_ci",
        } <= set(row)
        assert "selectivity" not in row and "control_accuracy" not in row
    assert report["settings"]["test_size"] == 0.2 and report["prefer_early"]
    assert json.loads((out / "sweep.json").read_text())["entries"] == report["entries"]


def test_texts_with_conflicting_labels_are_counted_aloud(
    tiny_gpt2_dir, sms_labelled, tmp_path, said
):
    frame = pd.read_csv(sms_labelled)
    flipped = frame.head(7).assign(label=lambda f: f.label.map({"ham": "spam", "spam": "ham"}))
    path = tmp_path / "conflict.csv"
    pd.concat([frame, flipped]).to_csv(path, index=False)
    prepare(str(tiny_gpt2_dir), data=str(path), max_length=48)
    assert any(
        m.endswith(
            "7 texts appear more than once with different labels; they are kept "
            "as given (no model can get both right)"
        )
        for m in said
    )
    said.clear()
    prepare(str(tiny_gpt2_dir), data=str(sms_labelled), max_length=48)
    assert not any("different labels" in m for m in said)
