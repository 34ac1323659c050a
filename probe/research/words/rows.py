"""Word-level labelled rows: what ``probe fit/sweep --task upos|xpos|deprel|<column>`` trains on.

CoNLL-U or token-JSONL input (or a word view ``.h5``) means word-level rows: data files are
extracted on demand (``probe.features.wordextract``), every word a row of the word view, and
the sweep machinery (``probe.research.sweep``) runs unchanged on them. Three things differ:

- splits are by sentence, never by word (``--test-size`` holds out sentences, seeded);
- bootstrap intervals resample sentences, the unit of independence (``Measures.clusters``);
- the control task is Hewitt & Liang's, on word types (``probe.research.words.control``).

``deprel`` is edge probing (Tenney et al. 2019): a row is a dependent, its features are
``[h_head; h_dependent]`` (2D) and its label the relation. The root has no head word: it is
paired with itself, ``[h_root; h_root]``, so "is its own head" is visible to the probe.
Words no token covers (cut by ``--max-length``) and test words whose label never occurs in
training are left out of fits and scores, counted, and said on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.heads.cached import (
    CachedData,
    CachedSplit,
    extraction_settings,
    file_layer,
    open_cached,
    shared_layers,
)
from probe.messages import say

EDGE_TASKS = ("deprel",)
VAL_SIZE = 0.1  # training sentences held out to choose C and the layer when no --val is given


@dataclass
class WordSplit(CachedSplit):
    """Word rows of word views: ``parts`` as in ``CachedSplit``, plus per part the head
    word rows (edge tasks) and per row its sentence (the bootstrap's cluster)."""

    partners: list = field(default_factory=list)  # per part: head rows (edges) or None
    clusters: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def features(self, layer: int, pool: str, read: dict | None = None) -> np.ndarray:
        """float32 (n, D), or (n, 2D) ``[h_head; h_dependent]`` for an edge task; ``read``
        as in ``CachedSplit.features``."""
        blocks = []
        for (path, rows), partner in zip(self.parts, self.partners, strict=True):
            layer_features = file_layer(path, layer, pool, read)  # (n_words_file, D)
            block = layer_features[rows]
            if partner is not None:
                block = np.concatenate([layer_features[partner], block], axis=1)
            blocks.append(block)
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def group_ids(self) -> np.ndarray:
        """The sentence of each word: splits, folds and resamples never part a sentence."""
        return self.clusters

    def text_sha1(self) -> np.ndarray:
        """The word type of each row (edges: the head's and the dependent's forms)."""
        from probe.features.store.wordviews import type_sha1

        blocks = []
        for (path, rows), partner in zip(self.parts, self.partners, strict=True):
            keys = np.asarray(open_cached(path).text_sha1)
            if partner is None:
                blocks.append(keys[rows])
            else:
                pairs = [
                    a.tobytes().hex() + b.tobytes().hex()
                    for a, b in zip(keys[partner], keys[rows], strict=True)
                ]
                blocks.append(type_sha1(pairs))
        return np.concatenate(blocks)

    def take(self, positions: np.ndarray, name: str) -> WordSplit:
        positions = np.sort(np.asarray(positions, dtype=np.int64))
        parts, partners, offset = [], [], 0
        for (path, rows), partner in zip(self.parts, self.partners, strict=True):
            mine = positions[(positions >= offset) & (positions < offset + len(rows))] - offset
            if len(mine):
                parts.append((path, rows[mine]))
                partners.append(None if partner is None else partner[mine])
            offset += len(rows)
        return WordSplit(
            name,
            parts,
            self.labels[positions],
            partners=partners,
            clusters=self.clusters[positions],
        )


@dataclass
class WordData(CachedData):
    """``CachedData`` of word rows; tells the sweep how to measure them."""

    task: str = "upos"
    word_pool: str = "last"
    notes: dict = field(default_factory=dict)  # counts said to the user and kept in results

    def word_measures(self, measures):
        """The sweep's measures with sentence clusters and the control task on word types."""
        from dataclasses import replace

        from probe.research.words.control import WordControl

        clusters = {name: split.clusters for name, split in self.splits().items()}
        control = measures.control
        if control is not None:
            inputs = {
                name: (split.text_sha1(), split.clusters) for name, split in self.splits().items()
            }
            control = WordControl.build(
                inputs, self.train.labels, measures.seed, measures.resamples
            )
        return replace(measures, clusters=clusters, control=control)


def reads_sentences(options: dict) -> bool:
    """Whether a head command's data options read sentence rows: no word-level ``task``, no
    word-level data (word rows hold one pool, the word pool, and no site or position)."""
    if options.get("task") not in (None, "regression"):
        return False
    return not is_word_input(options.get("data"), options.get("train"))


def is_word_input(*sources) -> bool:
    """Whether any input is word-level: CoNLL-U, token-JSONL, or a word view."""
    from probe.data.conllu import is_word_source
    from probe.heads.cached import is_cache_file

    for source in sources:
        if source is None:
            continue
        if is_word_source(source):
            return True
        if is_cache_file(source) and Path(source).is_file():
            if open_cached(source).meta.get("unit") == "word":
                return True
    return False


def prepare_words(
    model=None,
    *,
    task: str,
    train=None,
    val=None,
    test=None,
    data=None,
    word_pool=None,
    test_size: float = 0.2,
    val_size: float = VAL_SIZE,
    seed: int = 0,
    max_length=None,
    layers="all",
    device=None,
) -> WordData:
    """Labelled word rows for train/val/test (see the module docstring)."""
    if data is not None and any(s is not None for s in (train, val, test)):
        raise ProbeError("give --data FILE or --train FILE (with --val/--test), not both")
    if not 0 <= test_size < 1:
        raise ProbeError("--test-size must be at least 0 and below 1 (0: no test split)")
    inputs = (
        {"data": data}
        if data is not None
        else {
            name: source
            for name, source in (("train", train), ("val", val), ("test", test))
            if source is not None
        }
    )
    if not inputs or ("data" not in inputs and "train" not in inputs):
        raise ProbeError("give --data FILE, or --train FILE (with --val/--test)")
    splits, sentence_base = {}, 0
    for name, source in inputs.items():
        path = _word_view(source, model, task, word_pool, max_length, layers, device)
        split, n_sentences = _split_of_view(name, path, task, sentence_base)
        splits[name] = split
        sentence_base += n_sentences
    carved = None
    if "data" in splits:
        splits["train"] = splits.pop("data")
        if test_size > 0:
            splits["train"], splits["test"], carved = _hold_out(
                splits["train"], test_size, seed, "test"
            )
    if "val" not in splits and val_size > 0 and len(np.unique(splits["train"].clusters)) >= 20:
        splits["train"], splits["val"], said = _hold_out(splits["train"], val_size, seed + 1, "val")
        said += " (it chooses C and the layer: ~5x faster than 5-fold CV); --val-size 0: CV"
        carved = f"{carved}; {said}" if carved else said
    notes = {"unseen_label_words": {}}
    for name in ("val", "test"):
        if name in splits:
            known = np.isin(splits[name].labels, np.unique(splits["train"].labels))
            if not known.all():
                notes["unseen_label_words"][name] = int((~known).sum())
                say(
                    f"{name}: {int((~known).sum())} words have labels never seen in training "
                    "(left out of scores)"
                )
                splits[name] = splits[name].take(np.flatnonzero(known), name)
    if carved:
        say(carved)
    if len(np.unique(splits["train"].labels)) < 2:
        raise ProbeError(f"the training words have one {task} label; a classifier needs two")
    return _describe_words(splits, model, inputs, task, notes)


def _hold_out(whole: WordSplit, fraction: float, seed: int, name: str):
    """(kept, held out, notice): ``fraction`` of the sentences (never single words) held out."""
    sentences = np.unique(whole.clusters)
    order = np.random.default_rng(seed).permutation(sentences)
    held = order[: max(1, int(round(fraction * len(sentences))))]
    is_held = np.isin(whole.clusters, held)
    kept, out = (
        whole.take(np.flatnonzero(~is_held), "train"),
        whole.take(np.flatnonzero(is_held), name),
    )
    notice = (
        f"no --{name} given: holding out {len(held)} of {len(sentences)} sentences "
        f"({len(out)} words; {round(fraction * 100, 2):g}%, by sentence, seed {seed}) as "
        f"the {name} set"
    )
    return kept, out, notice


def _word_view(source, model, task, word_pool, max_length, layers, device) -> str:
    """A word view for ``source``: a word view .h5 as given, else extracted on demand."""
    from probe.heads.cached import is_cache_file

    if is_cache_file(source):
        cache = open_cached(source)
        if cache.meta.get("unit") != "word":
            raise ProbeError(f"{source} is not a word-level cache (extract with --unit word)")
        return str(source)
    from probe.data.conllu import is_word_source, read_word_dataset
    from probe.features.models.loading import DEFAULT_MODEL
    from probe.features.wordextract import extract_words

    if not is_word_source(source):
        raise ProbeError(
            f"{source}: --task needs word-level data (.conllu, or JSONL with a "
            "'tokens' list per line)"
        )
    dataset = read_word_dataset(source)
    if task not in dataset.columns:
        raise ProbeError(f"{source}: no task '{task}' (tasks: {', '.join(dataset.columns)})")
    if task in EDGE_TASKS and dataset.heads is None:
        raise ProbeError(f"{source}: '{task}' edge probing needs HEAD columns (CoNLL-U)")
    say(f"{Path(source).name}: {len(dataset)} sentences, {dataset.n_words} words")
    path = extract_words(
        model or DEFAULT_MODEL,
        dataset,
        layers,
        word_pool=word_pool,
        max_length=max_length,
        device=device,
    )
    return str(path)


def _split_of_view(name, path, task, sentence_base) -> tuple[WordSplit, int]:
    from probe.features.store.wordviews import read_tasks, read_word_layout

    layout = read_word_layout(Path(path))
    tasks = read_tasks(Path(path))
    if task not in tasks:
        raise ProbeError(f"{path}: no task '{task}' (tasks: {', '.join(tasks) or 'none'})")
    labels = np.asarray(tasks[task], dtype=str)
    offsets = layout["sentence_offsets"]
    n_sentences = len(offsets) - 1
    sentence = np.repeat(np.arange(n_sentences), np.diff(offsets)) + sentence_base
    keep = layout["aligned"].copy()
    partner = None
    if task in EDGE_TASKS:
        heads = layout["heads"]
        if heads is None:
            raise ProbeError(f"{path}: '{task}' edge probing needs HEAD columns (CoNLL-U)")
        local = np.arange(len(heads)) - np.repeat(offsets[:-1], np.diff(offsets))
        partner = np.where(heads < 0, local, heads) + np.repeat(offsets[:-1], np.diff(offsets))
        keep &= layout["aligned"][partner]
    dropped = int((~keep).sum())
    if dropped:
        say(f"{Path(path).name}: {dropped} words without tokens (cut by --max-length) left out")
    rows = np.flatnonzero(keep)
    split = WordSplit(
        name,
        [(str(path), rows)],
        labels[rows],
        partners=[None if partner is None else partner[rows]],
        clusters=sentence[rows],
    )
    return split, n_sentences


def _describe_words(splits: dict, model, inputs: dict, task: str, notes: dict) -> WordData:
    from probe.heads.rows import _model_spec

    caches = {path: open_cached(path) for split in splits.values() for path, _ in split.parts}
    first = next(iter(caches.values()))

    for cache in caches.values():
        if extraction_settings(cache, "word_pool") != extraction_settings(first, "word_pool"):
            raise ProbeError("every split must come from the same model, max length and word pool")
    layers = shared_layers(caches.values())
    notes["words"] = {name: len(split) for name, split in splits.items()}
    notes["sentences"] = {name: len(np.unique(split.clusters)) for name, split in splits.items()}
    notes["unaligned_words"] = int(sum(int(c.meta.get("unaligned", 0)) for c in caches.values()))
    return WordData(
        train=splits["train"],
        val=splits.get("val"),
        test=splits.get("test"),
        model=_model_spec(model) if isinstance(model, str) else str(first.meta.get("model")),
        model_fingerprint=str(first.meta.get("model_fingerprint")),
        max_length=int(first.meta.get("max_length")),
        n_layers_model=int(first.meta.get("n_layers_model", max(first.layers))),
        layers=layers,
        cache_keys={
            name: "+".join(caches[p].key for p, _ in s.parts) for name, s in splits.items()
        },
        sources={name: str(source) for name, source in inputs.items()},
        task=task,
        word_pool=str(first.meta.get("word_pool")),
        notes=notes,
    )
