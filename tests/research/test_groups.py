"""A group is never split: repeated texts and --group-col groups stay on one side of every
split, fold and resample. Known answers: coin-flip labels on duplicated texts, and groups that
carry the label, score at chance when grouped and far above it when split row by row (both
shown, so the tests can fail)."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import write_sms90
from probe.data.readers import text_sha1
from probe.data.splits import group_ids, held_out_rows
from probe.heads.cached import CachedData, CachedSplit
from probe.heads.rows import prepare
from probe.research.sweep import run_sweep

WIDTH = 128  # wider than the training texts are many: a linear head can memorise them


@pytest.fixture(scope="module")
def wide_gpt2_dir(tmp_path_factory):
    """A random 1-block GPT-2 of width 128 (the real vocabulary): features wide enough that
    a head can memorise ~120 training texts, which is what a leak rewards."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=WIDTH, n_head=2, vocab_size=50257, n_positions=64)
    folder = tmp_path_factory.mktemp("wide-gpt2")
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    return folder


def plant_features(data: CachedData, feature_of_row) -> None:
    """Overwrite every layer and pool of the view behind ``data`` with ``feature_of_row``
    (view row -> vector): real text hashes and splits, features whose truth is known."""
    (path, _), *_ = data.train.parts
    with h5py.File(path, "r+") as handle:
        n_layers, n, dim = handle["last"].shape
        values = np.stack([feature_of_row(row) for row in range(n)]).astype(np.float16)
        for pool in ("last", "mean"):
            handle[pool][...] = np.broadcast_to(values, (n_layers, n, dim))


def view_rows(split: CachedSplit) -> np.ndarray:
    return np.concatenate([rows for _, rows in split.parts])


def rowwise_data(data: CachedData, labels_of_view: np.ndarray, seed: int = 0) -> CachedData:
    """The same view split as before groups existed: row by row, no groups anywhere."""
    from probe.heads.rows import stratified_rows

    path = data.train.parts[0][0]
    everything = np.arange(len(labels_of_view))
    keep, held = stratified_rows(labels_of_view, 0.2, seed)  # no groups: row by row
    return CachedData(
        train=CachedSplit("train", [(path, everything[keep])], labels_of_view[keep]),
        val=None,
        test=CachedSplit("test", [(path, everything[held])], labels_of_view[held]),
        model=data.model,
        model_fingerprint=data.model_fingerprint,
        max_length=data.max_length,
        n_layers_model=data.n_layers_model,
        layers=data.layers,
        cache_keys=data.cache_keys,
    )


def interval_covers(row: dict, value: float) -> bool:
    low, high = row["test_accuracy_ci"]
    return low <= value <= high


def test_duplicated_texts_with_coin_flip_labels_score_at_chance_only_when_grouped(
    wide_gpt2_dir, tmp_path, said
):
    rng = np.random.default_rng(0)
    n_texts = 150
    texts = [f"note {i}: the {rng.choice(['red', 'blue', 'green'])} box" for i in range(n_texts)]
    coin = rng.choice(["heads", "tails"], n_texts)
    frame = pd.DataFrame({"text": texts * 2, "label": list(coin) * 2})  # every text twice
    frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    path = tmp_path / "twice.csv"
    frame.to_csv(path, index=False)

    data = prepare(str(wide_gpt2_dir), data=str(path), max_length=16)
    heard = "\n".join(said)
    assert "300 rows share a group with another row" in heard and "whole groups" in heard
    train_texts = set(frame.text.iloc[view_rows(data.train)])
    assert train_texts.isdisjoint(frame.text.iloc[view_rows(data.test)])
    assert data.grouping["splits"]["train"]["rows_in_shared_groups"] == len(data.train)

    feature = {text: rng.normal(size=WIDTH) for text in texts}  # one random point per text
    plant_features(data, lambda row: feature[frame.text[row]])
    grouped = run_sweep(data, resamples=200)
    for row in grouped["entries"]:
        assert interval_covers(row, 0.5), row  # chance: nothing to read but the text itself
    assert grouped["grouping"]["by"] == "text"
    from probe.research.sweep_report import markdown_table

    assert "Grouped by text: 300 of 300 rows share a group" in markdown_table(grouped)

    leaky = run_sweep(rowwise_data(data, frame.label.to_numpy()), resamples=200)
    assert all(row["test_accuracy"] > 0.75 for row in leaky["entries"])  # twins in train


def test_user_groups_that_carry_the_label_score_at_chance_only_when_grouped(
    wide_gpt2_dir, tmp_path
):
    rng = np.random.default_rng(1)
    authors, per_author = 40, 6
    author = np.repeat([f"author{a}" for a in range(authors)], per_author)
    label = np.repeat(rng.choice(["left", "right"], authors), per_author)  # the author's
    texts = [f"post {i} by someone" for i in range(authors * per_author)]
    frame = pd.DataFrame({"text": texts, "label": label, "author": author})
    path = tmp_path / "authors.csv"
    frame.to_csv(path, index=False)

    data = prepare(str(wide_gpt2_dir), data=str(path), max_length=16, group_col="author")
    train_authors = set(frame.author.iloc[view_rows(data.train)])
    assert train_authors.isdisjoint(frame.author.iloc[view_rows(data.test)])
    assert data.grouping["by"] == "text and column 'author'"

    style = {a: rng.normal(size=WIDTH) for a in set(author)}  # an author's voice
    plant_features(data, lambda row: style[author[row]] + 0.3 * rng.normal(size=WIDTH))
    grouped = run_sweep(data, resamples=200)
    for row in grouped["entries"]:
        assert interval_covers(row, 0.5), row
    leaky = run_sweep(rowwise_data(data, label), resamples=200)
    assert all(row["test_accuracy"] > 0.85 for row in leaky["entries"])


def test_given_splits_are_kept_and_their_shared_texts_counted(tiny_gpt2_dir, tmp_path, said):

    whole = pd.read_csv(write_sms90(tmp_path / "all.csv"))
    train, test = whole.iloc[:70], pd.concat([whole.iloc[70:], whole.iloc[:3]])  # 3 shared
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    data = prepare(
        str(tiny_gpt2_dir),
        train=str(tmp_path / "train.csv"),
        test=str(tmp_path / "test.csv"),
        max_length=32,
    )
    assert len(data.test) == 23  # kept as given
    assert data.grouping["held_out_texts_in_train"] == {"test": 3}
    assert "3 test texts also occur in train (kept as given)" in "\n".join(said)


def test_group_ids_join_equal_texts_and_user_groups():
    keys = [text_sha1(t) for t in ["a", "b", "a", "c", "d", "e"]]
    assert group_ids(keys).tolist() == [0, 1, 0, 2, 3, 4]
    # "c" and "d" share an author, and "a"'s second copy shares one with "e": all join
    users = [None, None, "x", "y", "y", "x"]
    assert group_ids(keys, users).tolist() == [0, 1, 0, 2, 2, 0]


def test_a_held_out_split_takes_whole_groups_of_every_class():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(100), rng.integers(1, 5, 100))
    labels = np.where(groups % 3 == 0, "a", "b")
    held = held_out_rows(labels, 0.2, np.random.default_rng(1), groups)
    assert set(groups[held]).isdisjoint(groups[~held])
    for name in ("a", "b"):
        in_class = np.unique(groups[labels == name])
        share = len(np.unique(groups[held & (labels == name)])) / len(in_class)
        assert abs(share - 0.2) < 0.03  # 20% of each class's groups


def test_word_rows_fold_resample_and_code_by_sentence(tiny_gpt2_dir, tmp_path):
    from conftest import REPO
    from probe.heads.search import fold_rows
    from probe.research.mdl import block_ends, group_order
    from probe.research.measures import bootstrap_rows
    from probe.research.sweep import fit_one
    from probe.research.words.rows import prepare_words

    shipped = REPO / "data" / "ud_ewt" / "en_ewt-ud-dev-first400.conllu"
    blocks = shipped.read_text(encoding="utf-8").split("\n\n")[:60]
    path = tmp_path / "ewt60.conllu"
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    data = prepare_words(str(tiny_gpt2_dir), task="upos", data=str(path), val_size=0)
    assert data.val is None
    sentence = data.train.group_ids()
    assert np.array_equal(sentence, data.train.clusters)

    result = fit_one(data, 1, data.word_pool)  # C by k-fold: folds of whole sentences
    assert "grouped cross-validation" in result.classifier.search_["method"]
    codes = np.unique(data.train.labels, return_inverse=True)[1]
    for train_rows, held_rows in fold_rows(codes, 3, 0, sentence):
        assert set(sentence[train_rows]).isdisjoint(sentence[held_rows])

    rows = bootstrap_rows(len(sentence), sentence, seed=3)  # --repeats: whole sentences
    drawn, sizes = np.unique(sentence[rows], return_counts=True)
    full = dict(zip(*np.unique(sentence, return_counts=True), strict=True))
    assert all(size % full[s] == 0 for s, size in zip(drawn, sizes, strict=True))

    order, boundaries = group_order(len(sentence), sentence, seed=0)  # MDL's order
    ordered = sentence[order]
    assert len(boundaries) - 1 == len(np.unique(sentence))  # each sentence one run
    for end in block_ends(len(sentence), boundaries=boundaries):
        assert end == len(ordered) or ordered[end - 1] != ordered[end]  # cut between


def test_the_cli_groups_by_column_solves_exactly_and_refuses_a_missing_column(sms_rows, tmp_path):
    import json

    from conftest import run_probe

    frame = pd.read_csv(sms_rows["data"])
    frame["thread"] = [f"t{i // 3}" for i in range(len(frame))]  # three messages a thread
    path = tmp_path / "threads.csv"
    frame.to_csv(path, index=False)
    options = {**sms_rows, "data": path, "layer": 2, "out": tmp_path / "head.json"}
    fitted = run_probe("fit", **options, group_col="thread", exact=True, json=True)
    assert fitted.exit_code == 0, fitted.output
    summary = json.loads(fitted.output[fitted.output.index("{") :])
    assert summary["C_search"]["exact"] is True
    assert summary["C_search"]["method"].endswith("grouped cross-validation")
    head = json.loads((tmp_path / "head.json").read_text())
    assert head["grouping"]["by"] == "text and column 'thread'"

    bad_metric = run_probe("sweep", **sms_rows, metric="f1", out_dir=tmp_path / "never")
    assert bad_metric.exit_code == 1 and len(bad_metric.output.strip().splitlines()) == 1
    assert "unknown metric 'f1'" in bad_metric.output and not (tmp_path / "never").exists()

    missing = run_probe("fit", **{**options, "out": tmp_path / "other.json"}, group_col="author")
    assert missing.exit_code == 1
    assert "no group column 'author'" in missing.output and "Traceback" not in missing.output
    assert len(missing.output.strip().splitlines()) == 1
