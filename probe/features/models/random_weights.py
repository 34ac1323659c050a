"""The same architecture with random weights: the "random encoder" baseline of a probe.

A probe's accuracy mixes what the backbone learned with what any network of that shape
gives a linear head (Conneau et al. 2018; Hewitt & Liang 2019, section 5). The baseline is
the model's own config initialised by its own ``_init_weights`` under a fixed torch seed,
saved once as a ``save_pretrained`` folder with the original tokenizer files in the models
folder every store shares (``random-FINGERPRINT-sSEED``; ``probe.files.model_folder``). That
folder is an ordinary ``--model``: its weight files give it its own fingerprint, so its rows
live under their own key in the row store, are extracted by the same pipeline, and are
computed once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from probe.features.models.loading import TOKENIZER_FILES as IDENTITY_FILES
from probe.files import model_folder

MARKER = "random_weights.json"
# the files of the tokenizer's identity, and one that adds tokens without changing it
TOKENIZER_FILES = (*IDENTITY_FILES, "added_tokens.json")


def random_weights_model(spec: str, seed: int = 0) -> str:
    """A folder holding ``spec``'s architecture with weights drawn under ``seed``.

    Built on first use (a few seconds: one initialisation, one save), then reused. Safe
    when two processes build it at once: each writes a private folder and the first
    ``os.replace`` wins.
    """
    from probe.features.models.loading import directory_fingerprint, resolve_model_dir

    source = resolve_model_dir(spec)
    fingerprint = directory_fingerprint(source)
    target = model_folder(f"random-{fingerprint[:16]}-s{seed}")
    if _complete(target):
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".random-", dir=target.parent))
    try:
        _initialise(source, staging, seed)
        (staging / MARKER).write_text(
            json.dumps({"source": str(spec), "source_fingerprint": fingerprint, "seed": seed})
        )
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first (a non-empty folder is there)
            if not _complete(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def _complete(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "config.json").is_file()


def _initialise(source: Path, folder: Path, seed: int) -> None:
    """Save ``source``'s config with freshly initialised weights (and its tokenizer files)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from probe.features.models.files import quiet_transformers

    quiet_transformers()  # no "Writing model shards" bar in the middle of a sweep
    config = AutoConfig.from_pretrained(source)
    architectures = getattr(config, "architectures", None) or []
    causal = any("CausalLM" in a or "LMHead" in a for a in architectures)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG state is left as it was
        torch.manual_seed(seed)
        model = (AutoModelForCausalLM if causal else AutoModel).from_config(config)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
