"""Checks of a model folder before transformers builds anything from it.

A broken folder (a truncated safetensors file, a config.json that is not JSON, a model that
needs its own code) must be one line naming the file or the flag, not a traceback from deep
inside safetensors or transformers.
"""

from __future__ import annotations

import functools
import json
import time
from contextlib import contextmanager
from pathlib import Path

from probe.errors import ProbeError, one_line, short_reason


def read_config(model_dir: Path, trust_remote_code: bool = False):
    """The model's config through ``transformers.AutoConfig``, which maps every family's own
    names (DistilBERT's ``n_layers``/``dim``, T5's ``d_model``) to the common ones."""
    from transformers import AutoConfig

    path = Path(model_dir) / "config.json"
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProbeError(f"cannot read {path}: {short_reason(exc)}") from None
    except ValueError as exc:
        raise ProbeError(f"{path} is not JSON ({one_line(str(exc), 60)})") from None
    quiet_transformers()
    try:
        return AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except load_errors() as exc:
        raise load_error(model_dir, exc, trust_remote_code) from None


def load_errors() -> tuple[type[BaseException], ...]:
    """What transformers, torch and safetensors raise for files they cannot build a model
    from: a missing or unreadable file (OSError), a bad or unknown config (ValueError,
    KeyError, TypeError; huggingface_hub's StrictDataclassError on transformers 5), weights
    of other shapes (RuntimeError), a damaged checkpoint (SafetensorError, pickle's
    UnpicklingError, EOFError; struct.error from a cut GGUF) and a missing package
    (ImportError). Anything else is a bug and keeps its traceback."""
    import pickle
    import struct

    from safetensors import SafetensorError

    try:
        from huggingface_hub.errors import StrictDataclassError

        validation = (StrictDataclassError,)
    except ImportError:  # an older huggingface_hub validates no config
        validation = ()
    return (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        RuntimeError,
        ImportError,
        EOFError,
        pickle.UnpicklingError,
        struct.error,
        SafetensorError,
        *validation,
    )


def load_error(model_dir, exc: Exception, trust_remote_code: bool) -> ProbeError:
    """One line for a model that transformers cannot build from its folder."""
    text = str(exc)
    if "trust_remote_code" in text and not trust_remote_code:
        return ProbeError(
            f"{model_dir} needs code shipped with the model: rerun with --trust-remote-code "
            "if you trust its source"
        )
    return ProbeError(f"cannot load model '{model_dir}': {one_line(text.splitlines()[0], 120)}")


def check_weight_files(model_dir: Path) -> None:
    """A truncated or damaged safetensors file is one line naming it, before any loading."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(Path(model_dir).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
            end, size = _safetensors_end(path), path.stat().st_size
        except SafetensorError as exc:  # a bad header, or data the header does not cover
            raise ProbeError(
                f"{path} is damaged or truncated ({one_line(short_reason(exc), 60)}); "
                "save or download it again"
            ) from None
        if size < end:
            raise ProbeError(f"{path} is truncated ({size} bytes); save or download it again")


def _safetensors_end(path: Path) -> int:
    """Where the header says the last tensor ends: a file shorter than this is cut."""
    import struct

    with open(path, "rb") as handle:
        header_length = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(header_length))
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    return 8 + header_length + max(ends, default=0)


def quiet_transformers() -> None:
    """transformers' own loading bars would interleave with ours; keep only warnings."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


# --- converting a GGUF file -----------------------------------------------------------------

GGUF_SECONDS_PER_MB = 0.2  # SmolLM2-135M's 94 MB Q4_1 file de-quantizes in ~20 s on 2 cores


def gguf_bar_shown(stream=None) -> bool:
    """Whether transformers' per-tensor bar may show while a GGUF converts: where our own
    bars show (a terminal, a notebook's widget), never in a log file or a pipe, nor with -q."""
    import sys

    from probe.messages import shown
    from probe.progress import progress_mode

    return progress_mode(stream or sys.stderr, quiet=not shown()) in ("bar", "widget")


@contextmanager
def converting_gguf(path: Path):
    """One line before a GGUF's conversion (its size and about how long), one after it; in
    between transformers' bar only where ``gguf_bar_shown``. The bar is transformers' own
    ``tqdm`` (its progress setting does not reach it), so it is switched off for the
    conversion by the name the loader calls it by, and restored after."""
    from probe.messages import say

    megabytes = path.stat().st_size / 1e6
    about = max(round(megabytes * GGUF_SECONDS_PER_MB), 1)
    size = f"{megabytes:,.0f}" if megabytes >= 10 else f"{megabytes:.1f}"
    say(f"converting {path.name} ({size} MB) to fp32 once: about {about} s")
    started = time.perf_counter()
    try:
        from transformers import modeling_gguf_pytorch_utils as loader
    except ImportError:  # a transformers without GGUF support fails in the loader itself
        loader = None
    original = getattr(loader, "tqdm", None)
    if original is not None and not gguf_bar_shown():
        loader.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            loader.tqdm = original
    say(f"converted {path.name} in {time.perf_counter() - started:.1f} s; later loads reuse it")
