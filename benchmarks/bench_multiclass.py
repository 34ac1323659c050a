"""A validation-selected sweep on multi-class data nobody tuned the solver for (issue 11).

Four classes from two real corpora, none of which the solver was developed on as a
multi-class task: SMS ham, SMS spam, SST-2 negative, SST-2 positive (label = source:class).
Per class 300 training, 100 validation and 200 test texts (seeded draw). The sweep
(62 rows, C and the row chosen on validation) must finish with no error row, and its
selected row's test accuracy must be within 2 points of an independent scikit-learn probe
on the same features (StandardScaler + LogisticRegression, C chosen on the same validation
set over the same grid). With control tasks and MDL, as `probe sweep --control --mdl --json`.

    python benchmarks/bench_multiclass.py --sst2 ../shared/datasets/sst2/train.csv

``--sst2`` is the GLUE SST-2 training CSV (``text,label``; not shipped with probe).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PER_CLASS = {"train": 300, "val": 100, "test": 200}


def four_class_splits(sms: Path, sst2: Path, folder: Path, seed: int) -> dict[str, Path]:
    import pandas as pd

    sms_frame = pd.read_csv(sms)
    sst_frame = pd.read_csv(sst2)
    sms_frame["label"] = "sms:" + sms_frame["label"].astype(str)
    sst_frame["label"] = "sst2:" + sst_frame["label"].astype(str)
    frame = pd.concat([sms_frame[["text", "label"]], sst_frame[["text", "label"]]])
    frame = frame.drop_duplicates("text")
    total = sum(PER_CLASS.values())
    by_class = [group.sample(n=total, random_state=seed) for _, group in frame.groupby("label")]
    paths, start = {}, 0
    for split, size in PER_CLASS.items():
        part = pd.concat([group.iloc[start : start + size] for group in by_class])
        paths[split] = folder / f"{split}.csv"
        part.sample(frac=1.0, random_state=seed).to_csv(paths[split], index=False)
        start += size
    return paths


MEASURES = ("memorisation_capacity", "mdl_compression")


def spearman(rows) -> float:
    """Rank correlation of MDL compression and test accuracy over the rows."""
    from scipy.stats import spearmanr

    rows = [row for row in rows if not row.get("error")]
    return float(
        spearmanr(
            [r["mdl_compression"] for r in rows], [r["test_accuracy"] for r in rows]
        ).statistic
    )


def sklearn_probe(data, layer: int, pool: str, grid) -> dict:
    """StandardScaler + LogisticRegression(lbfgs), C on validation: independent of probe."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(data.train.features(layer, pool))
    X_train = scaler.transform(data.train.features(layer, pool))
    X_val = scaler.transform(data.val.features(layer, pool))
    X_test = scaler.transform(data.test.features(layer, pool))
    best = None
    for C in grid:
        model = LogisticRegression(C=C, max_iter=5000).fit(X_train, data.train.labels)
        score = float(np.mean(model.predict(X_val) == data.val.labels))
        if best is None or score > best[0]:
            best = (score, C, model)
    _, C, model = best
    return {"C": C, "test_accuracy": float(np.mean(model.predict(X_test) == data.test.labels))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sms", type=Path, default=Path("data/sms_spam.csv"))
    parser.add_argument("--sst2", type=Path, default=Path("../shared/datasets/sst2/train.csv"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from probe.heads.estimator import DEFAULT_CS
    from probe.heads.rows import prepare
    from probe.messages import configure
    from probe.research.sweep import public, run_sweep
    from probe.research.sweep_report import markdown_table

    configure("normal")  # prepare's lines on stderr
    folder = Path(tempfile.mkdtemp(prefix="probe-4class-"))
    paths = four_class_splits(args.sms, args.sst2, folder, args.seed)
    started = time.perf_counter()
    data = prepare(
        args.model,
        train=str(paths["train"]),
        val=str(paths["val"]),
        test=str(paths["test"]),
        layers="all",
    )
    extract_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = run_sweep(data, control=True, mdl=True)
    sweep_seconds = time.perf_counter() - started
    best = result["best"]
    errors = [row for row in result["entries"] if row.get("error")]
    reference = sklearn_probe(data, best["layer"], best["pool"], DEFAULT_CS)
    gap = abs(best["test_accuracy"] - reference["test_accuracy"])
    summary = {
        "command": "python benchmarks/bench_multiclass.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "classes": sorted(set(data.train.labels.tolist())),
        "n": {split: len(getattr(data, split)) for split in ("train", "val", "test")},
        "extract_seconds": round(extract_seconds, 1),
        "sweep_seconds": round(sweep_seconds, 1),
        "load_average": os.getloadavg(),
        "error_rows": len(errors),
        "selected": {
            "layer": best["layer"],
            "pool": best["pool"],
            "C": best["C"],
            "test_accuracy": best["test_accuracy"],
        },
        "sklearn_probe": reference,
        "gap_points": round(100 * gap, 2),
        "selected_measures": {key: best.get(key) for key in MEASURES},
        "spearman_mdl_compression_vs_test_accuracy": spearman(result["entries"]),
        "every_ci_contains_its_accuracy": all(
            row["test_accuracy_ci"][0] <= row["test_accuracy"] <= row["test_accuracy_ci"][1]
            for row in result["entries"]
            if not row.get("error")
        ),
        "within_2_points": gap <= 0.02,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multiclass_4way.json").write_text(
        json.dumps({**summary, "sweep": public(result)}, indent=2, default=str) + "\n"
    )
    lines = [
        "# Validation-selected sweep on 4-class held-out data (issue 11)",
        "",
        f"Command: `{summary['command']}`  ",
        f"Model {args.model}; classes {', '.join(summary['classes'])}; "
        f"{summary['n']['train']} train / {summary['n']['val']} val / {summary['n']['test']} test.",
        "",
        f"- Sweep: {len(result['entries'])} rows in {sweep_seconds:.1f} s, "
        f"{len(errors)} error rows (extraction {extract_seconds:.1f} s, load average "
        f"{summary['load_average'][0]:.1f}).",
        f"- Selected on validation: layer {best['layer']} {best['pool']}, C {best['C']:g}, "
        f"test accuracy {best['test_accuracy']:.4f}.",
        f"- Independent scikit-learn probe on that row (C {reference['C']:g} on validation): "
        f"test accuracy {reference['test_accuracy']:.4f}; gap {100 * gap:.2f} points "
        f"({'within' if gap <= 0.02 else 'NOT within'} 2 points).",
        f"- Selected row: memorisation capacity {best.get('memorisation_capacity')} (train "
        f"accuracy on hashed labels), MDL compression {best.get('mdl_compression')}; every "
        f"row's 95% CI contains its accuracy: {summary['every_ci_contains_its_accuracy']}; "
        f"Spearman(MDL compression, test accuracy) over the rows "
        f"{summary['spearman_mdl_compression_vs_test_accuracy']:.3f}.",
        "",
        markdown_table(result),
        "",
    ]
    (RESULTS / "multiclass_4way.md").write_text("\n".join(lines))
    print("\n".join(lines[:8]))


if __name__ == "__main__":
    main()
