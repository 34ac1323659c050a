"""A k-fold C search where folds lack classes, against scikit-learn's fold fits (issue 29
item 3): the country of the shipped places slice, 313 classes, most of one to five places,
so every fold misses some classes its training rows never had.

For each layer (mean pool, SmolLM2-135M) and each C the search tried: its held-out log loss
beside the mean over the same folds of scikit-learn's ``LogisticRegression`` fitted on the
fold's own classes (the reference: a class the fold lacks has probability 0 there), the C
each chooses, and the test accuracy of the head. Before the fix, a class a fold lacked kept
another fold's intercept or let its own run off (held-out log loss 12,415 at C = 0.01).

    python benchmarks/bench_kfold_rare_classes.py [--name kfold_rare_classes_before]

(``--name``: the results' file name, e.g. for a run of an older checkout; the results say
which commit ran.)
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
from bench_many_classes import RESULTS, machine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "world_places" / "places_slice.csv"


def reference_losses(X, codes, Cs, folds) -> list[float]:
    """scikit-learn's held-out log loss per C: the mean over folds, each fitted on its own
    classes and scored on the held-out rows of those classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    losses = []
    for C in Cs:
        per_fold = []
        for train, held in folds:
            known = held[np.isin(codes[held], codes[train])]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fold = LogisticRegression(C=C, tol=1e-6, max_iter=3000)
                fold.fit(X[train], codes[train])
            probabilities = fold.predict_proba(X[known])
            per_fold.append(log_loss(codes[known], probabilities, labels=fold.classes_))
        losses.append(float(np.mean(per_fold)))
    return losses


def main() -> None:
    import argparse
    import subprocess

    import probe
    from probe.heads.estimator import ProbeClassifier
    from probe.heads.search import fold_rows

    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="kfold_rare_classes")
    parser.add_argument("--layers", default="6,12,18", help="scikit-learn's fits: ~4 min each")
    args = parser.parse_args()
    name, layers = args.name, [int(layer) for layer in args.layers.split(",")]
    source = Path(probe.__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    before = machine()
    data = probe.prepare("smollm2-135m", data=str(DATA), label_col="country", layers=args.layers)
    rows = []
    for layer in layers:
        X, y = data.train.features(layer, "mean"), np.asarray(data.train.labels).astype(str)
        started = time.perf_counter()
        head = ProbeClassifier().fit(X, y)
        seconds = time.perf_counter() - started
        codes = np.searchsorted(head.classes_, y)
        standardised = (X - head.mean_) / head.scale_
        folds = list(fold_rows(codes, 5, 0))
        Cs = head.search_["Cs"]
        reference = reference_losses(standardised, codes, Cs, folds)
        lacking = [int(len(head.classes_) - len(np.unique(codes[train]))) for train, _ in folds]
        test = data.test.features(layer, "mean")
        accuracy = float(np.mean(head.predict(test) == np.asarray(data.test.labels).astype(str)))
        rows.append(
            {
                "layer": layer,
                "classes": len(head.classes_),
                "classes_lacking_per_fold": lacking,
                "Cs": Cs,
                "probe_log_loss": [float(v) for v in head.search_["log_loss"]],
                "sklearn_log_loss": reference,
                "probe_C": head.C_,
                "sklearn_C": Cs[int(np.argmin(reference))],
                "test_accuracy": accuracy,
                "seconds": seconds,
            }
        )
        print(rows[-1])
    result = {"machine_before": before, "data": str(DATA.relative_to(ROOT)), "rows": rows}
    result["machine_after"], result["probe_commit"] = machine(), commit
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{name}.md").write_text(render(result))


def render(result: dict) -> str:
    cpu = result["machine_before"]
    lines = [
        "# k-fold C search with classes a fold lacks: probe vs scikit-learn's fold fits",
        "",
        f"Places slice (`{result['data']}`), country, SmolLM2-135M mean pool, 5 folds; "
        f"probe at commit {result.get('probe_commit') or '?'}.",
        f"Machine: {cpu['cpu']}, {cpu['cores']} cores; load {cpu['load_average']} before, "
        f"{result['machine_after']['load_average']} after.",
        "",
        "| layer | classes (lacking per fold) | C | probe log loss | scikit-learn | difference |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lacking = f"{row['classes']} ({', '.join(map(str, row['classes_lacking_per_fold']))})"
        for C, ours, theirs in zip(
            row["Cs"], row["probe_log_loss"], row["sklearn_log_loss"], strict=True
        ):
            lines.append(
                f"| {row['layer']} | {lacking} | {C:g} | {ours:.4f} | {theirs:.4f} | "
                f"{ours - theirs:+.4f} |"
            )
    lines.append("")
    for row in result["rows"]:
        lines.append(
            f"- layer {row['layer']}: C {row['probe_C']:g} (scikit-learn's fold fits: "
            f"{row['sklearn_C']:g}), test accuracy {row['test_accuracy']:.4f}, "
            f"head {row['seconds']:.1f} s"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
