"""The data of the ``--exact`` check (issue 27): three label sets no search rule was tuned on.

- ``country``: the country of a place name (``world_places/places.csv``): the 51 countries
  with at least 100 places, 6,000 places drawn in proportion (seed 0), split 60/20/20
  (stratified, seed 0) into a ``split`` column: a many-class, imbalanced label set;
- ``sst2``: 2,000 training and 1,000 test rows of SST-2's training file (pandas sample, seed
  0, as ``bench_research.py``) and SST-2's own 872-sentence validation file;
- ``xpos``: the 400 UD-EWT dev sentences shipped in ``data/ud_ewt`` (XPOS, 40+ tags).

    python benchmarks/make_exact_data.py --shared ../shared --out /tmp/exact
"""

from __future__ import annotations

import argparse
from pathlib import Path

MIN_PLACES = 100
PLACES = 6000


def make_country(places: Path, out: Path) -> Path:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(places)
    counts = frame.country.value_counts()
    frame = frame[frame.country.isin(counts[counts >= MIN_PLACES].index)]
    frame, _ = train_test_split(frame, train_size=PLACES, stratify=frame.country, random_state=0)
    rest, test = train_test_split(frame, test_size=0.2, stratify=frame.country, random_state=0)
    train, val = train_test_split(rest, test_size=0.25, stratify=rest.country, random_state=0)
    parts = [train.assign(split="train"), val.assign(split="val"), test.assign(split="test")]
    path = out / "country.csv"
    pd.concat(parts)[["text", "country", "split"]].to_csv(path, index=False)
    return path


def make_sst2(sst2: Path, out: Path) -> tuple[Path, Path]:
    import pandas as pd

    sample = pd.read_csv(sst2 / "train.csv").sample(n=3000, random_state=0)
    train, test = out / "sst2_train2k.csv", out / "sst2_test1k.csv"
    sample.iloc[:2000].to_csv(train, index=False)
    sample.iloc[2000:].to_csv(test, index=False)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/exact"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(make_country(args.shared / "datasets" / "world_places" / "places.csv", args.out))
    print(*make_sst2(args.shared / "datasets" / "sst2", args.out))


if __name__ == "__main__":
    main()
