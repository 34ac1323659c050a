"""A saved head as one ONNX graph that runs without torch: ``probe export``.

The graph is the whole serving path of ``probe predict``: the backbone truncated at the
head's deepest layer (blocks above it are not in the graph; the final norm only when the layer
is the top one, the numbering of ``hidden_states_by_layer``), the pooling, the fp16 rounding
the cache applies (so probabilities match the head's fit-time view of the features), the
combination of a multi-layer head's layers (concat or mix), the standardisation and the linear
head (an MLP head, ``--probe mlp``: its two layers, a ReLU between). Inputs ``input_ids``
and ``attention_mask`` (B, T) int64, right-padded, with dynamic B and T; outputs ``logits``
(B, K) and ``probabilities`` (B, K) in label order (for two classes the logits are ``[0, s]``).

Beside it: the tokenizer (``tokenizer.json``, loadable with ``tokenizers`` alone or with
``transformers.AutoTokenizer``) and ``probe-export.json`` (labels, layer, pool, model
fingerprint, truncation, versions). ``OnnxPredictor`` serves the folder with onnxruntime,
tokenizers and numpy only: this module imports torch only inside ``export_head``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.errors import ProbeError, is_bare_exception, short_reason
from probe.messages import detail
from probe.outputs import replace_folder, staging_folder, write_json

EXPORT_FORMAT = "probe-onnx"
EXPORT_FORMAT_VERSION = 1
META_FILE = "probe-export.json"
MODEL_FILE = "model.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAMES = ("logits", "probabilities")
OPSET = 17
PARITY_TOLERANCE = 1e-3  # max |p_onnx - p_torch| accepted by the export-time check
CHECK_TEXTS = (
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
    "ok see you at home",
    "unicode: naïve café, 日本語",
)
INSTALL_HINT = "pip install 'probe[export]' (onnx, onnxruntime)"


# --- building the graph (torch) ---------------------------------------------------------------


def _serving_module(model, pool: str, classifier, combiner=None, kind="classification"):
    """An nn.Module: (input_ids, attention_mask) -> (logits, probabilities).

    ``model`` must already be truncated at the head's deepest layer (see ``export_head``);
    the standardisation is folded into the weights (``probe.heads.maths.folded_weights``).
    A multi-layer head reads its layers from the hidden states and combines them as its
    ``LayerCombiner`` does (concat side by side, or the standardised softmax-weighted mix).
    """
    import torch
    from torch import nn

    from probe.features.models.architecture import base_model
    from probe.features.pooling import traced_pool
    from probe.heads.maths import folded_weights

    hidden = None  # an MLP head (--probe mlp): relu(x W1 + b1) before the output layer
    if hasattr(classifier, "hidden_weight_"):
        from probe.heads.families.mlp import serving_layers

        hidden, (weight, bias) = serving_layers(classifier)  # standardisation in W1, b1
    else:
        weight, bias = folded_weights(
            classifier.coef_, classifier.intercept_, classifier.mean_, classifier.scale_
        )
        weight = weight.T  # (D, K')

    class ServingHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = base_model(model)
            self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32))
            self.register_buffer("bias", torch.as_tensor(bias, dtype=torch.float32))
            if hidden is not None:
                self.register_buffer("hidden_weight", torch.as_tensor(hidden[0]).float())
                self.register_buffer("hidden_bias", torch.as_tensor(hidden[1]).float())
            for name, value in (combiner.tensors() if combiner else {}).items():
                self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))

        def pooled(self, hidden, attention_mask):
            pooled = traced_pool(pool, hidden, attention_mask)  # (B, T, D) -> (B, D)
            return pooled.to(torch.float16).to(torch.float32)  # the cache stores fp16

        def forward(self, input_ids, attention_mask):
            output = self.backbone(
                input_ids=input_ids,
                attention_mask=attention_mask,
                use_cache=False,
                output_hidden_states=combiner is not None,
            )
            if combiner is None:
                features = self.pooled(output.last_hidden_state, attention_mask)
            else:
                stack = [
                    self.pooled(output.hidden_states[layer], attention_mask)
                    for layer in combiner.layers
                ]
                features = self.combined(stack)
            if hidden is not None:
                features = torch.relu(features @ self.hidden_weight + self.hidden_bias)
            logits = features @ self.weight + self.bias  # (B, K')
            if kind == "regression":  # the predictions themselves, one column per target
                return logits, logits
            if kind == "multi-label":  # each label's own probability
                return logits, torch.sigmoid(logits)
            if logits.shape[1] == 1:  # two classes: one score s -> [0, s], softmax = sigmoid
                logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
            return logits, torch.softmax(logits, dim=1)

        def combined(self, stack):
            if combiner.kind == "concat":
                return torch.cat(stack, dim=1)  # L x (B, D) -> (B, L*D)
            standard = (torch.stack(stack) - self.layer_mean[:, None]) / self.layer_scale[:, None]
            return torch.tensordot(self.mix_weights, standard, dims=1)  # (L, B, D) -> (B, D)

    return ServingHead().eval()


def _dummy_inputs(pad_id: int, vocab_size: int):
    """Two right-padded rows, one with padding, so the traced mask path handles padding."""
    import torch

    ids = torch.arange(2 * 8, dtype=torch.long).reshape(2, 8) % max(vocab_size - 1, 1) + 1
    mask = torch.ones((2, 8), dtype=torch.long)
    ids[1, 5:], mask[1, 5:] = pad_id, 0
    return ids, mask


def export_head(
    head: str | Path, out: str | Path, model: str | None = None, check: bool = True
) -> Path:
    """Write ``out/`` (model.onnx, tokenizer, probe-export.json) for a saved head.

    The folder is built under a temporary name and moved into place, so ``out`` holds a
    complete export or its previous content. With ``check``, onnxruntime must reproduce
    ``probe predict`` on a few texts (labels equal, probabilities within 1e-3).
    """
    import torch

    from probe.features.models.architecture import only_first_blocks, without_final_norm
    from probe.serve.predict import load_predictor

    _require_runtime()
    out = Path(out).expanduser()
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / META_FILE).exists())
    ):
        raise ProbeError(f"{out} exists and is not a probe export; choose another --out")
    predictor = load_predictor(str(head), model, device="cpu")
    backbone, meta = predictor.backbone, predictor.meta
    layer, pool = max(predictor.layers), meta["pool"]
    if meta.get("site", "block") != "block" or pool.startswith("marker:"):
        what = f"--site {meta['site']}" if meta.get("site", "block") != "block" else pool
        raise ProbeError(
            f"probe export serves block heads without markers, not {what}: use probe predict"
        )
    detail(f"exporting {backbone.name} up to layer {layer} of {backbone.num_layers}, pool {pool}")

    staging = staging_folder(out)
    try:
        vocab_size = int(getattr(backbone.model.config, "vocab_size", 2) or 2)
        inputs = _dummy_inputs(backbone.tokenizer.pad_id, vocab_size)
        top = layer == backbone.num_layers  # only the top layer goes through the final norm
        with (
            only_first_blocks(backbone.model, layer),
            nullcontext() if top else without_final_norm(backbone.model),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")  # TracerWarnings about Python-side shape checks
            serving = _serving_module(
                backbone.model,
                pool,
                predictor.classifier,
                predictor.combiner,
                meta.get("target", "classification"),
            )
            torch.onnx.export(
                serving,
                inputs,
                str(staging / MODEL_FILE),
                dynamo=False,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={
                    **{name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES},
                    **{name: {0: "batch"} for name in OUTPUT_NAMES},
                },
                opset_version=OPSET,
            )
        _write_tokenizer(backbone, staging)
        record = _export_record(predictor, head)
        write_json(staging / META_FILE, record)
        if check:
            difference = check_parity(predictor, OnnxPredictor.load(staging), list(CHECK_TEXTS))
            detail(f"parity check: max |p_onnx - p_torch| = {difference:.2e}")
        replace_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    detail(f"wrote {out} ({export_size(out) / 1e6:.1f} MB)")
    return out


def _write_tokenizer(backbone, folder: Path) -> None:
    """tokenizer.json (+ config) that ``tokenizers`` and ``AutoTokenizer`` both load."""
    from probe.features.models.tokenize import TiktokenGPT2

    if isinstance(backbone.tokenizer, TiktokenGPT2):
        gpt2_tokenizer().save_pretrained(folder)
    else:
        backbone.tokenizer.tokenizer.save_pretrained(folder)
    if not (folder / "tokenizer.json").is_file():
        raise ProbeError(f"the tokenizer of '{backbone.name}' has no fast (tokenizer.json) form")


def gpt2_tokenizer():
    """A Hugging Face GPT-2 tokenizer built from the shipped BPE files (no download)."""
    from transformers import GPT2Tokenizer

    from probe.features.models.tokenize import GPT2_BPE_DIR

    vocab = json.loads((GPT2_BPE_DIR / "encoder.json").read_text(encoding="utf-8"))
    lines = (GPT2_BPE_DIR / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
    merges = [tuple(line.split()) for line in lines if line.strip()]
    return GPT2Tokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>")


def _export_record(predictor, head) -> dict:
    import onnx
    import onnxruntime
    import torch
    import transformers

    from probe import __version__

    meta = predictor.meta
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "model_file": MODEL_FILE,
        "tokenizer_file": "tokenizer.json",
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "padding_side": "right",
        "pad_id": int(predictor.backbone.tokenizer.pad_id),
        "max_length": int(meta["max_length"]),
        "labels": predictor.label_names,
        "label_names": meta.get("label_names") or predictor.label_names,
        "target": meta.get("target", "classification"),
        "thresholds": (
            predictor.classifier.thresholds_.tolist()
            if meta.get("target") == "multi-label"
            else None
        ),
        "layer": meta["layer"],
        "layers": predictor.layers,
        "pool": meta["pool"],
        "model": meta["model"],
        "model_fingerprint": meta["model_fingerprint"],
        "num_layers_model": int(predictor.backbone.num_layers),
        "head": str(head),
        "head_sha256": meta.get("sha256"),
        "opset": OPSET,
        "versions": {
            "probe": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }


def check_parity(predictor, onnx_predictor: OnnxPredictor, texts: list[str]) -> float:
    """Max |p_onnx - p_torch| over ``texts``; a ProbeError if a label differs or it is > 1e-3."""
    reference = predictor.predict(texts)
    exported = onnx_predictor.predict(texts)
    worst = 0.0
    if predictor.meta.get("target") == "regression":  # numbers: relative to their size
        for ref, got in zip(reference, exported, strict=True):
            for name, value in ref["prediction"].items():
                gap = abs(value - got["prediction"][name]) / (1.0 + abs(value))
                worst = max(worst, gap)
                if gap > PARITY_TOLERANCE:
                    raise ProbeError(
                        f"the ONNX export disagrees with probe predict on {ref['text'][:40]!r} "
                        f"({name}: {got['prediction'][name]:.4g} vs {value:.4g})"
                    )
        return worst
    for ref, got in zip(reference, exported, strict=True):
        gap = max(
            abs(ref["probabilities"][k] - got["probabilities"][k]) for k in ref["probabilities"]
        )
        worst = max(worst, gap)
        same = ref.get("label", ref.get("prediction")) == got.get("label", got.get("prediction"))
        if not same or gap > PARITY_TOLERANCE:
            raise ProbeError(
                f"the ONNX export disagrees with probe predict on {ref['text'][:40]!r} "
                f"({got.get('label')} vs {ref.get('label')}, |dp| {gap:.1e}); please report "
                "this model"
            )
    return worst


def export_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


# --- serving the export (onnxruntime + tokenizers + numpy; no torch) --------------------------


def _require_runtime():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ProbeError(f"ONNX export needs onnx and onnxruntime: {INSTALL_HINT}") from None


def onnxruntime_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's own exception types (``Fail``, ``NoSuchFile``, ``InvalidProtobuf``...):
    its C++ core defines them beside ``Exception``, under no common base."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    found = vars(state).values()
    return tuple(kind for kind in found if isinstance(kind, type) and issubclass(kind, Exception))


@dataclass
class OnnxPredictor:
    """An exported head: texts -> label and probabilities, as ``Predictor.predict`` gives."""

    session: object  # onnxruntime.InferenceSession
    tokenizer: object  # tokenizers.Tokenizer, truncation set to the head's max_length
    meta: dict

    @classmethod
    def load(cls, folder: str | Path) -> OnnxPredictor:
        folder = Path(folder).expanduser()
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise ProbeError(f"{folder} is not a probe export (no {META_FILE}); run probe export")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ProbeError(f"{meta_path} is damaged; export the head again") from None
        if (
            meta.get("format") != EXPORT_FORMAT
            or meta.get("format_version") != EXPORT_FORMAT_VERSION
        ):
            raise ProbeError(f"{meta_path}: not a probe export of format {EXPORT_FORMAT_VERSION}")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise ProbeError(f"running an export needs onnxruntime: {INSTALL_HINT}") from None
        unreadable = f"cannot load the export in {folder}"
        try:
            tokenizer = Tokenizer.from_file(str(folder / str(meta.get("tokenizer_file"))))
        except Exception as exc:  # tokenizers raises a bare Exception for any bad file
            if not is_bare_exception(exc):
                raise
            raise ProbeError(f"{unreadable}: {short_reason(exc, 150)}") from None
        try:
            session = onnxruntime.InferenceSession(
                str(folder / str(meta.get("model_file"))), providers=["CPUExecutionProvider"]
            )
        except onnxruntime_errors() as exc:  # a missing or corrupt model.onnx
            raise ProbeError(f"{unreadable}: {short_reason(exc, 150)}") from None
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(meta["max_length"]))
        return cls(session, tokenizer, meta)

    @property
    def label_names(self) -> list[str]:
        return list(self.meta["labels"])

    def probabilities(self, texts: list[str], token_budget: int = 1024) -> np.ndarray:
        """(N, K) float32, batches of similar length under a padded-token budget."""
        from probe.features.batching import length_sorted_batches

        token_ids = [row.ids for row in self.tokenizer.encode_batch(list(texts))]
        lengths = [len(ids) for ids in token_ids]
        if min(lengths, default=1) == 0:
            raise ProbeError("a text is empty or whitespace-only after tokenization")
        out = np.zeros((len(texts), len(self.label_names)), np.float32)
        for rows in length_sorted_batches(lengths, token_budget, 512):
            width = max(lengths[i] for i in rows)
            input_ids = np.full((len(rows), width), int(self.meta["pad_id"]), np.int64)
            attention_mask = np.zeros((len(rows), width), np.int64)
            for row, index in enumerate(rows):
                input_ids[row, : lengths[index]] = token_ids[index]
                attention_mask[row, : lengths[index]] = 1
            feed = {"input_ids": input_ids, "attention_mask": attention_mask}
            out[rows] = self.session.run(["probabilities"], feed)[0]
        return out

    def predict(self, texts: list[str]) -> list[dict]:
        """One dict per text: label and the probability of every class (as probe predict)."""
        from probe.serve.predict import check_texts, prediction_rows

        texts = check_texts(texts)
        kind = self.meta.get("target", "classification")
        if kind == "classification":
            return prediction_rows(texts, self.probabilities(texts), self.label_names)
        from probe.heads.tasks import task_module

        values = self.probabilities(texts).astype(np.float64)
        if kind == "multi-label":
            thresholds = np.asarray(self.meta["thresholds"])
            values = {"predicted": (values >= thresholds).astype(np.int8), "scores": values}
        rows = task_module(kind).prediction_rows(values, self.label_names)
        return [{"text": text, **row} for text, row in zip(texts, rows, strict=True)]
