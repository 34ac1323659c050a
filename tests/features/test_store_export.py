"""``probe cache export``: a view as Parquet, safetensors or npz that pandas, ``datasets``,
safetensors and numpy read back with the view's own values, ids, text hashes and labels."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from conftest import REPO, run_probe
from probe.features.store.caches import open_cache


@pytest.fixture
def sms_view(tiny_gpt2_dir, sms_labelled):
    """A real view: the 90 labelled SMS texts (with ids) through the tiny GPT-2."""
    result = run_probe("extract", model=tiny_gpt2_dir, data=sms_labelled, max_length=48, q=True)
    assert result.exit_code == 0, result.output
    return open_cache(result.output.strip().splitlines()[-1])


def _export(view, out, fmt, **options):
    result = run_probe("cache export", view.path, format=fmt, out=out, **options)
    assert result.exit_code == 0, result.output
    assert out.is_file() and "wrote" in result.output
    return out


def _stored(view, pool):
    with h5py.File(view.path, "r") as handle:
        return handle[pool][()]  # float16 [L, N, D]


def test_parquet_reads_back_in_pandas_and_datasets_with_the_views_values(sms_view, tmp_path):
    import datasets
    import pandas as pd

    out = _export(sms_view, tmp_path / "sms.parquet", "parquet")
    frame = pd.read_parquet(out)
    features = [f"layer_{layer}_{pool}" for layer in sms_view.layers for pool in ("last", "mean")]
    assert frame.columns.tolist() == ["id", "text_sha1", "label", "n_tokens", *features]
    assert frame["id"].tolist() == sms_view.ids and frame["label"].tolist() == sms_view.labels
    assert frame["text_sha1"].tolist() == [bytes(row).hex() for row in sms_view.text_sha1]
    dataset = datasets.Dataset.from_parquet(str(out), cache_dir=str(tmp_path / "hf"))
    assert dataset.features["layer_0_last"].length == sms_view.dim  # a fixed-size list
    loaded = dataset.with_format("numpy")[:]  # {column: array}
    assert loaded["id"].tolist() == sms_view.ids and loaded["label"].tolist() == sms_view.labels
    for pool in ("last", "mean"):
        stored = _stored(sms_view, pool)
        for index, layer in enumerate(sms_view.layers):
            column = f"layer_{layer}_{pool}"
            from_pandas = np.stack(frame[column].to_numpy())  # (N, D) float32
            assert from_pandas.dtype == np.float32
            assert np.array_equal(from_pandas, stored[index].astype(np.float32))
            assert np.array_equal(np.asarray(loaded[column]), from_pandas)


def test_safetensors_and_npz_hold_the_stored_float16_and_every_row_identity(sms_view, tmp_path):
    from safetensors import safe_open

    tensors = _export(sms_view, tmp_path / "sms.safetensors", "safetensors")
    arrays = _export(sms_view, tmp_path / "sms.npz", "npy")
    with safe_open(str(tensors), framework="numpy") as handle:
        metadata = handle.metadata()
        read = {name: handle.get_tensor(name) for name in handle.keys()}
    with np.load(arrays, allow_pickle=False) as archive:
        npz = {name: archive[name] for name in archive.files}
    for got in (read, npz):
        for pool in ("last", "mean"):
            assert got[pool].dtype == np.float16
            assert np.array_equal(got[pool], _stored(sms_view, pool))
        assert got["layers"].tolist() == sms_view.layers
        assert np.array_equal(got["text_sha1"], sms_view.text_sha1)
        assert np.array_equal(got["n_tokens"], sms_view.n_tokens)
    assert json.loads(metadata["label"]) == sms_view.labels
    assert json.loads(metadata["id"]) == sms_view.ids
    assert npz["label"].tolist() == sms_view.labels and npz["id"].tolist() == sms_view.ids
    for meta in (json.loads(metadata["probe"]), json.loads(str(npz["meta"]))):
        assert meta["attrs"]["model"] == str(sms_view.meta["model"])
        assert meta["layers"] == sms_view.layers and meta["pools"] == ["last", "mean"]


def test_layers_and_pools_pick_what_goes_in(sms_view, tmp_path):
    out = _export(sms_view, tmp_path / "top.npz", "npy", layers="-1,1", pools="mean")
    with np.load(out, allow_pickle=False) as archive:
        assert "last" not in archive.files and archive["layers"].tolist() == [1, 3]
        assert np.array_equal(archive["mean"], _stored(sms_view, "mean")[[1, 3]])


def test_a_word_view_exports_one_row_per_word(tiny_gpt2_dir, tmp_path):
    import pandas as pd

    from probe.features.store.wordviews import read_tasks

    conllu = REPO / "data" / "ud_ewt" / "en_ewt-ud-dev-first400.conllu"
    first = conllu.read_text(encoding="utf-8").split("\n\n")[:3]
    data = tmp_path / "three.conllu"
    data.write_text("\n\n".join(first) + "\n\n", encoding="utf-8")
    result = run_probe("extract", model=tiny_gpt2_dir, data=data, layers="1", q=True)
    assert result.exit_code == 0, result.output
    view = open_cache(result.output.strip().splitlines()[-1])
    frame = pd.read_parquet(_export(view, tmp_path / "words.parquet", "parquet"))
    assert len(frame) == view.n and frame["sentence"].max() == 2
    assert frame["upos"].tolist() == read_tasks(view.path)["upos"]
    pool = view.pools[0]
    stored = view.features(1, pool)
    assert np.array_equal(np.stack(frame[f"layer_1_{pool}"].to_numpy()), stored)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"format": "xml"}, "unknown export format 'xml'"),
        ({"format": "npy"}, "name it"),  # an npy export is one .npz
        ({"format": "parquet", "layers": "2"}, "layer 2 is not stored"),
        ({"format": "parquet", "pools": "first"}, "pool 'first' is not in"),
    ],
)
def test_bad_requests_are_one_line_and_exit_1(
    tiny_gpt2_dir, sms_subset, tmp_path, arguments, expected
):
    result = run_probe("extract", model=tiny_gpt2_dir, data=sms_subset, layers="1,3", q=True)
    view = result.output.strip().splitlines()[-1]
    result = run_probe("cache export", view, out=tmp_path / "out.parquet", **arguments)
    assert result.exit_code == 1 and expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out.parquet").exists()


def test_not_a_view_and_an_existing_out_are_one_line(sms_view, sms_subset, tmp_path):
    out = tmp_path / "sms.parquet"
    not_view = run_probe("cache export", sms_subset, format="parquet", out=out)
    assert not_view.exit_code == 1 and "not a readable probe cache" in not_view.output
    assert len(not_view.output.strip().splitlines()) == 1
    _export(sms_view, out, "parquet")
    before = out.read_bytes()
    again = run_probe("cache export", sms_view.path, format="parquet", out=out)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert out.read_bytes() == before
    replaced = run_probe(
        "cache export", sms_view.path.name, format="parquet", out=out, overwrite=True, pools="last"
    )
    assert replaced.exit_code == 0, replaced.output  # a bare name is found in the store
    assert out.read_bytes() != before
