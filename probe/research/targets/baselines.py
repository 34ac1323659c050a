"""Baselines of a regression or multi-label sweep, each scored like a row on the held-out
split: the constant predictor (the training mean; each label's training prevalence), a
bag-of-words head (TF-IDF word 1-2 grams, the task's own head and penalty search on them)
and the random-weights model at the selected row's layer and pool. Every row's
selectivity is its natural metric minus the best baseline's."""

from __future__ import annotations

import numpy as np

BOW_METHOD = "TF-IDF word 1-2 grams (sublinear tf, top 2,000 by document frequency)"


def target_baselines(data, task, inputs, rows: list[dict], best_row: dict, *, cv: int = 5):
    """{"held_out", "constant", "bag_of_words", "random_weights", "metric"} rows, and each
    sweep row's ``selectivity_METRIC`` against the best of them (in place)."""
    held = "test" if data.test is not None else "val" if data.val is not None else None
    metric = task.NATURAL_METRIC
    found = {"held_out": held, "metric": metric}
    if held is None:
        return {**found, "note": "no held-out split: baselines need --test or --val"}
    truth = getattr(data, held).labels
    constant = task.constant_outputs(data.train.labels, len(truth))
    names = data.target_names
    found["constant"] = {
        "method": task.CONSTANT_METHOD,
        **task.split_report(truth, constant, names),
    }
    found["bag_of_words"] = _bag_of_words(data, task, inputs.texts, held, cv)
    if inputs.random is not None and isinstance(best_row.get("layer"), int):
        from probe.research.fitting import fit_target

        result = fit_target(inputs.random, best_row["layer"], best_row["pool"], cv=cv)
        found["random_weights"] = {
            "method": f"random weights: {inputs.random_model}",
            "layer": best_row["layer"],
            "pool": best_row["pool"],
            **result.reports[held],
        }
    names = ("constant", "bag_of_words", "random_weights")
    scored = [found[k].get(metric) for k in names if k in found]
    scored = [value for value in scored if value is not None]
    best = max(scored) if scored and metric not in task.LOWER_IS_BETTER else min(scored or [0])
    for row in rows:
        value = row.get(f"{held}_{metric}")
        row[f"selectivity_{metric}"] = None if value is None or not scored else value - best
    return found


def _bag_of_words(data, task, texts: dict, held: str, cv: int) -> dict:
    """The task's head on TF-IDF features of the texts (dense, 2,000 columns at most)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=2000)
    train = vectorizer.fit_transform(texts["train"]).toarray().astype(np.float32)
    head = task.make_head(cv=cv, copy_X=True)
    val = None, None
    if data.val is not None and held != "val":
        val = vectorizer.transform(texts["val"]).toarray().astype(np.float32), data.val.labels
    head.fit(train, data.train.labels, *val, groups=data.train.group_ids())
    X = vectorizer.transform(texts[held]).toarray().astype(np.float32)
    report = task.split_report(getattr(data, held).labels, task.outputs(head, X), data.target_names)
    return {"method": BOW_METHOD, task.PENALTY: task.penalty_of(head), **report}
