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


# --- Hugging Face datasets folders and hub ids ---------------------------------------------


def _sentiment():
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    return datasets.Dataset.from_dict(
        {"text": ["awful film", "   ", "great film", "fine"], "label": [0, 1, 1, 1]}, features
    )


def test_reads_a_save_to_disk_folder_with_label_names(tmp_path):
    _sentiment().save_to_disk(str(tmp_path / "ds"))
    data = read_dataset(str(tmp_path / "ds"))
    assert data.texts == ["awful film", "great film", "fine"]
    assert data.labels == ["neg", "pos", "pos"] and data.skipped_empty == 1
    with pytest.raises(ProbeError, match="one split"):
        read_dataset(str(tmp_path / "ds"), split="test")


def test_reads_a_split_of_a_dataset_dict_folder(tmp_path):
    import datasets

    full = _sentiment()
    splits = datasets.DatasetDict({"train": full.select([0, 2]), "test": full.select([3])})
    splits.save_to_disk(str(tmp_path / "dd"))
    assert read_dataset(str(tmp_path / "dd")).texts == ["awful film", "great film"]
    assert read_dataset(str(tmp_path / "dd"), split="test").texts == ["fine"]
    with pytest.raises(ProbeError, match=r"no split 'validation' \(splits: train, test\)"):
        read_dataset(str(tmp_path / "dd"), split="validation")


def test_a_folder_not_from_datasets_is_one_line(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(ProbeError, match="not one written by datasets' save_to_disk"):
        read_dataset(str(tmp_path / "notes"))


def test_offline_hub_id_not_in_the_cache_says_what_to_do(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # a name no cache holds
    with pytest.raises(ProbeError) as caught:
        read_dataset("someone/no-such-dataset-here", split="train")
    message = str(caught.value)
    assert "HF_HUB_OFFLINE=0" in message and "local file" in message
    assert "\n" not in message and len(message) <= 200


def _damaged_parquet(path):
    import pandas as pd

    pd.DataFrame({"text": [f"text {i} " * 20 for i in range(500)], "label": "a"}).to_parquet(path)
    damaged = bytearray(path.read_bytes())
    damaged[100:600] = b"\xff" * 500  # inside the data pages: pyarrow raises an OSError
    path.write_bytes(bytes(damaged))


@pytest.mark.parametrize(
    "name, content",
    [
        ("open_quote.csv", 'text,label\n"never closed,ham\nx,y\n'),  # pandas' ParserError
        ("mixed.jsonl", '{"text": "a", "label": 1}\n[1, 2]\n"x"\n'),  # pandas: TypeError
        ("not.jsonl", "{not json}\n"),  # ValueError
        ("not.parquet", "plain text"),  # pyarrow's ArrowInvalid
        ("damaged.parquet", None),  # pyarrow's OSError (corrupt compressed data)
    ],
)
def test_a_file_that_does_not_parse_is_one_line(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        _damaged_parquet(path)
    else:
        path.write_text(content)
    with pytest.raises(ProbeError, match=f"{name}: cannot parse as {path.suffix[1:]}"):
        read_dataset(str(path))


@pytest.mark.parametrize("damage", ["arrow", "state", "info", "missing arrow"])
def test_a_damaged_datasets_folder_is_one_line(tmp_path, damage):
    folder = tmp_path / "ds"
    _sentiment().save_to_disk(str(folder))
    arrow = next(folder.glob("*.arrow"))
    if damage == "arrow":
        arrow.write_bytes(b"garbage")  # pyarrow's ArrowInvalid
    elif damage == "state":
        (folder / "state.json").write_text("{not json")  # ValueError
    elif damage == "info":
        (folder / "dataset_info.json").write_text('{"features": 3}')  # datasets: TypeError
    else:
        arrow.unlink()  # FileNotFoundError
    with pytest.raises(ProbeError, match="cannot read the datasets folder"):
        read_dataset(str(folder))


# --- binary files given as data ----------------------------------------------------------


@pytest.mark.parametrize("name", ["data.csv", "data.tsv", "data.jsonl"])
def test_a_file_with_nul_bytes_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"text,label\nhello,ham\n\x00\x01\x02binary\x00,spam\n")
    with pytest.raises(ProbeError, match="NUL bytes") as caught:
        read_dataset(str(path))
    assert "\n" not in str(caught.value)


def test_utf16_text_is_refused_not_misread(tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes("text,label\nhello,ham\n".encode("utf-16-le"))
    with pytest.raises(ProbeError, match="binary or UTF-16"):
        read_dataset(str(path))


def test_cli_reads_a_datasets_folder(tmp_path, tiny_gpt2_dir):
    from click.testing import CliRunner

    from probe.cli.main import main

    _sentiment().save_to_disk(str(tmp_path / "ds"))
    run = CliRunner().invoke(
        main,
        [
            "extract",
            "--model",
            str(tiny_gpt2_dir),
            "--data",
            str(tmp_path / "ds"),
            "--layers",
            "1",
            "-q",
        ],
    )
    assert run.exit_code == 0, run.output
    assert run.stdout.strip().endswith(".h5")
