"""``probe extract`` as one library call: a data file in, the path of its cached view out.

The command only parses options and prints the path; which rows a file gives (pooled per
text, or every word's or token's vectors), reading it and the engine all live here, so a
notebook gets the same result from ``extract_file`` (or ``probe.extract`` on a dataset).
"""

from __future__ import annotations

from pathlib import Path

from probe.errors import ProbeError
from probe.messages import say, shown, warn


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
    to ``probe.features.extract.extract`` (sentence rows) or ``extract_words``. Lines for the
    user go through ``probe.messages``; a failed ``--compile`` is said even under ``-q``.
    """
    from probe.data.conllu import is_word_source

    if unit in ("word", "token") or (unit is None and is_word_source(data)):
        unit = unit or "word"
        return _extract_ragged(
            model, data, text_col, split, unit, word_pool, layers, engine, options
        )
    from probe.data.readers import read_dataset
    from probe.features.extract import extract

    if engine == "ray":
        from probe.features.distributed import import_ray

        import_ray()  # before reading data: a missing extra is a one-line error at once
    dataset = read_dataset(data, text_col, label_col, split)
    if dataset.skipped_empty:
        say(f"skipped {dataset.skipped_empty} empty or whitespace-only texts")
    # warn: even with -q, a silent fallback to eager would read as a slow machine
    quiet = not shown()
    return extract(
        model, dataset, layers, engine=engine, quiet=quiet, log=say, compile_notice=warn, **options
    )


def _extract_ragged(model, data, text_col, split, unit, word_pool, layers, engine, options):
    """``--unit word|token``: every word's (token's) vectors, into the ragged row store."""
    from probe.data.conllu import WordDataset, is_word_source, read_word_dataset
    from probe.features.wordextract import extract_words

    if engine != "local":
        raise ProbeError(f"--unit {unit} runs on the local engine only")
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
    return extract_words(
        model, dataset, layers, unit=unit, word_pool=word_pool, quiet=not shown(), log=say, **ragged
    )
