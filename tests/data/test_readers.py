"""Reading datasets: formats, columns, and the empty-text policy."""

from __future__ import annotations

import pytest

from probe.data.readers import read_dataset, text_sha1
from probe.errors import ProbeError


def test_reads_the_shipped_sms_data():
    from conftest import SMS_CSV

    data = read_dataset(str(SMS_CSV))
    assert len(data) == 5574 and set(data.labels) == {"ham", "spam"}
    assert data.labels.count("spam") == 747


def test_labels_are_optional_unless_required(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text\nhello\n")
    assert read_dataset(str(path)).labels is None
    with pytest.raises(ProbeError, match="no label column"):
        read_dataset(str(path), require_labels=True)


def test_split_and_id_columns_are_kept(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": 1, "split": "train", "id": 7}\n')
    data = read_dataset(str(path))
    assert data.splits == ["train"] and data.ids == ["7"] and data.labels == ["1"]


def test_missing_label_is_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": null}\n{"text": "b", "label": "x"}\n')
    with pytest.raises(ProbeError, match="no label"):
        read_dataset(str(path))


def test_text_hash_is_sha1_of_utf8():
    import hashlib

    assert text_sha1("café") == hashlib.sha1("café".encode()).digest()
