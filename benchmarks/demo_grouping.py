"""What grouped splits changed in the SMS demo (issue 27): the demo's test split drawn row by
row (before) and by group (now), how many test rows had their exact text in train, and the
selected row of the sweep before and after.

    git show 92763b7:benchmarks/results/demo_sms/sweep.json > /tmp/sweep_rowwise.json
    python benchmarks/demo_grouping.py --before /tmp/sweep_rowwise.json \\
        --after benchmarks/results/demo_sms/sweep.json \\
        --out benchmarks/results/demo_sms/grouping_change.json

``92763b7`` is the last commit before grouped splits; its ``sweep.json`` is the demo's sweep
with row-wise splits (same data, seed 0, 20% test).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from probe.data.readers import read_dataset, text_sha1
from probe.data.splits import group_ids
from probe.heads.rows import stratified_rows


def test_rows_seen_in_train(texts, labels, groups, seed: int = 0, test_size: float = 0.2):
    """(test rows, of them with their exact text in train, of those spam) for one draw."""
    keep, held = stratified_rows(labels, test_size, seed, groups)
    train = {texts[i] for i in keep}
    seen = [i for i in held if texts[i] in train]
    return len(held), len(seen), int(sum(labels[i] == "spam" for i in seen))


def selected(sweep: dict) -> dict:
    best = sweep["best"]
    keys = ("layer", "pool", "C", "test_accuracy", "test_accuracy_ci", "test_macro_f1")
    return {key: best.get(key) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/sms_spam.csv"))
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = read_dataset(str(args.data))
    texts, labels = data.texts, np.asarray(data.labels)
    groups = group_ids([text_sha1(t) for t in texts])
    sizes = np.bincount(groups)
    rowwise = test_rows_seen_in_train(texts, labels, None)
    grouped = test_rows_seen_in_train(texts, labels, groups)
    before, after = json.loads(args.before.read_text()), json.loads(args.after.read_text())
    change = {
        "data": str(args.data),
        "rows": len(texts),
        "rows_sharing_text": int(sizes[sizes > 1].sum()),
        "distinct_texts": int(len(sizes)),
        "rowwise_split": dict(zip(("test", "seen_in_train", "seen_spam"), rowwise, strict=True)),
        "grouped_split": dict(zip(("test", "seen_in_train", "seen_spam"), grouped, strict=True)),
        "before": {"C_rule": "accuracy first", **selected(before)},
        "after": {"C_rule": after.get("C_rule"), **selected(after)},
        "grouping": after.get("grouping"),
    }
    args.out.write_text(json.dumps(change, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(change, indent=2))


if __name__ == "__main__":
    main()
