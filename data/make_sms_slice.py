"""Write data/sms_slice.csv: the quick start's 400 messages, drawn from data/sms_spam.csv.

    python data/make_sms_slice.py           # rewrite the slice (the same bytes every time)
    python data/make_sms_slice.py --check   # exit 1 if the shipped slice is not what it draws

Why a slice: the full data (5,574 texts through every layer) takes minutes on a laptop; 400
texts through layers 8, 16 and 24 take well under a minute, so a newcomer's first sweep and
first prediction come quickly. The slice holds 100 spam and 300 ham messages (spam made a
quarter rather than the data's 13%, so its 80 test texts hold about 20 spam), every text once
(the full data repeat 403 texts), drawn with seed 0 and shuffled. The two messages the quick
start classifies (``HELD_OUT``) are kept out, so its predictions are on texts the head has
not seen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent
SOURCE = DATA / "sms_spam.csv"
SLICE = DATA / "sms_slice.csv"
SEED = 0
COUNTS = {"spam": 100, "ham": 300}
# The quick start's `probe predict` messages (docs/getting-started.md), verbatim from SOURCE.
HELD_OUT = {
    "WINNER!! As a valued network customer you have been selected to receivea £900 prize "
    "reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only.": "spam",
    "Nah I don't think he goes to usf, he lives around here though": "ham",
}


def draw() -> str:
    """The slice as CSV text."""
    frame = pd.read_csv(SOURCE).drop_duplicates("text")
    frame = frame[~frame.text.isin(list(HELD_OUT))]
    parts = [frame[frame.label == name].sample(n, random_state=SEED) for name, n in COUNTS.items()]
    sliced = pd.concat(parts).sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    return sliced.to_csv(index=False, lineterminator="\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the slice is stale")
    args = parser.parse_args(argv)
    text = draw()
    if args.check:
        if SLICE.read_text(encoding="utf-8") != text:
            print(f"{SLICE} differs from its draw: run python {__file__}", file=sys.stderr)
            return 1
        return 0
    SLICE.write_text(text, encoding="utf-8")
    print(f"{SLICE}: {sum(COUNTS.values())} texts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
