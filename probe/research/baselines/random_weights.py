"""The random-weights baseline: the same architecture freshly initialised, its features
extracted by the same pipeline and swept with the same head and C search, so what the
trained weights add is the difference at each layer and pool.
"""

from __future__ import annotations

import numpy as np

from probe.heads.cached import CachedData, CachedSplit
from probe.research.baselines.scoring import held_out_split, scored_row
from probe.research.fitting import error_row, numbered_fit, say_fallback
from probe.research.uncertainty import RESAMPLES


def random_weights_data(data: CachedData, texts: dict, model: str, *, device=None) -> CachedData:
    """``data``'s splits, their features extracted by ``model`` (random weights); the
    extraction's progress and lines go to ``probe.messages``."""
    from probe.data.readers import TextDataset, text_sha1
    from probe.features.extract import extract
    from probe.heads.cached import open_cached

    first = open_cached(data.train.parts[0][0]).meta
    distinct = list(dict.fromkeys(text for split in texts.values() for text in split))
    dataset = TextDataset(distinct, None, "the sweep's texts (random-weights baseline)")
    layers = ",".join(str(layer) for layer in data.layers)
    view = extract(
        model,
        dataset,
        layers,
        max_length=data.max_length,
        device=device,
        dtype=first.get("compute_dtype"),
    )
    row_of = {text_sha1(text): row for row, text in enumerate(distinct)}

    def split(original: CachedSplit | None) -> CachedSplit | None:
        if original is None:
            return None
        rows = np.asarray([row_of[text_sha1(t)] for t in texts[original.name]], np.int64)
        return CachedSplit(original.name, [(str(view), rows)], original.labels, original.groups)

    cache = open_cached(str(view))
    return CachedData(
        train=split(data.train),
        val=split(data.val),
        test=split(data.test),
        model=model,
        model_fingerprint=str(cache.meta.get("model_fingerprint")),
        max_length=data.max_length,
        n_layers_model=data.n_layers_model,
        layers=sorted(set(data.layers) & set(cache.layers)),
        cache_keys={"train": cache.key},
        sources=dict(data.sources),
        target=data.target,
        target_names=data.target_names,
    )


def random_weight_rows(
    random: CachedData,
    tasks,
    *,
    n_jobs: int = 1,
    resamples: int = RESAMPLES,
    seed: int = 0,
    **head,
) -> list[dict]:
    """One row per (layer, pool): the probe's head and C search on random-weights features.

    ``head`` holds ``fit_one``'s head options (C, Cs, class_weight, cv), the sweep's own.
    """
    from joblib import Parallel, delayed

    held = held_out_split(random)
    finished = Parallel(n_jobs=n_jobs)(
        delayed(numbered_fit)(index, random, layer, pool, train_accuracy=False, **head)
        for index, (layer, pool) in enumerate(tasks)
    )
    rows = []
    for (layer, pool), (_, result) in zip(tasks, finished, strict=True):
        if isinstance(result, str):
            rows.append({"baseline": "random weights", **error_row(layer, pool, result)})
            continue
        say_fallback(result, "random weights ")
        row = {
            "baseline": "random weights",
            "layer": result.layer,
            "pool": pool,
            "C": result.classifier.C_,
            "seconds": result.seconds,
            "solver": result.classifier.solver_,
            "fallback_reason": result.classifier.fallback_reason_,
        }
        if random.val is not None and held is not random.val:
            row["val_accuracy"] = result.reports["val"]["accuracy"]
        predicted = result.predictions[held.name]
        classes = result.classifier.classes_
        rows.append(scored_row(row, held, predicted, classes, resamples, seed))
    return rows
