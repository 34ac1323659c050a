"""CoNLL-U and token-JSONL readers: handwritten edge cases and the real UD-EWT dev file."""

from __future__ import annotations

import pytest

from conftest import REPO
from probe.data.conllu import (
    is_word_source,
    parse_conllu,
    parse_token_jsonl,
    read_word_dataset,
    segmentation_sha1,
)
from probe.errors import ProbeError

EWT_DEV = REPO / "data" / "ud_ewt" / "en_ewt-ud-dev-first400.conllu"  # ships with probe

EDGE_CASES = "\n".join(
    [
        "# sent_id = s1",
        "# text = I don't know, gonna see.",
        "1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_",
        "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",
        "2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_",
        "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_",
        "4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No",
        "5\t,\t,\tPUNCT\t,\t_\t4\tpunct\t_\t_",
        "6-7\tgonna\t_\t_\t_\t_\t_\t_\t_\t_",
        "6\tgoing\tgo\tVERB\tVBG\t_\t4\tparataxis\t_\t_",
        "7\tto\tto\tPART\tTO\t_\t8\tmark\t_\t_",
        "7.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t6:xcomp\t_",
        "8\tsee\tsee\tVERB\tVB\t_\t6\txcomp\t_\tSpaceAfter=No",
        "9\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_",
        "",
        "# text = Hi",
        "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_",
        "",
    ]
)


def test_edge_cases_spacing_multiword_tokens_and_empty_nodes():
    data = parse_conllu(EDGE_CASES)
    assert data.texts == ["I don't know, gonna see.", "Hi"]
    words, spans, text = data.words[0], data.spans[0], data.texts[0]
    assert words == ["I", "do", "n't", "know", ",", "going", "to", "see", "."]  # 7.1 skipped
    # do + n't spell don't: the surface is split; going + to do not spell gonna: shared
    assert [text[a:b] for a, b in spans] == [
        "I",
        "do",
        "n't",
        "know",
        ",",
        "gonna",
        "gonna",
        "see",
        ".",
    ]
    assert data.columns["upos"][0][:3] == ["PRON", "AUX", "PART"]
    assert data.columns["deprel"][0][3] == "root"
    assert data.heads[0][:4] == [3, 3, 3, -1]  # 0-based, the root -1
    assert data.sentence_ids[0] == "s1"


def test_segmentation_changes_the_row_key():
    assert segmentation_sha1("ab c", [(0, 2), (3, 4)]) != segmentation_sha1(
        "ab c", [(0, 1), (1, 2), (3, 4)]
    )
    assert segmentation_sha1("ab c", [(0, 2), (3, 4)]) == segmentation_sha1(
        "ab c", [(0, 2), (3, 4)]
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("1\tI\tI\tPRON\n", "10 tab-separated columns"),
        ("2\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n", "out of sequence"),
    ],
)
def test_malformed_conllu_is_one_line_error(content, message):
    with pytest.raises(ProbeError, match=message):
        parse_conllu(content)


def test_ewt_dev_texts_equal_the_files_own_text_lines():
    """An independent check of the spacing rules: UD's ``# text =`` line of every sentence."""
    data = read_word_dataset(str(EWT_DEV))
    assert len(data) == 400 and data.n_words == 6729
    expected = [
        line[len("# text = ") :]
        for line in EWT_DEV.read_text().splitlines()
        if line.startswith("# text = ")
    ]
    assert data.texts == expected
    for text, words, spans in zip(data.texts, data.words, data.spans, strict=True):
        for word, (a, b) in zip(words, spans, strict=True):
            assert text[a:b] == word or len(set(map(tuple, spans))) < len(spans)


def test_token_jsonl_and_dispatch(tmp_path):
    path = tmp_path / "ner.jsonl"
    path.write_text(
        '{"tokens": ["EU", "rejects", "German"], "ner_tags": [3, 0, 7]}\n'
        '{"tokens": ["Peter"], "ner_tags": [1], "id": "x"}\n'
    )
    assert is_word_source(str(path)) and is_word_source("a.conllu")
    data = read_word_dataset(str(path))
    assert data.texts == ["EU rejects German", "Peter"]
    assert data.columns["ner_tags"] == [["3", "0", "7"], ["1"]]
    assert data.spans[0] == [(0, 2), (3, 10), (11, 17)] and data.heads is None
    other = tmp_path / "text.jsonl"
    other.write_text('{"text": "hello", "label": 1}\n')
    assert not is_word_source(str(other))


def test_token_jsonl_label_list_of_wrong_length():
    with pytest.raises(ProbeError, match="one label per token"):
        parse_token_jsonl('{"tokens": ["a", "b"], "tags": ["X"]}')
