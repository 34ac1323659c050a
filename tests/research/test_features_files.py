"""``probe fit/sweep --features FILE``: heads on features computed elsewhere. A head fitted on
an exported array is the head fitted on its view (same C, coefficients, predictions), and a
sweep over an exported [layers, N, D] array gives the view's rows."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import run_probe
from probe.features.store.caches import open_cache
from probe.heads.persistence import load_head

# Equal float32 inputs in equal order make the same fit; the tolerance only allows for a
# BLAS that sums in another order.
COEF_RTOL = 1e-6


@pytest.fixture
def sms_view(tiny_gpt2_dir, sms_labelled):
    result = run_probe("extract", model=tiny_gpt2_dir, data=sms_labelled, max_length=48, q=True)
    assert result.exit_code == 0, result.output
    return open_cache(result.output.strip().splitlines()[-1])


def _fit(out, **options) -> dict:
    result = run_probe("fit", layer=2, pool="mean", out=out, json=True, q=True, **options)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _same_head(reference: dict, other: dict, features: np.ndarray) -> None:
    (expected, record), (got, other_record) = load_head(reference["head"]), load_head(other["head"])
    assert got.C_ == expected.C_ and other["C"] == reference["C"]
    np.testing.assert_allclose(got.coef_, expected.coef_, rtol=COEF_RTOL, atol=1e-9)
    np.testing.assert_allclose(got.intercept_, expected.intercept_, rtol=COEF_RTOL, atol=1e-9)
    assert got.predict(features).tolist() == expected.predict(features).tolist()
    assert other["metrics"] == reference["metrics"] and other["n"] == reference["n"]
    assert other_record["label_names"] == record["label_names"]


def test_a_head_on_an_exported_array_is_the_head_on_its_view(sms_view, sms_labelled, tmp_path):
    reference = _fit(tmp_path / "view.json", data=sms_view.path)
    features = sms_view.features(2, "mean")
    parquet = tmp_path / "sms.parquet"
    assert run_probe("cache export", sms_view.path, format="parquet", out=parquet).exit_code == 0
    from_parquet = _fit(tmp_path / "parquet.json", features=parquet)  # labels from the file
    _same_head(reference, from_parquet, features)
    assert from_parquet["model"] == reference["model"]  # the export carries the model's record

    with h5py.File(sms_view.path, "r") as handle:
        bare = handle["mean"][()]  # [L, N, D] float16, as another tool would hand it over
    np.save(tmp_path / "mean.npy", bare)
    # a bare array has no pool: it is "last"; labels row by row, texts checked against nothing
    from_npy = run_probe(
        "fit",
        features=tmp_path / "mean.npy",
        labels=sms_labelled,
        layer=2,
        out=tmp_path / "npy.json",
        json=True,
        q=True,
    )
    assert from_npy.exit_code == 0, from_npy.output
    _same_head(reference, json.loads(from_npy.output), features)

    np.save(tmp_path / "layer2.npy", bare[2].astype(np.float32))  # [N, D]: one layer, 0
    shuffled = pd.read_csv(sms_labelled).sample(frac=1.0, random_state=1)[["id", "label"]]
    shuffled.to_csv(tmp_path / "by_id.csv", index=False)
    npz = tmp_path / "sms.npz"
    assert run_probe("cache export", sms_view.path, format="npy", out=npz).exit_code == 0
    by_id = _fit(tmp_path / "id.json", features=npz, labels=tmp_path / "by_id.csv")
    _same_head(reference, by_id, features)  # an id column puts the labels in the file's order


def test_a_sweep_on_an_exported_array_gives_the_views_rows(sms_view, tmp_path):
    tensors = tmp_path / "sms.safetensors"
    assert (
        run_probe("cache export", sms_view.path, format="safetensors", out=tensors).exit_code == 0
    )
    rows = {}
    for name, source in (("view", {"data": sms_view.path}), ("file", {"features": tensors})):
        result = run_probe("sweep", **source, out_dir=tmp_path / name, json=True, q=True)
        assert result.exit_code == 0, result.output
        rows[name] = json.loads(result.output)["entries"]
    timing = ("seconds", "cpu_seconds")
    assert len(rows["file"]) == 2 * len(sms_view.layers)
    for view_row, file_row in zip(rows["view"], rows["file"], strict=True):
        assert {k: v for k, v in file_row.items() if k not in timing} == {
            k: v for k, v in view_row.items() if k not in timing
        }


def test_a_bare_array_sweeps_its_one_pool(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.array(["a", "b"])[np.arange(80) % 2]
    features = rng.normal(size=(3, 80, 8)).astype(np.float32)
    features[2, :, 0] += 3.0 * (labels == "b")  # layer 2 carries the label
    np.save(tmp_path / "x.npy", features)
    pd.DataFrame({"label": labels}).to_csv(tmp_path / "y.csv", index=False)
    result = run_probe(
        "sweep",
        features=tmp_path / "x.npy",
        labels=tmp_path / "y.csv",
        out_dir=tmp_path / "sweep",
        json=True,
    )
    assert result.exit_code == 0, result.output
    assert "x.npy holds no mean pool: skipped" in result.stderr
    report = json.loads(result.stdout)
    assert [(row["layer"], row["pool"]) for row in report["entries"]] == [
        (0, "last"),
        (1, "last"),
        (2, "last"),
    ]
    assert report["best"]["layer"] == 2 and report["best"]["test_accuracy"] > 0.9


def test_any_parquet_with_layer_columns_is_read(tmp_path):
    """A table from another tool: float64 list columns ``layer_<L>_<pool>`` and a label."""
    rng = np.random.default_rng(1)
    labels = np.array(["a", "b"])[np.arange(60) % 2]
    mean = rng.normal(size=(60, 4)) + 2.0 * (labels == "b")[:, None]
    table = pd.DataFrame({"label": labels, "layer_5_mean": list(mean)})
    table.to_parquet(tmp_path / "mine.parquet")
    out = tmp_path / "head.json"
    result = run_probe(
        "fit", features=tmp_path / "mine.parquet", layer=5, pool="mean", out=out, json=True
    )
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.stdout)
    assert fitted["layer"] == 5 and fitted["metrics"]["test"]["accuracy"] > 0.9
    clf, _ = load_head(fitted["head"])
    assert clf.coef_.shape[-1] == 4


@pytest.mark.parametrize(
    ("make", "options", "expected"),
    [
        (lambda p: p.write_text("a,b\n"), {}, "expected a .npy"),
        (lambda p: np.save(p, np.zeros((2, 3, 4, 5), np.float32)), {}, "expected floats"),
        (lambda p: np.save(p, np.zeros((4, 3), np.float32)), {}, "holds no labels"),
        (lambda p: np.save(p, np.zeros((5, 3), np.float32)), {"labels": "y"}, "has 4 rows"),
        (lambda p: np.save(p, np.zeros((4, 3), np.float32)), {"data": "y"}, "drop --data"),
    ],
)
def test_bad_features_are_one_line(tmp_path, make, options, expected):
    path = tmp_path / ("x.txt" if expected == "expected a .npy" else "x.npy")
    make(path)
    pd.DataFrame({"text": list("wxyz"), "label": list("abab")}).to_csv(tmp_path / "y.csv")
    options = {key: tmp_path / "y.csv" for key in options}
    result = run_probe("fit", features=path, layer=0, **options)
    assert result.exit_code == 1 and expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_labels_in_another_order_than_the_texts_are_refused(sms_view, sms_labelled, tmp_path):
    npz = tmp_path / "sms.npz"
    assert run_probe("cache export", sms_view.path, format="npy", out=npz).exit_code == 0
    frame = pd.read_csv(sms_labelled).drop(columns="id").iloc[::-1]
    frame.to_csv(tmp_path / "reversed.csv", index=False)
    result = run_probe("fit", features=npz, labels=tmp_path / "reversed.csv", layer=0)
    assert result.exit_code == 1 and "is not that of sms.npz's row 0" in result.output
