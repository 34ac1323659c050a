"""What identifies a model on disk, and what is remembered about it by that identity.

Cut from loading because a cache hit needs only this: the fingerprint (a hash of config.json
and the weight files, each file's digest memoised by path, size and mtime) and the model's
shape (layers, width, context). Both are kept in the models folder every store shares
(``probe.files.models_root``), so opening cached features never imports transformers:
reading a config through ``AutoConfig`` costs ~3 s of imports (torch among them), which was
most of opening the SST-2 caches.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from probe.errors import ProbeError
from probe.files import models_root
from probe.outputs import write_json

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "max_context", "model_type", "vocab_size")


def file_digest(path: Path) -> str:
    """blake2b of a file's bytes, memoised by (path, size, mtime) in the cache store."""
    stat = path.stat()
    memo_key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = _read_memo("digests.json")
    if memo_key not in memo:
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        memo[memo_key] = digest.hexdigest()
        _write_memo("digests.json", memo)
    return memo[memo_key]


def directory_fingerprint(model_dir: Path) -> str:
    """Hash of config.json and every weight file: changes whenever the weights do."""
    digest = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise ProbeError(f"no weight files (*.safetensors, *.bin) in {model_dir}")
    config = model_dir / "config.json"
    digest.update(config.read_bytes() if config.is_file() else b"")
    for path in files:
        digest.update(path.name.encode() + file_digest(path).encode())
    return digest.hexdigest()


def module_fingerprint(model) -> str:
    """Hash of an in-memory model's config and parameter bytes (models built in-process)."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    digest.update(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def remembered_shape(fingerprint: str) -> dict | None:
    """The shape ``remember_shape`` kept for this fingerprint (its config.json bytes are part
    of it, so a changed config is a new fingerprint); None if not kept or incomplete."""
    shape = _read_memo("shapes.json").get(fingerprint)
    if not isinstance(shape, dict) or any(key not in shape for key in SHAPE_KEYS):
        return None
    return shape


def remember_shape(fingerprint: str, shape: dict) -> dict:
    """Keep ``shape`` (``SHAPE_KEYS``) for later openings; returns it."""
    memo = _read_memo("shapes.json")
    memo[fingerprint] = {key: shape[key] for key in SHAPE_KEYS}
    _write_memo("shapes.json", memo)
    return shape


def _read_memo(name: str) -> dict:
    try:
        memo = json.loads((models_root() / name).read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _write_memo(name: str, memo: dict) -> None:
    try:
        write_json(models_root() / name, memo)
    except OSError:
        pass  # an unwritable store only costs the memo
