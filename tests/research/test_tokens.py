"""Word-level heads: sentence splits, sentence-cluster intervals, the control task on word
types, and the CLI from a CoNLL-U file to a tagged sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO, run_probe
from probe.features.store.wordviews import type_sha1
from probe.research.uncertainty import cluster_resample_counts, metric_intervals
from probe.research.words.control import WordControl, control_labels

EWT_DEV = REPO / "data" / "ud_ewt" / "en_ewt-ud-dev-first400.conllu"  # ships with probe


@pytest.fixture(scope="module")
def ewt_small(tmp_path_factory):
    """The first 120 sentences of UD-EWT dev (~2,000 words; shipped): real trees, fast."""
    blocks = EWT_DEV.read_text(encoding="utf-8").split("\n\n")[:120]
    path = tmp_path_factory.mktemp("ewt") / "ewt120.conllu"
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return path


def test_cluster_counts_draw_whole_sentences():
    clusters = np.array([5, 5, 7, 9, 9, 9])
    for counts in cluster_resample_counts(clusters, 50, seed=3):
        assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 3] == counts[:, 5]).all()
        # each resample draws 3 sentences
        per_sentence = counts[:, [0, 2, 3]]
        assert (per_sentence.sum(axis=1) == 3).all()


def test_cluster_interval_equals_the_sentence_level_bootstrap():
    """Known answer: sentences of 40 words all right or all wrong are 10 coin flips, not
    400: the cluster interval is the interval of the 10 sentence outcomes."""
    sentence_right = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 0])
    true = np.zeros(400, np.int64)
    predicted = np.repeat(1 - sentence_right, 40)
    clustered = metric_intervals(
        true, predicted, 2, n_resamples=500, seed=1, clusters=np.repeat(np.arange(10), 40)
    )
    sentences = metric_intervals(
        np.zeros(10, np.int64), 1 - sentence_right, 2, n_resamples=500, seed=1
    )
    words = metric_intervals(true, predicted, 2, n_resamples=500, seed=1)
    np.testing.assert_allclose(clustered["accuracy"], sentences["accuracy"], atol=1e-9)
    assert words["accuracy"][1] - words["accuracy"][0] < 0.5 * (
        clustered["accuracy"][1] - clustered["accuracy"][0]
    )


def test_control_labels_one_per_type_with_the_task_distribution():
    types = type_sha1([f"w{i % 3000}" for i in range(9000)])
    labels = control_labels(types, np.array(["A", "B", "C"]), [60, 30, 10], seed=0)
    by_type = {}
    for key, label in zip(types, labels, strict=True):
        assert by_type.setdefault(key.tobytes(), label) == label
    shares = [np.mean(labels[:3000] == c) for c in "ABC"]
    np.testing.assert_allclose(shares, [0.6, 0.3, 0.1], atol=0.03)
    other_seed = control_labels(types, np.array(["A", "B", "C"]), [60, 30, 10], seed=1)
    assert np.mean(other_seed[:3000] != labels[:3000]) > 0.3


def _control_case(features_of):
    """Synthetic words: 40 types, labels a function of the type, 10 words per sentence."""
    from probe.heads.estimator import ProbeClassifier

    rng = np.random.default_rng(0)
    type_ids = {name: rng.integers(0, 40, n) for name, n in (("train", 3000), ("test", 800))}
    truth = np.arange(40) % 4
    features = {name: features_of(ids, truth, rng) for name, ids in type_ids.items()}
    labels = {name: truth[ids].astype(str) for name, ids in type_ids.items()}
    control = WordControl.build(
        {
            name: (type_sha1([f"t{i}" for i in ids]), np.arange(len(ids)) // 10)
            for name, ids in type_ids.items()
        },
        labels["train"],
        seed=0,
        resamples=200,
    )
    classifier = ProbeClassifier(C=1.0).fit(features["train"], labels["train"])
    return control.row_fields(classifier, features, labels)


def test_selectivity_near_zero_when_features_identify_the_type():
    """One-hot types: the probe memorises any labelling of types, control included."""
    fields = _control_case(
        lambda ids, truth, rng: np.eye(40)[ids] + 0.01 * rng.normal(size=(len(ids), 40))
    )
    assert fields["control_accuracy"] > 0.95 and abs(fields["selectivity"]) < 0.05
    low, high = fields["selectivity_ci"]
    assert low <= fields["selectivity"] <= high


def test_selectivity_high_when_features_hold_only_the_label():
    """One-hot labels: the task is easy, the control task (random per type) is not."""
    fields = _control_case(
        lambda ids, truth, rng: np.eye(4)[truth[ids]] + 0.01 * rng.normal(size=(len(ids), 4))
    )
    assert fields["control_task_accuracy"] > 0.99
    assert fields["control_accuracy"] < 0.6 and fields["selectivity_ci"][0] > 0.3


def test_sweep_splits_by_sentence_and_reports_control(
    tiny_gpt2_dir, ewt_small, tmp_path, monkeypatch
):
    import probe.research.selection as selection
    from probe.research.words.rows import prepare_words

    drawn = []  # the selection's paired bootstrap: its clusters (sentences of val words)

    def paired_differences(*args, **kwargs):
        drawn.append(kwargs.get("clusters"))
        return original(*args, **kwargs)

    original = selection.paired_differences
    monkeypatch.setattr(selection, "paired_differences", paired_differences)

    data = prepare_words(str(tiny_gpt2_dir), task="upos", data=str(ewt_small))
    sentences = {name: set(split.clusters.tolist()) for name, split in data.splits().items()}
    assert not sentences["train"] & sentences["test"] and not sentences["train"] & sentences["val"]
    assert len(sentences["test"]) == 24 and data.word_pool == "last"
    words = {"model": tiny_gpt2_dir, "data": ewt_small, "task": "upos"}
    result = run_probe(
        "sweep", **words, control=True, resamples=50, out_dir=tmp_path / "sweep", q=True
    )
    assert result.exit_code == 0, result.output
    table = (tmp_path / "sweep" / "sweep.md").read_text()  # the full table, in its file
    assert "control acc" in table and "Per-class F1" in table
    assert "task upos, word pool last; words train" in result.output  # the summary names it
    report = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert report["task"] == "upos" and report["words"]["test"] == len(data.test)
    assert all(row["selectivity_ci"] for row in report["entries"])
    assert len(drawn) == 1 and np.array_equal(drawn[0], data.val.clusters)
    tagged = run_probe(
        "predict", "The cat sat .", "Hi there", head=tmp_path / "sweep" / "head.json"
    )
    assert tagged.exit_code == 0, tagged.output
    lines = tagged.output.strip().splitlines()
    assert [len(line.split()) for line in lines] == [4, 2]
    assert all("/" in token for token in lines[0].split())


def test_a_metric_selection_of_word_rows_draws_sentences(tiny_gpt2_dir, ewt_small, monkeypatch):
    """``--metric`` on word rows: the paired bootstrap of the selection draws the sentences of
    the validation words, and AUROC is refused for a many-class task in one line."""
    import probe.research.selection as selection
    from probe.errors import ProbeError
    from probe.research.sweep import run_sweep
    from probe.research.words.rows import prepare_words

    drawn = []

    def paired_metric_differences(*args, **kwargs):
        drawn.append(kwargs.get("clusters"))
        return original(*args, **kwargs)

    original = selection.paired_metric_differences
    monkeypatch.setattr(selection, "paired_metric_differences", paired_metric_differences)
    data = prepare_words(str(tiny_gpt2_dir), task="upos", data=str(ewt_small))
    result = run_sweep(
        data, layers=[1, 3], pools=[data.word_pool], metric="balanced_accuracy", resamples=50
    )
    assert result["selected_by"] == "validation balanced accuracy"
    assert len(drawn) == 1 and np.array_equal(drawn[0], data.val.clusters)
    assert all(row["test_balanced_accuracy_ci"] for row in result["entries"])
    classes = len(np.unique(data.train.labels))
    with pytest.raises(ProbeError, match=f"this one has {classes} classes"):
        run_sweep(data, metric="auroc")


def test_deprel_edge_probe_sees_head_and_dependent(tiny_gpt2_dir, ewt_small, tmp_path):
    from probe.research.words.rows import prepare_words

    data = prepare_words(str(tiny_gpt2_dir), task="deprel", data=str(ewt_small), test_size=0.2)
    features = data.train.features(1, "last")
    assert features.shape[1] == 2 * 32
    # the root is paired with itself: its two halves are equal
    roots = np.flatnonzero(data.train.labels == "root")
    np.testing.assert_array_equal(features[roots, :32], features[roots, 32:])
    words = {"model": tiny_gpt2_dir, "data": ewt_small, "task": "deprel"}
    result = run_probe("sweep", **words, layers="0,3", resamples=20, out_dir=tmp_path / "d", q=True)
    assert result.exit_code == 0, result.output
    assert "task deprel, word pool" in result.output


def test_word_task_errors_are_one_line(tiny_gpt2_dir, ewt_small, tmp_path):
    missing = run_probe("sweep", model=tiny_gpt2_dir, data=ewt_small, task="ner_tags")
    assert missing.exit_code == 1 and "no task 'ner_tags'" in missing.output
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\na,b\n")
    wrong = run_probe("sweep", model=tiny_gpt2_dir, data=csv, task="upos")
    assert wrong.exit_code == 1 and "word-level data" in wrong.output


def test_fit_a_word_head_and_tag(tiny_gpt2_dir, ewt_small, tmp_path):
    head = tmp_path / "upos.json"
    words = {"model": tiny_gpt2_dir, "data": ewt_small, "task": "xpos"}
    fitted = run_probe("fit", **words, layer=2, out=head, json=True, q=True)
    assert fitted.exit_code == 0, fitted.output
    summary = json.loads(fitted.output)
    assert summary["pool"] == "last" and summary["n"]["test"] > 300
    record = json.loads(head.read_text())
    assert record["unit"] == "word" and record["task"] == "xpos"
    tagged = run_probe("predict", "Hello world", head=head, json=True)
    row = json.loads(tagged.output.strip().splitlines()[0])
    assert [w["word"] for w in row["words"]] == ["Hello", "world"]
    assert all(w["label"] in record["label_names"] for w in row["words"])
    first = run_probe("fit", **words, layer=2, pool="first", out=tmp_path / "f.json", q=True)
    assert first.exit_code == 0, first.output  # --pool names no sentence position here
    at_site = run_probe("fit", **words, layer=2, site="attn", out=tmp_path / "s.json")
    assert at_site.exit_code == 1 and len(at_site.output.strip().splitlines()) == 1
    assert "--site and --position read sentence rows" in at_site.output


def test_train_and_test_files_keep_their_sentences_apart(tiny_gpt2_dir, ewt_small, tmp_path, said):
    from probe.research.words.rows import prepare_words

    blocks = EWT_DEV.read_text(encoding="utf-8").split("\n\n")[200:230]
    test_file = tmp_path / "test.conllu"
    test_file.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    data = prepare_words(
        str(tiny_gpt2_dir), task="deprel", train=str(ewt_small), test=str(test_file)
    )
    assert len(np.unique(data.test.clusters)) <= 30
    assert not set(data.test.clusters.tolist()) & set(data.train.clusters.tolist())
    assert len(np.unique(data.val.clusters)) == 12  # 10% of the 120 training sentences
    unseen = data.notes["unseen_label_words"].get("test", 0)
    assert set(data.test.labels.tolist()) <= set(data.train.labels.tolist())
    assert any("never seen in training" in m for m in said) == (unseen > 0)
