"""Where the fine-tuning head starts: a probe fitted here (LP-FT), a saved probe, or zero.

A zero head on unstandardised pooled states learns slowly (SmolLM2's last-token states have
norms in the hundreds) while the unfrozen blocks already move under its wrong gradients:
``probe finetune --unfreeze 1 --epochs 1`` on 160 SMS texts ended at train loss 0.98, above
ln 2. LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features") starts the
head at the linear probe instead: fitted on the cached features of the head's layer and pool
(train rows, C chosen on validation), its standardisation folded into the weights, so the
first step's logits are the probe's. The features come through the feature cache, computed
there if missing: one forward pass over train + val, the pass a sweep would have run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from probe.errors import ProbeError, one_line
from probe.messages import say

INIT_CHOICES = ("auto", "probe", "zero")


@dataclass
class HeadStart:
    """(C, D) weight and (C,) bias on raw pooled states, or None for zeros; ``info`` says
    which start was used and why (it goes into the fine-tuning report)."""

    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    info: dict = field(default_factory=lambda: {"kind": "zero"})


def starting_head(spec, backbone, plan, pool, label_names, splits, max_length) -> HeadStart:
    """``--init-head``: auto (a probe when one can be fitted, else zero), probe, zero, or a
    path to a ``probe fit`` head."""
    spec = "zero" if spec in (None, "") else str(spec)
    if spec == "zero":
        return HeadStart()
    if spec in ("auto", "probe"):
        try:
            return fitted_probe_head(backbone, plan, pool, label_names, splits, max_length)
        except ProbeError as exc:
            if spec == "probe":
                raise ProbeError(f"--init-head probe: {one_line(str(exc))}") from None
            say(f"head starts at zero: no probe could be fitted ({one_line(str(exc))})")
            return HeadStart(info={"kind": "zero", "reason": one_line(str(exc))})
    weight, bias = initial_head(spec, backbone, plan, pool, label_names)
    return HeadStart(weight, bias, {"kind": "file", "path": spec})


def fitted_probe_head(backbone, plan, pool, label_names, splits, max_length) -> HeadStart:
    """Fit the probe of ``plan.layer`` / ``pool`` on cached train features (C on val) and fold
    its scaler in. Must run before any weight moves: the cache is keyed by the weights."""
    from probe.features.extract import extract
    from probe.features.store.caches import open_cache
    from probe.heads.estimator import ProbeClassifier

    started = time.perf_counter()
    features = {}
    for name in ("train", "val"):
        path = extract(backbone, getattr(splits, name), [plan.layer], max_length=max_length)
        features[name] = open_cache(path).features(plan.layer, pool)  # (N, D) float32
    extract_seconds = time.perf_counter() - started
    probe = ProbeClassifier().fit(
        features["train"],
        np.asarray(splits.train.labels, str),
        features["val"],
        np.asarray(splits.val.labels, str),
    )
    classes = [str(c) for c in probe.classes_]
    if classes != list(label_names):
        raise ProbeError(f"the probe's labels {classes} differ from the data's {label_names}")
    val_accuracy = float(probe.score(features["val"], np.asarray(splits.val.labels, str)))
    weight, bias = fold_scaler(probe)
    info = {
        "kind": "probe",
        "layer": plan.layer,
        "pool": pool,
        "C": float(probe.C_),
        "val_accuracy": val_accuracy,
        "extract_seconds": extract_seconds,
        "seconds": time.perf_counter() - started,
    }
    say(
        f"head starts at the layer {plan.layer} {pool} probe (C {probe.C_:g}, val accuracy "
        f"{val_accuracy:.4f}, {info['seconds']:.1f} s)"
    )
    return HeadStart(weight, bias, info)


def initial_head(path, backbone, plan, pool: str, label_names: list[str]):
    """A ``probe fit`` head as (W (C, D), b (C,)) on raw features, scaler folded in.

    The probe computes ``W ((x - mean) / scale) + b``, which is ``(W / scale) x + b - W (mean
    / scale)``: one linear layer on the unstandardised pooled state (``fold_scaler``).
    """
    from probe.heads.persistence import load_head

    try:  # load_head says what is wrong with a file in one line; reading it can still fail
        classifier, meta = load_head(path)
    except OSError as exc:
        raise ProbeError(f"cannot read head {path}: {exc.strerror or exc}") from None
    problems = []
    if meta.get("model_fingerprint") not in (None, backbone.fingerprint):
        problems.append(f"it was fitted on another model ({meta.get('model')})")
    if int(meta.get("layer", -1)) != plan.layer:
        problems.append(f"its layer is {meta.get('layer')}, fine-tuning uses layer {plan.layer}")
    if meta.get("pool") != pool:
        problems.append(f"its pool is {meta.get('pool')}, fine-tuning uses {pool}")
    classes = [str(c) for c in classifier.classes_]
    if classes != list(label_names):
        problems.append(f"its labels {classes} differ from the data's {label_names}")
    if problems:
        raise ProbeError(f"--init-head {path} does not fit: {'; '.join(problems)}")
    return fold_scaler(classifier)


def fold_scaler(classifier) -> tuple[np.ndarray, np.ndarray]:
    """``folded_weights`` as the (C, D) and (C,) float32 of an ``nn.Linear`` read by softmax:
    a binary head's one row becomes two, since sigmoid(w x + b) == softmax([0, w x + b])[1]."""
    from probe.heads.maths import folded_weights

    weight, bias = folded_weights(
        classifier.coef_,
        classifier.intercept_,
        getattr(classifier, "mean_", None),
        getattr(classifier, "scale_", None),
    )
    if weight.shape[0] == 1:
        weight = np.vstack([np.zeros_like(weight), weight])
        bias = np.concatenate([[0.0], bias])
    return weight.astype(np.float32), bias.astype(np.float32)
