"""Read word-level datasets: CoNLL-U files and token-JSONL (``tokens`` + label lists).

One sentence is one row. Its words are joined into the text a model reads with their
original spacing (CoNLL-U ``SpaceAfter=No`` glues a word to the next; token-JSONL words are
joined by one space), and each word keeps its character span in that text, so it can be
aligned to subword tokens through the tokenizer's offsets (``probe.features.words``).

CoNLL-U details: comment lines (``#``) are skipped; empty nodes (``1.1``) are enhanced-graph
material and are skipped; a multi-word token line (``1-2 don't``) gives the surface text and
its spacing, and its syntactic words (``do``, ``n't``) split the surface span by their
lengths when they spell it exactly, else each gets the whole surface span. HEAD becomes a
0-based word index (-1 for the root).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probe.errors import ProbeError

CONLLU_COLUMNS = ("upos", "xpos", "deprel")  # tasks a CoNLL-U file offers (plus "head")
WORD_SUFFIXES = (".conllu",)


@dataclass
class WordDataset:
    """Sentences as words: texts, each word's character span, and label lists per task."""

    texts: list[str]
    words: list[list[str]]
    spans: list[list[tuple[int, int]]]  # (start, end) characters of each word in its text
    columns: dict[str, list[list[str]]]  # task -> one label per word, per sentence
    heads: list[list[int]] | None  # 0-based head word per word (-1: root); CoNLL-U only
    source: str
    sentence_ids: list[str] | None = field(default=None)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_words(self) -> int:
        return sum(len(w) for w in self.words)

    def subset(self, keep) -> WordDataset:
        keep = list(keep)

        def pick(values):
            return None if values is None else [values[i] for i in keep]

        return WordDataset(
            pick(self.texts),
            pick(self.words),
            pick(self.spans),
            {name: pick(values) for name, values in self.columns.items()},
            pick(self.heads),
            self.source,
            pick(self.sentence_ids),
        )


def segmentation_sha1(text: str, spans) -> bytes:
    """Identity of a sentence *and* its word segmentation: the row key of word-level rows
    (the same sentence under two segmentations is two rows)."""
    digest = hashlib.sha1(text.encode("utf-8"))
    digest.update(b"\x00spans\x00")
    digest.update(np.asarray(spans, dtype=np.int64).reshape(-1, 2).tobytes())
    return digest.digest()


def is_word_source(source: str | None) -> bool:
    """CoNLL-U, or JSONL whose first record has a ``tokens`` list: word-level input."""
    if source is None:
        return False
    path = Path(source)
    if path.suffix.lower() in WORD_SUFFIXES:
        return True
    if path.suffix.lower() in (".jsonl", ".json") and path.is_file():
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        return False
                    return isinstance(record, dict) and isinstance(record.get("tokens"), list)
    return False


def read_word_dataset(source: str) -> WordDataset:
    """A CoNLL-U file or a token-JSONL file; every problem is a one-line ``ProbeError``."""
    path = Path(source)
    if not path.is_file():
        raise ProbeError(f"data file not found: {source}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProbeError(f"{source}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if path.suffix.lower() in WORD_SUFFIXES:
        dataset = parse_conllu(text, str(source))
    else:
        dataset = parse_token_jsonl(text, str(source))
    if not dataset.texts:
        raise ProbeError(f"{source}: no sentences")
    return dataset


def _misc_space_after(misc: str) -> bool:
    return "SpaceAfter=No" not in misc.split("|")


def parse_conllu(content: str, source: str = "<conllu>") -> WordDataset:
    """Parse CoNLL-U text; see the module docstring for what is kept."""
    out = WordDataset([], [], [], {c: [] for c in CONLLU_COLUMNS}, [], source, [])
    sentence: list[list[str]] = []
    ranges: dict[int, tuple[int, str, str]] = {}  # first word id -> (last id, form, misc)
    sent_id = None
    for number, line in enumerate(content.splitlines() + [""], start=1):
        line = line.rstrip("\r")
        if line.startswith("#"):
            if line.startswith("# sent_id"):
                sent_id = line.split("=", 1)[-1].strip()
            continue
        if not line.strip():
            if sentence:
                _add_sentence(out, sentence, ranges, sent_id, source)
            sentence, ranges, sent_id = [], {}, None
            continue
        cells = line.split("\t")
        if len(cells) != 10:
            raise ProbeError(
                f"{source}:{number}: expected 10 tab-separated columns, got {len(cells)}"
            )
        word_id = cells[0]
        if "." in word_id:
            continue  # an empty node: not a surface word
        if "-" in word_id:
            first, last = word_id.split("-", 1)
            try:
                ranges[int(first)] = (int(last), cells[1], cells[9])
            except ValueError:
                raise ProbeError(f"{source}:{number}: bad multi-word id {word_id!r}") from None
            continue
        if not word_id.isdigit() or int(word_id) != len(sentence) + 1:
            raise ProbeError(f"{source}:{number}: word id {word_id!r} out of sequence")
        sentence.append(cells)
    return out


def _add_sentence(out: WordDataset, sentence, ranges, sent_id, source) -> None:
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    position, index = 0, 0
    while index < len(sentence):
        word_number = index + 1
        if word_number in ranges:
            last, surface, misc = ranges[word_number]
            members = sentence[index:last]
            pieces.append(surface)
            forms = [cells[1] for cells in members]
            if "".join(forms) == surface:
                start = position
                for form in forms:
                    spans.append((start, start + len(form)))
                    start += len(form)
            else:
                spans.extend([(position, position + len(surface))] * len(members))
            position += len(surface)
            index = last
        else:
            cells = sentence[index]
            form, misc = cells[1], cells[9]
            pieces.append(form)
            spans.append((position, position + len(form)))
            position += len(form)
            index += 1
        if index < len(sentence) and _misc_space_after(misc):
            pieces.append(" ")
            position += 1
    heads = []
    for cells in sentence:
        try:
            heads.append(int(cells[6]) - 1)
        except ValueError:
            heads.append(-1)  # "_": no tree given
    out.texts.append("".join(pieces))
    out.words.append([cells[1] for cells in sentence])
    out.spans.append(spans)
    out.columns["upos"].append([cells[3] for cells in sentence])
    out.columns["xpos"].append([cells[4] for cells in sentence])
    out.columns["deprel"].append([cells[7] for cells in sentence])
    out.heads.append(heads)
    out.sentence_ids.append(sent_id or f"{Path(source).name}#{len(out.texts)}")


def parse_token_jsonl(content: str, source: str = "<jsonl>") -> WordDataset:
    """One JSON object per line with ``tokens`` (a list of words) and, per task, a list of
    labels of the same length (``ner_tags``, ``pos_tags``...); words joined by one space."""
    out = WordDataset([], [], [], {}, None, source, [])
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ProbeError(f"{source}:{number}: not JSON ({exc.msg})") from None
        tokens = record.get("tokens") if isinstance(record, dict) else None
        if not isinstance(tokens, list) or not tokens:
            raise ProbeError(
                f"{source}:{number}: no 'tokens' list (a token-level JSONL line needs one)"
            )
        words = [str(t) for t in tokens]
        if any(not w or any(ch.isspace() for ch in w) for w in words):
            raise ProbeError(f"{source}:{number}: a token is empty or holds whitespace")
        spans, position = [], 0
        for word in words:
            spans.append((position, position + len(word)))
            position += len(word) + 1
        tasks = {
            key: value
            for key, value in record.items()
            if key != "tokens" and isinstance(value, list)
        }
        if not out.texts:
            out.columns = {key: [] for key in tasks}
        for key in out.columns:
            value = tasks.get(key)
            if value is None or len(value) != len(words):
                raise ProbeError(
                    f"{source}:{number}: '{key}' must be a list with one label "
                    f"per token ({len(words)})"
                )
            out.columns[key].append([str(v) for v in value])
        out.texts.append(" ".join(words))
        out.words.append(words)
        out.spans.append(spans)
        out.sentence_ids.append(str(record.get("id", f"{Path(source).name}#{number}")))
    return out
