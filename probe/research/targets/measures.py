"""What a regression or multi-label row reports beyond its point metrics: bootstrap
intervals of every metric, the per-example scores the sweep's choice compares, memorisation
of shuffled targets, and MDL's absence said in the row.

The classification row's measures (``probe.research.measures``) read classes and log loss;
these read the task module's ``resampled`` metrics, so a new task type needs no code here.
"""

from __future__ import annotations

import numpy as np

from probe.research.uncertainty import LEVEL, _percentiles, resamples_of

MDL_UNDEFINED = "not defined for {kind} rows (MDL codes one class per text)"
REPEATS_UNDEFINED = "not run for {kind} rows"


def metric_intervals(task, truth, outputs, measures, clusters=None) -> dict:
    """{metric: [low, high] or None}: percentile bootstrap of every metric, whole clusters
    (groups) at a time when given."""
    blocks = []
    for counts in resamples_of(len(truth), measures.resamples, measures.seed, clusters):
        blocks.append(task.resampled(truth, outputs, counts))
    intervals = {}
    for metric in task.METRICS:
        values = [block[metric] for block in blocks if metric in block]
        if not values:
            continue
        low, high = _percentiles(np.concatenate(values)[:, None], LEVEL)[0]
        intervals[metric] = None if np.isnan(low) else [float(low), float(high)]
    return intervals


def target_measures(task, head, features, labels, outputs, measures, kind: str):
    """(row fields, per-example selection scores or None) of a fitted regression or
    multi-label row: CIs on val and test, the selection scores (validation, else out of
    fold), memorisation with ``measures.control`` (shuffled targets), MDL said undefined."""
    fields: dict = {}
    for name in ("val", "test"):
        if name in outputs:
            clusters = (measures.clusters or {}).get(name)
            ci = metric_intervals(task, labels[name], outputs[name], measures, clusters)
            fields.update({f"{name}_{metric}_ci": value for metric, value in ci.items()})
    if "val" in outputs:
        truth, selection = labels["val"], outputs["val"]
    else:
        truth, selection = labels["train"], task.out_of_fold(head)
    scores = None
    if selection is not None:
        loss = task.example_loss(truth, selection, head)
        scores = {"truth": truth, "outputs": selection, "loss": loss}
        fields["selection_loss"] = float(loss.mean())
    if measures.control is not None:
        fields.update(memorisation(task, head, features["train"], labels["train"], measures.seed))
    if measures.mdl:
        fields["mdl"] = MDL_UNDEFINED.format(kind=kind)
    if measures.repeats:
        fields["repeats_note"] = REPEATS_UNDEFINED.format(kind=kind)
    return fields, scores


def memorisation(task, head, X_train, y_train, seed: int) -> dict:
    """The row's probe refitted at its penalty on the training targets shuffled across
    texts: how well it fits targets that carry nothing (Hewitt & Liang's control, for
    numbers and label sets). Its training natural metric beside the real one."""
    rng = np.random.default_rng(seed)
    shuffled = y_train[rng.permutation(len(y_train))]
    control = task.make_head(penalty=task.penalty_of(head), copy_X=True)
    control.fit(X_train, shuffled)
    metric = task.NATURAL_METRIC
    fitted = task.resampled(shuffled, task.outputs(control, X_train), np.ones((1, len(y_train))))
    real = task.resampled(y_train, task.outputs(head, X_train), np.ones((1, len(y_train))))
    return {
        f"control_train_{metric}": float(fitted[metric][0]),
        f"train_{metric}": float(real[metric][0]),
        "control": f"{metric} on shuffled training targets, same penalty",
    }
