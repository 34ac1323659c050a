"""``probe extract`` as library calls: ``extract`` on a dataset, ``extract_file`` on a file.

This module sits above the two engines: the local pass (``probe.features.extract``) and the
Ray engine (``probe.features.distributed``), which only fills the row store; the local pass
then finds every row there and builds the view. So ``probe.extract(..., engine="ray")`` from
Python and ``probe extract --engine ray`` take the same path. The command only parses
options and prints the path; which rows a file gives (pooled per text, or every word's or
token's vectors) and reading it live here too.
"""

from __future__ import annotations

from pathlib import Path

from probe.errors import ProbeError
from probe.messages import say

# what the Ray workers honour (or refuse, for the local engine only); the rest is the view's
RAY_OPTIONS = (
    "max_length",
    "force",
    "dtype",
    "token_budget",
    "use_compile",
    "prompt",
    "chat_template",
    "trust_remote_code",
)


def extract(
    model,
    data,
    layers="all",
    *,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    **options,
) -> Path:
    """Cache the features of ``data`` (a ``TextDataset``) and return its view's path.

    ``options`` are those of ``probe.features.extract.extract``. ``engine="ray"`` computes
    the rows the store lacks on Ray first (``address``: the cluster to join, else a local
    one; ``workers``: actors, one backbone each) and uses the cluster's compute dtype.
    """
    from probe.features.extract import extract as extract_here

    if engine == "ray":
        from probe.features.distributed import fill_for_view

        if options.get("site", "block") != "block" or options.get("positions"):
            raise ProbeError("--site and --position run with --engine local only")

        ray_options = {key: options[key] for key in RAY_OPTIONS if key in options}
        dtype = fill_for_view(model, data, layers, address=address, workers=workers, **ray_options)
        options["dtype"] = dtype  # a CPU driver must not recompute a GPU cluster's rows
    elif engine != "local":
        raise ProbeError(f"unknown engine {engine!r}: local or ray")
    return extract_here(model, data, layers, **options)


def extract_file(
    model: str,
    data: str,
    layers="all",
    *,
    text_col: str = "text",
    label_col: str = "label",
    split: str | None = None,
    unit: str | None = None,
    word_pool: str | None = None,
    engine: str = "local",
    **options,
) -> Path:
    """Cache the features of the file (or hub dataset) ``data``; return the view's path.

    ``unit`` None: word rows for CoNLL-U and token-JSONL, else sentence rows. ``options`` go
    to ``extract`` (sentence rows) or ``probe.features.wordextract.extract_words``. Lines for
    the user go through ``probe.messages``; a failed ``--compile`` is said even under ``-q``.
    """
    from probe.data.conllu import is_word_source

    if unit in ("word", "token") or (unit is None and is_word_source(data)):
        unit = unit or "word"
        return _extract_ragged(
            model, data, text_col, split, unit, word_pool, layers, engine, options
        )
    from probe.data.readers import read_dataset

    if engine == "ray":
        from probe.features.distributed import import_ray

        import_ray()  # before reading data: a missing extra is a one-line error at once
    dataset = read_dataset(data, text_col, label_col, split)
    if dataset.skipped_empty:
        say(f"skipped {dataset.skipped_empty} empty or whitespace-only texts")
    return extract(model, dataset, layers, engine=engine, **options)


def _extract_ragged(model, data, text_col, split, unit, word_pool, layers, engine, options):
    """``--unit word|token``: every word's (token's) vectors, into the ragged row store."""
    from probe.data.conllu import WordDataset, is_word_source, read_word_dataset
    from probe.features.wordextract import extract_words

    if engine != "local":
        raise ProbeError(f"--unit {unit} runs on the local engine only")
    if options.get("site", "block") != "block" or options.get("positions"):
        raise ProbeError(f"--site and --position read sentence rows, not --unit {unit}")
    if is_word_source(data):
        dataset = read_word_dataset(data)
    elif unit == "word":
        needs = "a .conllu file or JSONL with a 'tokens' list per line"
        raise ProbeError(f"{data}: --unit word needs words: {needs}")
    else:
        from probe.data.readers import read_dataset

        texts = read_dataset(data, text_col, None, split)
        empty = [[] for _ in texts.texts]
        dataset = WordDataset(texts.texts, empty, empty, {}, None, str(data))
    kept = ("max_length", "out", "force", "device", "dtype", "token_budget", "shard_rows")
    ragged = {key: options[key] for key in kept if key in options}
    return extract_words(model, dataset, layers, unit=unit, word_pool=word_pool, **ragged)
