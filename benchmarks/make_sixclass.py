"""The six-class benchmark data of issue 18: short texts labelled by where they come from.

Six classes from three real corpora, none made up: SST-2 negative and positive movie-review
phrases, SMS ham and spam, and two genre groups of English Web Treebank sentences (UD-EWT dev:
``answers`` + ``reviews`` vs ``email`` + ``newsgroup`` + ``weblog``, from their sent_id
prefixes). Duplicates are dropped, classes are drawn with a fixed seed, and a stratified
test set is held out; ``val.csv`` + ``train_minus_val.csv`` give the with-validation variant
(500 validation texts taken from train). About 5,300 training texts, like the question
dataset of the issue (5,452).

    python benchmarks/make_sixclass.py --shared ../shared --out /tmp/sixclass
"""

from __future__ import annotations

import argparse
from pathlib import Path

PER_CLASS = 1200  # SST-2 and SMS ham; spam and the EWT groups have fewer, all are kept
TEST_SHARE = 0.16
VAL_ROWS = 500
EWT_GROUPS = {
    "answers": "ewt:answers+reviews",
    "reviews": "ewt:answers+reviews",
    "email": "ewt:email+posts",
    "newsgroup": "ewt:email+posts",
    "weblog": "ewt:email+posts",
}


def ewt_sentences(conllu: Path) -> list[tuple[str, str]]:
    """(text, genre group) per sentence of a CoNLL-U file."""
    rows, genre = [], None
    for line in conllu.read_text(encoding="utf-8").splitlines():
        if line.startswith("# sent_id = "):
            genre = line.removeprefix("# sent_id = ").split("-")[0]
        elif line.startswith("# text = ") and genre in EWT_GROUPS:
            rows.append((line.removeprefix("# text = ").strip(), EWT_GROUPS[genre]))
    return rows


def six_classes(shared: Path, seed: int = 0):
    import pandas as pd

    sms = pd.read_csv(shared / "datasets/sms_spam/sms_spam.csv")
    sst = pd.read_csv(shared / "datasets/sst2/train.csv")
    ewt = pd.DataFrame(
        ewt_sentences(shared / "datasets/ud_ewt/en_ewt-ud-dev.conllu"), columns=["text", "label"]
    )
    sms["label"] = "sms:" + sms["label"].astype(str)
    sst["label"] = "sst2:" + sst["label"].astype(str)
    frame = pd.concat([sms[["text", "label"]], sst[["text", "label"]], ewt])
    frame["text"] = frame["text"].astype(str).str.strip()
    frame = frame[frame["text"].str.len() > 0].drop_duplicates("text", keep=False)
    parts = [
        group.sample(n=min(PER_CLASS, len(group)), random_state=seed)
        for _, group in frame.groupby("label")
    ]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def main() -> None:
    from sklearn.model_selection import train_test_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = six_classes(args.shared, args.seed)
    train, test = train_test_split(
        frame, test_size=TEST_SHARE, stratify=frame["label"], random_state=args.seed
    )
    rest, val = train_test_split(
        train, test_size=VAL_ROWS, stratify=train["label"], random_state=args.seed
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (
        ("train", train),
        ("test", test),
        ("val", val),
        ("train_minus_val", rest),
        ("all", frame),
    ):
        part.to_csv(args.out / f"{name}.csv", index=False)
    counts = train["label"].value_counts().to_dict()
    print(f"{len(train)} train, {len(test)} test ({len(val)} of train as val): {counts}")


if __name__ == "__main__":
    main()
