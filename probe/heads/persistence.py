"""Saving and loading a head: JSON metadata beside safetensors weights, no code run on load.

A saved head is ``NAME.json`` (metadata, readable) beside ``NAME.safetensors`` (weights,
bias, scaler). Loading parses JSON and safetensors only, so no code runs; the sha256 of the
weights file and of the JSON's own content are recorded and checked, so a truncated or
edited head is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from probe.errors import ProbeError
from probe.features.layers import CONCAT, MIX, SINGLE
from probe.features.pooling import check_pool
from probe.files import write_atomic
from probe.heads.estimator import ProbeClassifier
from probe.jsonable import to_jsonable


def classifier_from_weights(coef, intercept, classes, mean=None, scale=None, C=None):
    """A fitted ``ProbeClassifier`` from raw arrays (a head trained elsewhere, e.g.
    fine-tuned).

    ``coef`` is (1, D) for two classes, (K, D) otherwise; with no ``mean``/``scale`` the
    features are used as they are.
    """
    coef = np.atleast_2d(np.asarray(coef, np.float64))
    intercept = np.atleast_1d(np.asarray(intercept, np.float64))
    classes = np.asarray(classes)
    expected = 1 if len(classes) == 2 else len(classes)
    if len(classes) < 2 or coef.shape[0] != expected or intercept.shape != (expected,):
        raise ProbeError(
            f"head weights do not fit {len(classes)} classes: coef {coef.shape}, "
            f"intercept {intercept.shape} (two classes take 1 row, K classes K rows)"
        )
    dim = coef.shape[1]
    clf = ProbeClassifier(C=C)
    clf.classes_ = classes
    clf.coef_, clf.intercept_ = coef, intercept
    clf.mean_ = np.zeros(dim) if mean is None else np.asarray(mean, np.float64)
    clf.scale_ = np.ones(dim) if scale is None else np.asarray(scale, np.float64)
    if clf.mean_.shape != (dim,) or clf.scale_.shape != (dim,):
        raise ProbeError(f"head scaler shapes {clf.mean_.shape}, {clf.scale_.shape} != ({dim},)")
    clf.n_features_in_ = dim
    clf.C_ = C
    return clf


# --- saving and loading ---------------------------------------------------------------------

HEAD_FORMAT = "probe-head"
HEAD_FORMAT_VERSION = 2  # 2: multi-layer heads (concat, mix); format 1 is still read
READABLE_VERSIONS = (1, 2)
REQUIRED_META = {
    "model": str,  # a spec load_backbone accepts: alias, directory, .gguf, hub id
    "model_fingerprint": str,
    "layer": (int, str),  # 0 = embeddings .. L = final output; or "12+18+24", "mix"
    "pool": str,  # a name of probe.features.pooling (check_pool)
    "max_length": int,
}
WEIGHT_NAMES = ("coef", "intercept", "mean", "scale")


def head_paths(path: str | Path) -> tuple[Path, Path]:
    """``x.json`` -> (x.json, x.safetensors); a directory -> its head.json, head.safetensors."""
    path = Path(path).expanduser()
    json_path = path if path.suffix == ".json" else path / "head.json"
    return json_path, json_path.with_suffix(".safetensors")


def save_head(path: str | Path, clf: ProbeClassifier, meta: dict, combiner=None) -> Path:
    """Write a fitted head as JSON metadata + safetensors weights; return the JSON path.

    ``meta`` needs ``REQUIRED_META`` (what predict needs to rebuild the features) and may
    hold anything JSON-able (label_names, cache_key, metrics, ...). A multi-layer head passes
    its ``LayerCombiner``: its layers and (for a mix) its tensors are saved too. Both files are
    written to temporary names and moved into place, weights first.
    """
    from safetensors.numpy import save

    check_is_fitted(clf)
    missing = [key for key in REQUIRED_META if meta.get(key) is None]
    if missing:
        raise ProbeError(f"head metadata lacks {', '.join(missing)}")
    check_pool(meta["pool"])
    json_path, weights_path = head_paths(path)
    task, family = _task_of(meta), _family_of(meta)  # family: an MLP's two layers
    if task is not None:  # regression, multi-label: the task's own tensors (thresholds...)
        tensors = {k: np.ascontiguousarray(v, np.float64) for k, v in task.tensors(clf).items()}
    elif family is not None:
        tensors = {k: np.ascontiguousarray(v, np.float64) for k, v in family.tensors(clf).items()}
    else:
        tensors = {
            "coef": np.ascontiguousarray(clf.coef_, np.float64),  # (K', D)
            "intercept": np.ascontiguousarray(clf.intercept_, np.float64),  # (K',)
            "mean": np.ascontiguousarray(clf.mean_, np.float64),  # (D,)
            "scale": np.ascontiguousarray(clf.scale_, np.float64),  # (D,)
        }
    if combiner is not None:
        tensors.update(
            {
                name: np.ascontiguousarray(value, np.float64)
                for name, value in combiner.tensors().items()
            }
        )
    weights = save(tensors, metadata={"format": HEAD_FORMAT})
    classes = meta["target_names"] if task is not None else clf.classes_.tolist()
    record = {
        **{key: to_jsonable(value) for key, value in meta.items()},
        "format": HEAD_FORMAT,
        "format_version": HEAD_FORMAT_VERSION,
        "layer": meta["layer"] if combiner is not None else int(meta["layer"]),
        "combine": combiner.kind if combiner is not None else SINGLE,
        "layers": [int(layer) for layer in combiner.layers] if combiner else [int(meta["layer"])],
        "max_length": int(meta["max_length"]),
        "classes": classes,
        "label_names": [str(c) for c in meta.get("label_names") or classes],
        "n_features": int(clf.coef_.shape[1] if family is None else clf.n_features_in_),
        "C": float(task.penalty_of(clf)) if task is not None else _C_of(clf),
        "class_weight": to_jsonable(getattr(clf, "class_weight", None)),
        # which solver fitted it ("sklearn-fallback" when the fast path failed, and why);
        # None for weights made elsewhere (``from_weights``: a fine-tuned head)
        "solver": getattr(clf, "solver_", None),
        "fallback_reason": getattr(clf, "fallback_reason_", None),
        "versions": {**_versions(), **(meta.get("versions") or {})},
        "weights_file": weights_path.name,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    record["sha256"] = _content_sha256(record)
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(weights_path, weights)
        write_atomic(json_path, (json.dumps(record, indent=2, allow_nan=False) + "\n").encode())
    except OSError as exc:
        raise ProbeError(f"cannot write the head to {json_path.parent}: {exc.strerror}") from None
    return json_path


def load_head(path: str | Path) -> tuple[ProbeClassifier, dict]:
    """Read a head written by ``save_head``: (classifier, metadata). Runs no stored code.

    A missing, truncated or edited file (either one) is a one-line ``ProbeError``.
    """
    classifier, record, _ = load_head_parts(path)
    return classifier, record


def load_head_parts(path: str | Path):
    """(classifier, metadata, ``LayerCombiner`` or None): what serving a head needs."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from probe.heads.mix import MIX_TENSORS, LayerCombiner

    json_path, _ = head_paths(path)
    if not json_path.is_file():
        raise ProbeError(f"head file not found: {json_path}")
    damaged = f"{json_path} is damaged (truncated or edited); fit the head again"
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProbeError(damaged) from None
    if not isinstance(record, dict) or record.get("format") != HEAD_FORMAT:
        raise ProbeError(f"{json_path} is not a probe head file")
    if record.get("format_version") not in READABLE_VERSIONS:
        raise ProbeError(
            f"{json_path} has head format {record.get('format_version')}; this probe reads "
            f"format {HEAD_FORMAT_VERSION}"
        )
    if record.get("sha256") != _content_sha256(record):
        raise ProbeError(damaged)
    for key, kind in REQUIRED_META.items():
        if not isinstance(record.get(key), kind):
            raise ProbeError(damaged)
    weights_name = str(record.get("weights_file", ""))
    weights_path = json_path.parent / weights_name
    if Path(weights_name).name != weights_name or not weights_path.is_file():
        raise ProbeError(f"weights file of {json_path.name} not found: {weights_path}")
    weights = weights_path.read_bytes()
    if hashlib.sha256(weights).hexdigest() != record.get("weights_sha256"):
        raise ProbeError(
            f"{weights_path} does not match {json_path.name} (sha256 differs): the weights "
            "were truncated, edited or replaced; fit the head again"
        )
    task, family = _task_of(record), _family_of(record)
    try:
        tensors = load(weights)
        if task is not None:
            if not all(np.isfinite(value).all() for value in tensors.values()):
                raise ProbeError(f"{weights_path} holds non-finite weights; fit the head again")
            return task.from_tensors(tensors, record), record, None
        if family is not None:
            clf = family.from_tensors(tensors, record)
        else:
            clf = classifier_from_weights(
                tensors["coef"],
                tensors["intercept"],
                record["classes"],
                mean=tensors["mean"],
                scale=tensors["scale"],
                C=record.get("C"),
            )
    except (SafetensorError, KeyError, TypeError, ValueError, ProbeError):
        raise ProbeError(f"{weights_path} is not a valid head weights file") from None
    names = family.TENSOR_NAMES if family is not None else WEIGHT_NAMES
    if not all(np.isfinite(tensors[name]).all() for name in names):
        raise ProbeError(f"{weights_path} holds non-finite weights; fit the head again")
    clf.class_weight = record.get("class_weight")
    kind = record.get("combine", SINGLE)
    if kind == SINGLE:
        return clf, record, None
    layers = record.get("layers")
    if kind not in (CONCAT, MIX) or not isinstance(layers, list) or not layers:
        raise ProbeError(damaged)
    names = MIX_TENSORS if kind == MIX else ()
    if any(name not in tensors or not np.isfinite(tensors[name]).all() for name in names):
        raise ProbeError(f"{weights_path} lacks the mix of its layers; fit the head again")
    return clf, record, LayerCombiner.from_tensors(kind, layers, tensors)


def _C_of(clf) -> float | None:
    return None if getattr(clf, "C_", None) is None else float(clf.C_)


def _task_of(record: dict):
    """The task module of a regression or multi-label head; None for a classifier."""
    kind = record.get("target", "classification")
    if kind == "classification":
        return None
    from probe.heads.tasks import task_module

    return task_module(kind)


def _family_of(record: dict):
    """The module of a non-linear probe family's head (an MLP); None for a linear head."""
    if record.get("probe") is None:
        return None
    from probe.heads.families import family_module

    return family_module(record)


def _content_sha256(record: dict) -> str:
    """sha256 of the record without its own checksum, in canonical JSON."""
    body = {key: value for key, value in record.items() if key != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from probe import __version__

    found = {"probe": __version__}
    for package in ("numpy", "scikit-learn", "safetensors"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
