"""Write data/ewt_properties.csv: sentence properties of UD English-EWT, read off the gold trees.

    python benchmarks/make_ewt_properties.py             # rewrite it (the same bytes every time)
    python benchmarks/make_ewt_properties.py --check     # exit 1 if the shipped file differs

Why: a real multi-label task (several properties per sentence, none implied by another) whose
labels come from a human annotation rather than from a model, so a probe's scores on it
mean something. Each sentence of the EWT dev split is one row: ``text`` (the words joined
with their CoNLL-U spacing, as ``probe.data.conllu`` joins them), ``labels`` (the properties
that hold, joined by ``|``; empty: none) and one 0/1 column per property.

The rules (UD v2 relations and features; the root is the word whose HEAD is 0):

- ``past``: the root, or an ``aux``/``aux:pass``/``cop`` dependent of the root, is a finite
  past form (``Tense=Past`` with ``VerbForm=Fin``: "went", "was eaten", "had left", "did not
  go", "it was nice"). A past participle alone ("has eaten": ``VerbForm=Part``) is not.
- ``plural_subject``: an ``nsubj`` or ``nsubj:pass`` dependent of the root has
  ``Number=Plur`` ("we", "the dogs"); a coordinated subject ("John and Mary") is headed by
  a singular word and does not count.
- ``negation``: a word with ``Polarity=Neg`` or ``PronType=Neg`` (not, n't, never, no as a
  determiner, nothing, none, nor, neither), except an interjection (``INTJ`` "No," is an
  answer, not a negated clause).
- ``question``: the text ends with "?" (closing quotes and brackets after it ignored).
- ``passive``: a word attached as ``nsubj:pass`` or ``aux:pass`` anywhere in the sentence.
- ``relative_clause``: a word attached as ``acl:relcl`` anywhere.
- ``coordination``: a word attached as ``conj`` anywhere.

Empty nodes (``1.1``) and multi-word token lines (``1-2``) carry no relation of the basic
tree and are skipped; their syntactic words are read. License: CC BY-SA 4.0, as EWT;
``data/ewt_properties.md`` gives the counts and the attribution.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path("/work/shared/datasets/ud_ewt/en_ewt-ud-dev.conllu")
OUT = ROOT / "data" / "ewt_properties.csv"
PROPERTIES = (
    "past",
    "plural_subject",
    "negation",
    "question",
    "passive",
    "relative_clause",
    "coordination",
)
CLOSING = "\"')]}»”’"


def feats(cell: str) -> dict[str, str]:
    """``Number=Plur|Tense=Past`` -> {"Number": "Plur", "Tense": "Past"}; ``_`` -> {}."""
    if cell in ("", "_"):
        return {}
    return dict(part.split("=", 1) for part in cell.split("|") if "=" in part)


def sentences(content: str) -> list[list[dict]]:
    """The syntactic words of each sentence: {"form", "upos", "feats", "head", "deprel"}."""
    out, words = [], []
    for line in content.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if words:
                out.append(words)
            words = []
            continue
        cells = line.rstrip("\r").split("\t")
        if "-" in cells[0] or "." in cells[0]:
            continue  # multi-word token line or empty node: no basic-tree relation
        head = int(cells[6]) if cells[6].isdigit() else -1
        words.append(
            {
                "form": cells[1],
                "upos": cells[3],
                "feats": feats(cells[5]),
                "head": head,
                "deprel": cells[7],
            }
        )
    return out


def finite_past(word: dict) -> bool:
    return word["feats"].get("Tense") == "Past" and word["feats"].get("VerbForm") == "Fin"


def properties(words: list[dict], text: str) -> dict[str, int]:
    """The module docstring's rules for one sentence: property -> 0/1."""
    roots = [i + 1 for i, word in enumerate(words) if word["head"] == 0]
    of_root = [word for word in words if word["head"] in roots]  # the roots' dependents
    relations = {word["deprel"] for word in words}
    past = any(finite_past(words[i - 1]) for i in roots) or any(
        finite_past(word) for word in of_root if word["deprel"] in ("aux", "aux:pass", "cop")
    )
    plural = any(
        word["deprel"] in ("nsubj", "nsubj:pass") and word["feats"].get("Number") == "Plur"
        for word in of_root
    )
    negation = any(
        word["upos"] != "INTJ"
        and (word["feats"].get("Polarity") == "Neg" or word["feats"].get("PronType") == "Neg")
        for word in words
    )
    found = {
        "past": past,
        "plural_subject": plural,
        "negation": negation,
        "question": text.rstrip().rstrip(CLOSING).endswith("?"),
        "passive": bool(relations & {"nsubj:pass", "aux:pass"}),
        "relative_clause": "acl:relcl" in relations,
        "coordination": "conj" in relations,
    }
    return {name: int(found[name]) for name in PROPERTIES}


def table(content: str, source: str = "<conllu>") -> list[dict]:
    """One row per sentence: text, labels (``|``-joined), one 0/1 column per property."""
    from probe.data.conllu import parse_conllu

    texts = parse_conllu(content, source).texts  # probe's own joining of the words
    trees = sentences(content)
    if len(texts) != len(trees):
        raise SystemExit(f"{source}: {len(texts)} texts but {len(trees)} trees")
    rows = []
    for text, words in zip(texts, trees, strict=True):
        flags = properties(words, text)
        labels = "|".join(name for name in PROPERTIES if flags[name])
        rows.append({"text": text, "labels": labels, **flags})
    return rows


def render(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["text", "labels", *PROPERTIES], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if --out differs")
    args = parser.parse_args(argv)
    rows = table(args.source.read_text(encoding="utf-8"), str(args.source))
    text = render(rows)
    counts = {name: sum(row[name] for row in rows) for name in PROPERTIES}
    summary = ", ".join(f"{name} {count}" for name, count in counts.items())
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'as drawn' if same else 'differs'} ({len(rows)} rows)")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(rows)} sentences; {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
