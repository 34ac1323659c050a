"""Serve a saved head: new texts -> the backbone up to the head's layer -> label + probabilities.

The features are computed by ``probe.features.forward.embed_texts``, the function
extraction uses for a batch, rounded through fp16 exactly as the cache stores them, combined
by the head's ``LayerCombiner`` where it reads several layers (concat, mix), then standardised
and scored by the same ``ProbeClassifier`` code as at fit time: a text gets the prediction it
got from the cache. The backbone runs only up to the head's deepest layer. A head is refused,
before any weights are read, when the model's fingerprint is not the one it was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probe.errors import ProbeError

# a column per class up to this many classes; past it, each text's TOP_CLASSES most probable
# (a 313-class head printed 313 columns a line)
TABLE_CLASSES = 8
TOP_CLASSES = 3


@dataclass
class Predictor:
    classifier: object  # ProbeClassifier
    meta: dict  # the head's JSON record
    backbone: object  # probe.features.models.loading.Backbone
    combiner: object = None  # probe.heads.mix.LayerCombiner of a multi-layer head

    @property
    def label_names(self) -> list[str]:
        if self.meta.get("target_names"):
            return [str(name) for name in self.meta["target_names"]]
        return [str(c) for c in self.classifier.classes_]

    @property
    def task(self):
        """The task module of a regression or multi-label head; None for a classifier."""
        kind = self.meta.get("target", "classification")
        if kind == "classification":
            return None
        from probe.heads.tasks import task_module

        return task_module(kind)

    @property
    def layers(self) -> list[int]:
        """The model layers the head reads; the backbone runs up to the deepest."""
        return list(self.combiner.layers) if self.combiner else [int(self.meta["layer"])]

    def features(self, texts: list[str]) -> np.ndarray:
        """float32 (N, D'): the head's layers and pool as the cache would hold them, combined
        as at fit time for a multi-layer head."""
        from probe.features.forward import embed_texts

        pooled = embed_texts(
            self.backbone,
            texts,
            self.layers,
            int(self.meta["max_length"]),
            prompt=self.meta.get("prompt"),
            chat_template=bool(self.meta.get("chat_template")),
            site=self.meta.get("site", "block"),
            pools=(self.meta["pool"],),
        )
        stack = pooled[self.meta["pool"]]  # (L, N, D)
        return self.combiner.apply(stack) if self.combiner else stack[0]

    def predict(self, texts: list[str]) -> list[dict]:
        """One dict per text: label and the probability of every class."""
        texts = check_texts(texts)
        if self.task is not None:  # numbers, or a label set with each label's probability
            outputs = self.task.outputs(self.classifier, self.features(texts))
            rows = self.task.prediction_rows(outputs, self.label_names)
            return [{"text": text, **row} for text, row in zip(texts, rows, strict=True)]
        probabilities = self.classifier.predict_proba(self.features(texts))  # (N, K)
        return prediction_rows(texts, probabilities, self.label_names)


def check_texts(texts) -> list[str]:
    """The texts as strings; an empty one is a one-line error naming its position."""
    texts = [str(text) for text in texts]
    empty = [i for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise ProbeError(f"{len(empty)} texts are empty (first at position {empty[0] + 1})")
    return texts


def prediction_rows(texts: list[str], probabilities, names: list[str]) -> list[dict]:
    """One dict per text: label (the most probable) and the probability of every class."""
    return [
        {
            "text": text,
            "label": names[int(np.argmax(row))],
            "probabilities": {name: float(p) for name, p in zip(names, row, strict=True)},
        }
        for text, row in zip(texts, probabilities, strict=True)
    ]


def load_predictor(head: str, model: str | None = None, device: str | None = None) -> Predictor:
    """Load a head and the backbone it was fitted on (``model`` overrides where it lives)."""
    from probe.features.models.loading import describe_model, load_backbone
    from probe.heads.persistence import load_head_parts

    classifier, meta, combiner = load_head_parts(head)
    layers = list(combiner.layers) if combiner else [int(meta["layer"])]
    spec = model or meta["model"]
    info = describe_model(spec)  # fingerprint and shape, no weights read
    if info.fingerprint != meta["model_fingerprint"]:
        raise ProbeError(
            f"{head} was fitted on model '{meta['model']}' (fingerprint "
            f"{meta['model_fingerprint'][:12]}), not on '{spec}' (fingerprint "
            f"{info.fingerprint[:12]}); fit a head for this model"
        )
    if not all(0 <= layer <= info.num_layers for layer in layers):
        raise ProbeError(f"{head}: layer {meta['layer']} does not exist in '{spec}'")
    width = info.hidden_size * (len(layers) if combiner and combiner.kind == "concat" else 1)
    if width != classifier.n_features_in_:
        raise ProbeError(
            f"{head} expects {classifier.n_features_in_} features; '{spec}' gives {width}"
        )
    backbone = load_backbone(spec, device=device)
    return Predictor(classifier, meta, backbone, combiner)


def predict_texts(head: str, texts: list[str], model: str | None = None, device=None) -> list:
    """Convenience: ``load_predictor(head, model).predict(texts)``."""
    return load_predictor(head, model, device).predict(texts)


def format_predictions(rows: list[dict], width: int = 60) -> str:
    """A table: label, one probability column per class, the text (clipped); with more than
    ``TABLE_CLASSES`` classes each text's ``TOP_CLASSES`` most probable instead (``--json``
    keeps every class)."""
    if not rows:
        return ""
    if "probabilities" not in rows[0] or "prediction" in rows[0]:
        return _format_targets(rows, width)
    names = list(rows[0]["probabilities"])
    if len(names) > TABLE_CLASSES:
        return _format_top_classes(rows, width)
    label_width = max(len("label"), *(len(name) for name in names))
    columns = [max(6, len(name)) for name in names]
    header = f"{'label':<{label_width}}  " + "  ".join(
        f"{name:>{w}}" for name, w in zip(names, columns, strict=True)
    )
    lines = [header + "  text"]
    for row in rows:
        text = _clipped(row, width)
        cells = "  ".join(
            f"{row['probabilities'][name]:>{w}.4f}" for name, w in zip(names, columns, strict=True)
        )
        lines.append(f"{row['label']:<{label_width}}  {cells}  {text}")
    return "\n".join(lines)


def _format_top_classes(rows: list[dict], width: int) -> str:
    """Many classes: label, then the most probable classes with their probabilities."""
    tops = []
    for row in rows:
        ranked = sorted(row["probabilities"].items(), key=lambda item: -item[1])
        tops.append(", ".join(f"{name} {p:.4f}" for name, p in ranked[:TOP_CLASSES]))
    label_width = max(len("label"), *(len(row["label"]) for row in rows))
    top_width = max(len(top) for top in tops)
    lines = [f"{'label':<{label_width}}  {f'top {TOP_CLASSES}':<{top_width}}  text"]
    for row, top in zip(rows, tops, strict=True):
        lines.append(f"{row['label']:<{label_width}}  {top:<{top_width}}  {_clipped(row, width)}")
    return "\n".join(lines)


def _clipped(row: dict, width: int) -> str:
    """The row's text on one line, at most ``width`` characters."""
    text = " ".join(row["text"].split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _format_targets(rows: list[dict], width: int) -> str:
    """Regression: one column per target; multi-label: the predicted label set."""
    lines = []
    for row in rows:
        text = _clipped(row, width)
        found = row["prediction"]
        if isinstance(found, dict):
            cells = "  ".join(f"{name} {value:.4g}" for name, value in found.items())
        else:
            cells = "|".join(found) or "(none)"
        lines.append(f"{cells}  {text}")
    return "\n".join(lines)
