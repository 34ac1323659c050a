"""Learning curves: accuracy from one labelled example per class to all of them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_probe
from probe.errors import ProbeError
from probe.features.layers import RowSpec
from probe.research.curve import learning_curve, markdown_table, plot_curve, sample_per_class


def test_sample_per_class_caps_small_classes():
    labels = np.array(["a"] * 10 + ["b"] * 3)
    rows = sample_per_class(labels, 4, np.random.default_rng(0))
    assert (labels[rows] == "a").sum() == 4 and (labels[rows] == "b").sum() == 3
    assert len(set(rows.tolist())) == len(rows)


def test_curve_rises_with_sd_at_every_point(research_data, tmp_path):
    curve = learning_curve(research_data, 3, "last", seeds=5)
    points = curve["points"]
    assert [p["per_class"] for p in points] == [1, 2, 4, 8, 16, 32, 64, "all"]  # < 80 per class
    assert [p["n_train"] for p in points] == [3, 6, 12, 24, 48, 96, 192, 240]
    for point in points:
        assert len(point["accuracies"]) == point["seeds"]
        assert point["accuracy_mean"] == pytest.approx(np.mean(point["accuracies"]), abs=1e-12)
        ddof = 1 if point["seeds"] > 1 else 0
        assert point["accuracy_sd"] == pytest.approx(
            np.std(point["accuracies"], ddof=ddof), abs=1e-12
        )
        assert point["seeds"] == (1 if point["per_class"] == "all" else 5)
    assert points[0]["accuracy_sd"] > 0  # one example per class: the draw matters
    assert points[-1]["accuracy_mean"] > points[0]["accuracy_mean"] + 0.2
    assert points[-1]["accuracy_mean"] > 0.8
    assert curve["scored_on"] == "test"
    assert markdown_table(curve).count("\n") == len(points) + 3
    png = plot_curve(curve, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ProbeError, match="mix is not supported"):
        learning_curve(research_data, RowSpec("mix", (0, 1)), "last")


def test_curve_from_a_sweep_on_the_command_line(sms_rows, tmp_path):
    sweep_dir = tmp_path / "sweep"
    swept = run_probe("sweep", **sms_rows, layers="1,3", pools="mean", out_dir=sweep_dir, q=True)
    assert swept.exit_code == 0, swept.output
    best = json.loads((sweep_dir / "sweep.json").read_text())["best"]
    out = tmp_path / "curve"
    result = run_probe(
        "curve", from_sweep=sweep_dir, sizes="1,4", seeds=3, out_dir=out, json=True, q=True
    )
    assert result.exit_code == 0, result.output
    curve = json.loads(result.output)
    assert (curve["layer"], curve["pool"]) == (best["layer"], best["pool"])
    assert [p["per_class"] for p in curve["points"]] == [1, 4, "all"]
    assert json.loads((out / "curve.json").read_text())["points"] == curve["points"]
    assert (out / "curve.png").is_file() and (out / "curve.md").is_file()
    bad = run_probe("curve", from_sweep=sweep_dir, sizes="x")
    assert bad.exit_code == 1 and "--sizes must be whole numbers" in bad.output
