"""All the baselines of a sweep, and each probe row's accuracy minus theirs (selectivity) with
paired-bootstrap intervals: the one place that knows every baseline, so the sweep calls one
function and each baseline stays ignorant of the others.
"""

from __future__ import annotations

import time

import numpy as np

from probe.errors import ProbeError
from probe.heads.cached import CachedData
from probe.research.baselines.bow import bag_of_words_row
from probe.research.baselines.inputs import BaselineInputs
from probe.research.baselines.random_weights import random_weight_rows
from probe.research.baselines.scoring import held_out_split, majority_row
from probe.research.uncertainty import RESAMPLES, paired_differences


def mean_difference_intervals(
    differences: np.ndarray, resamples: int, seed: int, clusters=None
) -> np.ndarray:
    """(rows, 2) paired-bootstrap 95% intervals of each row's mean per-example difference
    (whole ``clusters``, groups or sentences, drawn when given)."""
    differences = np.asarray(differences, np.float64)
    stacked = np.vstack([np.zeros((1, differences.shape[1])), differences])
    return paired_differences(stacked, 0, n_resamples=resamples, seed=seed, clusters=clusters)[1:]


def add_selectivity(
    rows: list[dict],
    correct: list,
    baselines: dict,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    clusters=None,
) -> None:
    """Set ``selectivity_vs_random`` and ``selectivity_vs_bow`` (+ ``_ci``) on probe rows.

    ``correct`` holds each row's per-example correctness on the held-out split (None for a
    failed row); ``baselines`` is what ``baseline_rows`` returns, ``_correct`` still inside.
    """
    random = {
        (r["layer"], r["pool"]): r.get("_correct") for r in baselines.get("random_weights", [])
    }
    references = [("bow", baselines.get("bag_of_words", {}).get("_correct"), None)]
    references.append(("random", None, random))
    for name, single, per_row in references:
        pairs = []
        for i, (row, mine) in enumerate(zip(rows, correct, strict=True)):
            other = single if per_row is None else per_row.get((row["layer"], row["pool"]))
            row[f"selectivity_vs_{name}"] = row[f"selectivity_vs_{name}_ci"] = None
            if mine is not None and other is not None:
                pairs.append((i, mine - other))
        if not pairs:
            continue
        differences = np.stack([d for _, d in pairs])
        intervals = mean_difference_intervals(differences, resamples, seed, clusters)
        for (i, difference), interval in zip(pairs, intervals, strict=True):
            rows[i][f"selectivity_vs_{name}"] = float(difference.mean())
            rows[i][f"selectivity_vs_{name}_ci"] = [float(interval[0]), float(interval[1])]


def baseline_rows(
    data: CachedData,
    inputs: BaselineInputs,
    tasks,
    *,
    n_jobs: int = 1,
    resamples: int = RESAMPLES,
    seed: int = 0,
    **head,
) -> dict:
    """{"majority": row, "bag_of_words": row, "random_weights": [rows], "split", "seconds"}.

    ``head`` holds the sweep's head options (C, Cs, class_weight, cv): every baseline
    chooses its C as the probe does.
    """
    if held_out_split(data) is None:
        raise ProbeError("--baselines needs held-out data (--test, --val or --test-size > 0)")
    started = time.perf_counter()
    scoring = {"resamples": resamples, "seed": seed}
    found = {
        "split": held_out_split(data).name,
        "majority": majority_row(data, **scoring),
        "bag_of_words": bag_of_words_row(data, inputs.texts, **scoring, **head),
    }
    if inputs.random is not None:
        single = [(layer, pool) for layer, pool in tasks if isinstance(layer, int)]
        found["random_weights"] = random_weight_rows(
            inputs.random, single, n_jobs=n_jobs, **scoring, **head
        )
        found["random_model"] = inputs.random_model
        found["random_seed"] = inputs.seed
        found["random_extract_seconds"] = inputs.extract_seconds
    found["seconds"] = time.perf_counter() - started
    return found


def without_correctness(baselines: dict) -> dict:
    """The baselines as the JSON holds them (per-example vectors dropped)."""
    strip = lambda row: {k: v for k, v in row.items() if not k.startswith("_")}  # noqa: E731
    return {
        key: [strip(r) for r in value]
        if isinstance(value, list)
        else strip(value)
        if isinstance(value, dict)
        else value
        for key, value in baselines.items()
    }


def with_baselines(
    data: CachedData, inputs: BaselineInputs, rows: list[dict], results: list, tasks, **options
) -> dict:
    """The sweep's baselines (for its JSON), after setting every row's selectivity.

    ``results`` are the sweep's ``FitResult``s (an error string for a failed row), in the
    order of ``rows``; ``options`` are ``baseline_rows``'s keywords.
    """
    found = baseline_rows(data, inputs, tasks, **options)
    held = held_out_split(data)
    truth = np.asarray(held.labels)
    correct = [
        (np.asarray(r.predictions[held.name]) == truth).astype(np.float64)
        if hasattr(r, "predictions")
        else None
        for r in results
    ]
    add_selectivity(
        rows,
        correct,
        found,
        resamples=options.get("resamples", RESAMPLES),
        seed=options.get("seed", 0),
        clusters=held.group_ids(),
    )
    return without_correctness(found)
