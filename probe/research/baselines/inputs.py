"""What the baselines need beyond the probe's rows: the texts of every split (read back from
the data files, matched by hash) and the same splits' features from a random-weights model.

Apart from the rows themselves because this is the step that reads files and runs a model;
everything after it is fitting and scoring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from probe.errors import ProbeError
from probe.heads.cached import CachedData, is_cache_file

RANDOM_SEED = 0


@dataclass
class BaselineInputs:
    """What the baselines need beyond the probe's rows: the texts of every split, and the
    same splits' features from the random-weights model (None: that baseline is skipped)."""

    texts: dict[str, list[str]]  # split name -> texts, in the split's row order
    random: CachedData | None
    random_model: str | None = None
    extract_seconds: float = 0.0
    seed: int = RANDOM_SEED


def prepare_baselines(
    data: CachedData,
    *,
    text_col: str = "text",
    label_col: str = "label",
    random_weights: bool = True,
    seed: int = RANDOM_SEED,
    device: str | None = None,
) -> BaselineInputs:
    """Read the splits' texts back from their data files and extract them with random weights."""
    texts = split_texts(data, text_col, label_col)
    if not random_weights:
        return BaselineInputs(texts, None)
    from probe.features.models.random_weights import random_weights_model
    from probe.research.baselines.random_weights import random_weights_data

    started = time.perf_counter()
    model = random_weights_model(data.model, seed)
    random = random_weights_data(data, texts, model, device=device)
    return BaselineInputs(texts, random, model, time.perf_counter() - started, seed)


def _text_files(data: CachedData) -> list[str]:
    """The data files the splits' texts came from (a cache file names its own)."""
    from probe.heads.cached import open_cached

    files = []
    for source in data.sources.values():
        if is_cache_file(source):
            source = open_cached(source).meta.get("data_source")
        if source and Path(str(source)).exists() and not is_cache_file(str(source)):
            files.append(str(source))
    return files


def split_texts(data: CachedData, text_col: str = "text", label_col: str = "label") -> dict:
    """{split: texts}, matched to the cached rows by each text's sha1."""
    from probe.data.readers import read_dataset, text_sha1

    by_key: dict[bytes, str] = {}
    for source in _text_files(data):
        for text in read_dataset(source, text_col, label_col=None).texts:
            by_key.setdefault(text_sha1(text), text)
    texts = {}
    for name, split in data.splits().items():
        keys = [row.tobytes() for row in split.text_sha1()]
        missing = sum(key not in by_key for key in keys)
        if missing:
            raise ProbeError(
                f"--baselines needs the texts: {missing} of {len(keys)} {name} texts are in no "
                "readable data file; give the data files rather than cache files"
            )
        texts[name] = [by_key[key] for key in keys]
    return texts
