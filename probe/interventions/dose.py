"""The dose-response: a head's direction added at its layer with strength alpha, or erased,
read by heads fitted on clean rows at every later layer and by a causal LM's verbalizers.

The rows are split (a ``split`` column's train rows, else a stratified half): readout heads
(``ProbeClassifier``) are fitted on the clean train rows at each later layer, and the other
rows are run changed. alpha is in units of the typical norm of the residual stream at the
head's layer and positions (the median norm on the train rows), so alpha 1 adds a vector as
long as the state it is added to. Every change is made again along random directions of the
same norm (``seeds`` of them), and what is reported is the difference from random, per text
and then averaged, with a paired bootstrap interval over texts
(``probe.research.uncertainty.paired_differences``): a readout moved by the direction, not by
any push of that size, has an interval that excludes 0.
"""

from __future__ import annotations

import re

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES
from probe.interventions.directions import (
    DEFAULT_ALPHAS,
    fit_eraser,
    head_direction,
    random_directions,
    random_eraser,
    typical_norm,
)
from probe.interventions.hooks import Edit, run_rows, verbalizer_token_ids

DEFAULT_SEEDS = 5
DIRECTIONS = ("pattern", "weights")  # the head's activation pattern Cov(X) w, or w itself
VERBALIZERS = "verbalizers"  # the readout name of the LM's own next-token choice


def parse_verbalizers(text: str | None) -> dict[str, str] | None:
    """``1=" True",0=" False"`` -> {"1": " True", "0": " False"}; quotes keep spaces."""
    if text is None:
        return None
    pattern = re.compile(r"\s*([^=,]+?)\s*=\s*(\"[^\"]*\"|'[^']*'|[^,]*?)\s*(?:,|$)")
    found, at = {}, 0
    while at < len(text):
        match = pattern.match(text, at)
        if match is None or match.end() == at:
            raise ProbeError(f'--verbalizers: cannot read {text[at:]!r}; write 1=" True",0=...')
        word = match.group(2)
        found[match.group(1)] = word[1:-1] if word[:1] in "\"'" and len(word) > 1 else word
        at = match.end()
    if len(found) < 2 or not all(found.values()):
        raise ProbeError("--verbalizers: give a non-empty word for two classes at least")
    return found


def intervene(
    head: str,
    data: str,
    *,
    alphas=DEFAULT_ALPHAS,
    seeds: int = DEFAULT_SEEDS,
    target: str | None = None,
    verbalizers: dict[str, str] | None = None,
    erase: bool = True,
    direction: str = "pattern",
    model: str | None = None,
    device: str | None = None,
    text_col: str = "text",
    label_col: str = "label",
    test_size: float = 0.5,
    max_rows: int = 200,
    seed: int = 0,
    n_resamples: int = 1000,
) -> dict:
    """Run the dose-response of ``head``'s direction on ``data``; return the JSON-able result."""
    from probe.data.readers import read_dataset
    from probe.features.forward import encode_texts
    from probe.serve.predict import load_predictor

    if seeds < 1:
        raise ProbeError("--seeds must be 1 or more: the effect is measured against random")
    predictor = load_predictor(head, model, device)  # the model's fingerprint is checked
    meta, classifier = predictor.meta, predictor.classifier
    if predictor.combiner is not None or predictor.task is not None:
        raise ProbeError(f"{head}: intervene takes a single-layer classifier head")
    backbone, layer, pool = predictor.backbone, int(meta["layer"]), meta["pool"]
    if meta.get("site", "block") != "block" or pool not in POOL_NAMES:
        raise ProbeError(
            f"{head} reads site {meta.get('site', 'block')}, pool {pool}: intervene edits the "
            "residual stream after a block (--site block) at the positions of pool last or mean"
        )
    classes = [str(c) for c in classifier.classes_]
    if direction not in DIRECTIONS:
        raise ProbeError(f"--direction must be {' or '.join(DIRECTIONS)}, not {direction!r}")
    _, target = head_direction(classifier, target)  # a bad --target fails before any pass
    dataset = read_dataset(data, text_col, label_col, require_labels=True)
    labels = np.asarray(dataset.labels, dtype=str)
    foreign = sorted(set(labels) - set(classes))
    if foreign:
        raise ProbeError(f"{data}: labels {', '.join(foreign[:5])} are not classes of the head")
    train, held, notes = _split(dataset, labels, test_size, max_rows, seed)
    if target not in set(labels[train]):
        raise ProbeError(f"{data}: no training rows of the target class {target!r}")
    later = list(range(layer + 1, backbone.num_layers + 1))
    verbalizer_ids = None
    if verbalizers:
        if not backbone.causal:
            raise ProbeError("--verbalizers needs a causal language model")
        unknown = sorted(set(verbalizers) - set(classes))
        if unknown or target not in verbalizers:
            raise ProbeError(f"--verbalizers must name the target class {target!r} and classes")
        verbalizer_ids, cut = verbalizer_token_ids(backbone, verbalizers)
        notes += cut
    if not later and not verbalizers:
        raise ProbeError(
            f"{head} reads the last layer ({layer}): no later layer reads it; "
            "give --verbalizers to read the LM's next token"
        )
    encoded = encode_texts(
        backbone,
        dataset.texts,
        int(meta["max_length"]),
        meta.get("prompt"),
        bool(meta.get("chat_template")),
    ).token_ids
    ids = [encoded[i] for i in np.concatenate([train, held])]
    if min(len(t) for t in ids) == 0:
        raise ProbeError(f"{data}: a text is empty after tokenization")
    n_train = len(train)
    verbal = list(verbalizer_ids.values()) if verbalizer_ids else None
    clean = run_rows(backbone, ids, [layer, *later], pool, norm_layer=layer, verbalizer_ids=verbal)
    norm = typical_norm(clean.norms)
    pattern_of = clean.features[layer][:n_train] if direction == "pattern" else None
    unit, target = head_direction(classifier, target, pattern_of)
    readouts = _fit_readouts(clean.features, later, labels[train], n_train, seed)
    held_ids, held_labels = ids[n_train:], labels[held]
    score = _Scorer(readouts, target, verbalizers, held_labels)
    base = score.shift_scores(clean, n_train)

    def scores_of(edit: Edit) -> dict:
        changed = run_rows(backbone, held_ids, later, pool, edit, verbalizer_ids=verbal)
        return score.shift_scores(changed, 0)

    seed_list = [seed * 1000 + s + 1 for s in range(seeds)]
    randoms = random_directions(len(unit), seed_list)
    dose = []
    for alpha in alphas:
        if alpha == 0.0:
            zero = {name: np.zeros(len(held)) for name in base}
            dose += _dose_rows(alpha, zero, [zero] * seeds, n_resamples, seed)
            continue
        moved = scores_of(Edit(layer, pool, vector=alpha * norm * unit))
        moved = {name: moved[name] - base[name] for name in base}
        random = []
        for vector in randoms:
            shifted = scores_of(Edit(layer, pool, vector=alpha * norm * vector))
            random.append({name: shifted[name] - base[name] for name in base})
        dose += _dose_rows(alpha, moved, random, n_resamples, seed)
    erasure = None
    if erase:
        erasure = _erasure(
            backbone,
            clean,
            ids,
            labels[train],
            held_labels,
            layer,
            later,
            pool,
            score,
            seed_list,
            verbal,
            n_resamples,
            seed,
        )
    return {
        "kind": "intervene",
        "head": str(head),
        "model": meta["model"],
        "data": str(data),
        "layer": layer,
        "pool": pool,
        "classes": classes,
        "target": target,
        "direction": direction,
        "typical_norm": norm,
        "alphas": [float(a) for a in alphas],
        "random_seeds": seed_list,
        "rows": {"train": n_train, "intervened": len(held)},
        "readouts": list(base),
        "clean": score.clean_summary(clean, n_train),
        "dose": dose,
        "erasure": erasure,
        "verbalizers": verbalizers,
        "settings": {
            "test_size": test_size,
            "max_rows": max_rows,
            "seed": seed,
            "resamples": n_resamples,
        },
        "notes": notes,
    }


def _split(dataset, labels, test_size, max_rows, seed):
    """(train rows, rows to change, notes): the ``split`` column's train rows, else a
    stratified ``test_size`` held out (texts and groups kept whole); each capped."""
    from probe.data.splits import dataset_groups, held_out_rows, split_names

    rng = np.random.default_rng(seed)
    if dataset.splits is not None:
        held_mask = split_names(dataset.splits, dataset.source) != "train"
    else:
        held_mask = held_out_rows(labels, test_size, rng, dataset_groups(dataset))
    train, held = np.flatnonzero(~held_mask), np.flatnonzero(held_mask)
    notes = []
    if len(held) > max_rows:
        notes.append(f"{max_rows} of {len(held)} held-out rows changed (--max-rows)")
        held = np.sort(rng.choice(held, max_rows, replace=False))
    if len(train) > 5 * max_rows:
        notes.append(f"readouts fitted on {5 * max_rows} of {len(train)} train rows")
        train = np.sort(rng.choice(train, 5 * max_rows, replace=False))
    if len(np.unique(labels[train])) < 2 or not len(held):
        raise ProbeError(f"{dataset.source}: too few rows of each class to fit and to change")
    return train, held, notes


def _fit_readouts(features: dict, later: list[int], train_labels, n_train: int, seed: int):
    """{layer: ProbeClassifier} fitted on the clean train rows of each later layer."""
    from probe.heads.estimator import ProbeClassifier

    return {
        layer: ProbeClassifier(random_state=seed).fit(features[layer][:n_train], train_labels)
        for layer in later
    }


class _Scorer:
    """Per-text scores of a pass: each later layer's probability of the target class, and the
    verbalizers' log-probability margin of the target over the others."""

    def __init__(self, readouts: dict, target: str, verbalizers, held_labels):
        self.readouts, self.target, self.labels = readouts, target, held_labels
        self.verbal_classes = list(verbalizers or ())

    def _columns(self, layer):
        return list(self.readouts[layer].classes_).index(self.target)

    def _margin(self, log_probs):
        at = self.verbal_classes.index(self.target)
        others = np.delete(log_probs, at, axis=1)
        return log_probs[:, at] - np.logaddexp.reduce(others, axis=1)

    def shift_scores(self, run, start: int) -> dict:
        """{readout: (n,) score toward the target} of the rows from ``start`` on."""
        out = {
            f"layer {layer}": head.predict_proba(run.features[layer][start:])[
                :, self._columns(layer)
            ]
            for layer, head in self.readouts.items()
        }
        if run.log_probs is not None:
            out[VERBALIZERS] = self._margin(run.log_probs[start:])
        return out

    def true_scores(self, run, start: int) -> dict:
        """{readout: (n,)}: 1/0 correct for a layer's head; for the verbalizers the margin
        toward the true class (signed: + when the text's class is the target)."""
        out = {
            f"layer {layer}": (head.predict(run.features[layer][start:]) == self.labels).astype(
                float
            )
            for layer, head in self.readouts.items()
        }
        if run.log_probs is not None:
            sign = np.where(self.labels == self.target, 1.0, -1.0)
            out[VERBALIZERS] = sign * self._margin(run.log_probs[start:])
        return out

    def clean_summary(self, run, start: int) -> dict:
        shifts, truths = self.shift_scores(run, start), self.true_scores(run, start)
        return {
            name: {"toward_target": float(shifts[name].mean()), "true": float(truths[name].mean())}
            for name in shifts
        }


def _interval(values, other, n_resamples: int, seed: int) -> list[float]:
    """Paired bootstrap interval of mean(values - other) over texts."""
    from probe.research.uncertainty import paired_differences

    stacked = np.stack([np.asarray(values, np.float64), np.asarray(other, np.float64)])
    return [float(v) for v in paired_differences(stacked, 1, n_resamples=n_resamples, seed=seed)[0]]


def _dose_rows(alpha, moved: dict, random: list[dict], n_resamples, seed) -> list[dict]:
    rows = []
    for name, shift in moved.items():
        per_seed = np.stack([r[name] for r in random])  # (seeds, n)
        random_mean = per_seed.mean(axis=0)
        zero = np.zeros_like(shift)
        effect_ci = _interval(shift, random_mean, n_resamples, seed)
        rows.append(
            {
                "readout": name,
                "alpha": float(alpha),
                "head_shift": float(shift.mean()),
                "head_shift_ci": _interval(shift, zero, n_resamples, seed),
                "random_shift": float(random_mean.mean()),
                "random_shift_ci": _interval(random_mean, zero, n_resamples, seed),
                "random_spread": float(np.abs(per_seed.mean(axis=1)).max()),
                "effect": float((shift - random_mean).mean()),
                "effect_ci": effect_ci,
                "moved": bool(alpha != 0 and (effect_ci[0] > 0 or effect_ci[1] < 0)),
            }
        )
    return rows


def _erasure(
    backbone,
    clean,
    ids,
    train_labels,
    held_labels,
    layer,
    later,
    pool,
    score,
    seed_list,
    verbal,
    n_resamples,
    seed,
) -> dict:
    """Project the concept out at the head's layer (fitted on the clean train rows): the
    later readouts' truth and a same-layer probe's cross-validated accuracy, beside random
    subspaces of the same rank."""
    n_train = len(train_labels)
    eraser = fit_eraser(clean.features[layer][:n_train], train_labels)
    held_ids = ids[n_train:]
    before = score.true_scores(clean, n_train)

    def erased_by(one):
        run = run_rows(
            backbone,
            held_ids,
            [layer, *later],
            pool,
            Edit(layer, pool, eraser=one),
            verbalizer_ids=verbal,
        )
        return run, score.true_scores(run, 0)

    run, after = erased_by(eraser)
    randoms = [erased_by(random_eraser(eraser, s)) for s in seed_list]
    rows = []
    for name in after:
        random_mean = np.mean([r[1][name] for r in randoms], axis=0)
        rows.append(
            {
                "readout": name,
                "clean": float(before[name].mean()),
                "erased": float(after[name].mean()),
                "random_erased": float(random_mean.mean()),
                "effect": float((after[name] - random_mean).mean()),
                "effect_ci": _interval(after[name], random_mean, n_resamples, seed),
            }
        )
    chance = float(np.unique(held_labels, return_counts=True)[1].max() / len(held_labels))
    random_probe = [_cv_accuracy(r[0].features[layer], held_labels, seed) for r in randoms]
    return {
        "method": eraser.method,
        "rank": eraser.rank,
        "readouts": rows,
        "same_layer_probe": {
            "chance": chance,
            "clean": _cv_accuracy(clean.features[layer][n_train:], held_labels, seed),
            "erased": _cv_accuracy(run.features[layer], held_labels, seed),
            "random_erased": float(np.mean(random_probe)) if random_probe else None,
        },
    }


def _cv_accuracy(features, labels, seed: int) -> float | None:
    """Cross-validated accuracy of a logistic probe (None: too few rows of a class)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from probe.heads.estimator import ProbeClassifier

    folds = min(5, int(np.unique(labels, return_counts=True)[1].min()))
    if folds < 2:
        return None
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(
        cross_val_score(ProbeClassifier(random_state=seed), features, labels, cv=splitter).mean()
    )
