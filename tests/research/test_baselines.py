"""Baseline rows (majority, bag of words, random weights) and selectivity against them.

Known answers: labels unrelated to the text (row i: class i % 3) leave bag of words at
chance; the real SMS spam labels do not; a layer that carries the class beats the
random-weights row at its layer by a CI that excludes 0; selectivity is exactly the
difference of the two rows' accuracies; a model that is itself freshly initialised with the
baseline's seed is its own random-weights baseline (selectivity 0, CI [0, 0]).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import run_probe
from probe.features.models.loading import directory_fingerprint
from probe.features.models.random_weights import random_weights_model
from probe.heads.cached import CachedData, CachedSplit
from probe.research.baselines.bow import bag_of_words_row
from probe.research.baselines.inputs import prepare_baselines
from probe.research.baselines.scoring import majority_row
from probe.research.sweep import public, run_sweep
from probe.research.sweep_report import markdown_table


def test_baseline_rows_and_selectivity(research_data):
    inputs = prepare_baselines(research_data, seed=1)
    assert inputs.random is not None and len(inputs.texts["test"]) == 120
    assert inputs.random.model_fingerprint != research_data.model_fingerprint
    result = run_sweep(research_data, layers=[0, 3], pools=["mean"], n_jobs=1, baselines=inputs)
    found = result["baselines"]
    assert found["split"] == "test" and found["random_seed"] == 1
    test = research_data.test.labels
    assert found["majority"]["test_accuracy"] == np.mean(test == found["majority"]["prediction"])
    assert abs(found["bag_of_words"]["test_accuracy"] - 1 / 3) < 0.15  # labels ignore the text
    random = {(r["layer"], r["pool"]): r for r in found["random_weights"]}
    assert set(random) == {(0, "mean"), (3, "mean")}
    rows = {row["layer"]: row for row in result["entries"]}
    for layer, row in rows.items():
        other = random[(layer, "mean")]
        assert (
            abs(row["selectivity_vs_random"] - (row["test_accuracy"] - other["test_accuracy"]))
            < 1e-12
        )
        assert (
            abs(
                row["selectivity_vs_bow"]
                - (row["test_accuracy"] - found["bag_of_words"]["test_accuracy"])
            )
            < 1e-12
        )
        low, high = row["selectivity_vs_random_ci"]
        assert low <= row["selectivity_vs_random"] <= high
    assert rows[3]["selectivity_vs_random_ci"][0] > 0.2  # the layer that carries the class
    assert rows[3]["selectivity_vs_bow_ci"][0] > 0.2
    assert rows[0]["selectivity_vs_random_ci"][0] < 0 < rows[0]["selectivity_vs_random_ci"][1]
    assert "selectivity" not in rows[3]  # no accuracy-minus-chance column any more
    text = json.dumps(public(result))  # no per-example vectors left in the JSON
    assert "_correct" not in text
    assert "Baselines on the same test split" in markdown_table(result)


def test_bag_of_words_finds_spam_words(research_cache, research_data):
    """On the SMS texts' real ham/spam labels, words are enough: bag of words beats the
    majority class by a margin its CI excludes."""
    path, source, _ = research_cache
    labels = pd.read_csv(source)["label"].to_numpy(str)

    def split(name, rows):
        return CachedSplit(name, [(str(path), rows)], labels[rows])

    data = CachedData(
        **{
            **research_data.__dict__,
            "train": split("train", np.arange(300)),
            "val": None,
            "test": split("test", np.arange(300, 450)),
        }
    )
    texts = prepare_baselines(data, random_weights=False).texts
    bow = bag_of_words_row(data, texts, cv=3)
    majority = majority_row(data)
    assert bow["C_search"] == "3-fold cross-validation" and bow["C"] > 1e-4
    assert bow["test_accuracy_ci"][0] > majority["test_accuracy"]
    assert bow["test_accuracy"] > 0.9


def test_random_weights_are_seeded_cached_and_keyed_apart(tiny_gpt2_dir, tmp_path, monkeypatch):
    one = random_weights_model(str(tiny_gpt2_dir), seed=1)
    assert random_weights_model(str(tiny_gpt2_dir), seed=1) == one  # built once
    two = random_weights_model(str(tiny_gpt2_dir), seed=2)
    prints = {directory_fingerprint(Path(p)) for p in (tiny_gpt2_dir, one, two)}
    assert len(prints) == 3  # own keys in the row store
    monkeypatch.setenv("PROBE_MODELS", str(tmp_path / "elsewhere"))  # built again: the same
    again = random_weights_model(str(tiny_gpt2_dir), seed=1)
    assert again != one and directory_fingerprint(Path(again)) == directory_fingerprint(Path(one))


def test_sweep_baselines_on_the_command_line(sms_rows, tmp_path):
    """The tiny model is itself GPT-2 initialised under seed 0: its random-weights baseline
    (seed 0) is the same network, so every row's selectivity against it is exactly 0."""
    out = tmp_path / "sweep"
    run = run_probe("sweep", **sms_rows, layers="0,3", baselines=True, q=True, out_dir=out)
    assert run.exit_code == 0, run.output
    result = json.loads((out / "sweep.json").read_text())
    assert len(result["baselines"]["random_weights"]) == 4
    for row in result["entries"]:
        assert row["selectivity_vs_random"] == 0.0
        assert row["selectivity_vs_random_ci"] == [0.0, 0.0]
        assert row["selectivity_vs_bow_ci"] is not None
    assert "acc − random weights [95% CI]" in (out / "sweep.md").read_text()
