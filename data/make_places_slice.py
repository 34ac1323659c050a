"""Write data/world_places/places_slice.csv: 1,500 place names with latitude, longitude and
country, drawn from the world-places data (Gurnee & Tegmark 2023, MIT; see its README).

    python data/make_places_slice.py SOURCE/places.csv          # rewrite the slice
    python data/make_places_slice.py SOURCE/places.csv --check  # exit 1 if it differs

Why a slice: the full 31,663 names are a benchmark (``benchmarks/bench_ridge.py``,
``bench_many_classes.py``); the docs' regression and many-class examples and the tests need
a file a fresh clone has, small enough to extract in under a minute. The draw keeps the
full data's long tail of countries: up to 12 places per country, then random places up to
1,500, seed 0, so about a hundred countries appear with one or two places, as in the whole.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

SLICE = Path(__file__).resolve().parent / "world_places" / "places_slice.csv"
SEED, PER_COUNTRY, TOTAL = 0, 12, 1500


def draw(source: Path) -> str:
    frame = pd.read_csv(source, dtype=str, keep_default_na=False).drop_duplicates("text")
    shuffled = frame.sample(frac=1.0, random_state=SEED)
    capped = shuffled.groupby("country").head(PER_COUNTRY)
    picked = capped.sample(min(TOTAL, len(capped)), random_state=SEED)
    columns = ["text", "latitude", "longitude", "country"]
    return picked[columns].to_csv(index=False, lineterminator="\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = draw(args.source)
    if args.check:
        return 0 if SLICE.read_text(encoding="utf-8") == text else 1
    SLICE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
