"""Write data/world_places/places_slice.csv (1,500 place names with latitude, longitude and
country) and city_statements_slice.csv (400 true/false statements about 200 cities), drawn
from the world-places data (Gurnee & Tegmark 2023, MIT; see its README).

    python data/make_places_slice.py SOURCE/places.csv          # rewrite the slices
    python data/make_places_slice.py SOURCE/places.csv --check  # exit 1 if one differs

The statements are read from ``city_statements.csv`` beside ``places.csv``: 200 cities drawn
at random (seed 0), both statements of each, so a city's true and false statement stay one
group (``--group-col city``) in the instruments tutorial and its tests.

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
STATEMENTS = SLICE.with_name("city_statements_slice.csv")
SEED, PER_COUNTRY, TOTAL, CITIES = 0, 12, 1500, 200


def draw(source: Path) -> str:
    frame = pd.read_csv(source, dtype=str, keep_default_na=False).drop_duplicates("text")
    shuffled = frame.sample(frac=1.0, random_state=SEED)
    capped = shuffled.groupby("country").head(PER_COUNTRY)
    picked = capped.sample(min(TOTAL, len(capped)), random_state=SEED)
    columns = ["text", "latitude", "longitude", "country"]
    return picked[columns].to_csv(index=False, lineterminator="\n")


def draw_statements(source: Path) -> str:
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    cities = frame.city.drop_duplicates().sample(CITIES, random_state=SEED)
    picked = frame[frame.city.isin(set(cities))]
    return picked[["text", "label", "city", "country"]].to_csv(index=False, lineterminator="\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    slices = {
        SLICE: draw(args.source),
        STATEMENTS: draw_statements(args.source.with_name("city_statements.csv")),
    }
    if args.check:
        return int(any(path.read_text(encoding="utf-8") != text for path, text in slices.items()))
    for path, text in slices.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
