"""The labelled rows a head trains and is scored on, from data files or cache files.

``prepare`` turns what the user hands over into labelled rows of cache files: data files
(extracted on demand through the cache, so a second call runs no model), existing cache
files, one file with a ``split`` column, one file split here (stratified, by ``test_size``
and ``seed``; 0 means no test split), or a new label set (``labels``) for texts already
cached, matched by ``id`` or exact text, which never loads the backbone. The whole of a file
is extracted once and split by rows, so another seed or test size reuses the same cache.
The rows themselves (``CachedSplit``, ``CachedData``) are :mod:`probe.heads.cached`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.data.splits import split_names
from probe.data.targets import label_names_line, same_target_names, split_strata
from probe.errors import ProbeError
from probe.heads.cached import (
    CachedData,
    CachedSplit,
    check_cached_site,
    extraction_settings,
    is_cache_file,
    open_cached,
    shared_layers,
)
from probe.messages import say


def prepare(
    model: str | None = None,
    *,
    train: str | None = None,
    val: str | None = None,
    test: str | None = None,
    data: str | None = None,
    labels: str | None = None,
    text_col: str = "text",
    label_col: str = "label",
    test_size: float = 0.2,
    seed: int = 0,
    max_length: int | None = None,
    layers: str = "all",
    device: str | None = None,
    group_col: str | None = None,
    target=None,
    site: str | None = None,
    positions=(),
) -> CachedData:
    """Labelled cached rows for train/val/test (see the module docstring). ``layers`` is what
    an on-demand extraction stores (``"all"`` for a sweep, the fitted layer for a single fit).
    ``target`` (a ``probe.data.targets.TargetSpec``, or "regression" or "multi-label" with
    ``label_col`` its columns) reads numbers or label sets. ``site`` and ``positions`` are
    what an on-demand extraction reads (``probe extract --site/--position``); a cache file
    must hold ``site``. Every problem is a one-line ``ProbeError``; what the user should hear
    (labels read, a test set carved) goes to ``probe.messages``.
    """
    from probe.data.targets import CLASSIFICATION, TargetSpec

    if isinstance(target, str):  # the Python API: prepare(..., target="regression")
        from probe.data.targets import target_spec

        target = target_spec(label_col, target == "regression", target == "multi-label")
    target = target or TargetSpec(columns=(label_col,))
    cache_given = any(map(is_cache_file, (train, val, test, data)))
    if target.kind != CLASSIFICATION and (labels is not None or cache_given):
        raise ProbeError(
            f"--task {target.kind} reads its targets from data files; give the data file "
            "(not --labels or a cache .h5)"
        )
    if data is not None and any(s is not None for s in (train, val, test)):
        raise ProbeError("give --data FILE or --train FILE (with --val/--test), not both")
    if not 0 <= test_size < 1:
        raise ProbeError("--test-size must be at least 0 and below 1 (0: no test split)")
    sources = [s for s in (train, val, test, data) if s is not None]
    caches = [s for s in sources if is_cache_file(s) and Path(s).is_file()]
    if caches:  # a bad --layer is one line, before any notice (data files: extract checks)
        _check_layer_spec(layers, open_cached(caches[0]).meta)
    if model is None and labels is None and caches and len(caches) < len(sources):
        model = str(open_cached(caches[0]).meta.get("model"))  # extract data files like the cache
    columns = (text_col, label_col, group_col, target)
    reading = {"device": device, "site": site or "block", "positions": tuple(positions)}
    if labels is not None:
        found = _rows_for_new_labels(
            labels,
            model,
            {"train": train, "val": val, "test": test, "data": data},
            *columns[:3],
            max_length,
        )
    elif data is not None:
        found = {"data": _labelled_source(data, model, columns, max_length, layers, reading)}
    elif train is not None:
        found = {
            name: _labelled_source(
                source, model, columns, max_length, layers, reading, training=name == "train"
            )
            for name, source in (("train", train), ("val", val), ("test", test))
            if source is not None
        }
    else:
        raise ProbeError("give --data FILE, or --train FILE (with --val/--test)")
    splits, carved, grouping = _assign_splits(found, test_size, seed, group_col, target.kind)
    described = _describe(splits, model, found, target.kind)
    described.grouping = grouping
    check_cached_site(described.text_format, site)
    names = [item.names for item in found.values()]
    described.target, described.target_names = target.kind, same_target_names(names, target.kind)
    _check_layer_spec(layers, {"n_layers_model": described.n_layers_model})
    for line in (carved, grouping.pop("notice", None)):
        if line:
            say(line)
    return described


def _check_layer_spec(layers: str, meta: dict) -> None:
    from probe.features.layers import resolve_layers

    if meta.get("n_layers_model") is not None:
        resolve_layers(layers, int(meta["n_layers_model"]))


@dataclass
class _Found:
    """Labelled rows found for one input: a split, or 'data' (to be split here)."""

    split: CachedSplit
    source: str
    split_column: list[str] | None = None
    user_groups: list[str | None] | None = None  # the --group-col cells, row by row
    names: list[str] | None = None  # the target's columns or label names (not classes)


def _labelled_source(source, model, columns, max_length, layers, reading, training=True):
    """A cache file with stored labels, or a data file extracted on demand (after the
    checks that need no model, so a bad input costs no extraction)."""
    text_col, label_col, group_col, target = columns
    if is_cache_file(source):
        if group_col is not None:
            raise ProbeError(
                f"{source} is a cache file, which holds no groups; give the data file for "
                "--group-col, or a --labels file with that column"
            )
        cache = open_cached(source)
        if cache.labels is None:
            raise ProbeError(f"{source} holds no labels; give a label file with --labels FILE")
        labels = np.asarray(cache.labels, dtype=str)
        origin = cache.meta.get("labels_source") or "an unrecorded file"
        say(f"{Path(source).name}: labels {label_names_line(labels)} from {origin} (stored there)")
        return _Found(CachedSplit("data", [(str(source), None)], labels), str(source))
    from probe.data.readers import read_dataset
    from probe.data.targets import label_lines
    from probe.features.extract import extract
    from probe.features.models.loading import DEFAULT_MODEL

    dataset = read_dataset(
        source, text_col, label_col, require_labels=True, group_col=group_col, target=target
    )
    for line in label_lines(dataset, label_col, training, target.kind):
        say(line)
    path = extract(model or DEFAULT_MODEL, dataset, layers, max_length=max_length, **reading)
    found = dataset.targets if dataset.targets is not None else np.asarray(dataset.labels, str)
    split = CachedSplit("data", [(str(path), None)], found)
    return _Found(split, str(source), dataset.splits, dataset.groups, dataset.target_names)


def _assign_splits(found: dict, test_size: float, seed: int, group_col=None, kind=None):
    """({'train', 'val', 'test'} -> CachedSplit or None, notice, grouping), from inputs or
    split here; every split carries its groups (``probe.data.splits.group_ids``).

    A test set carved here comes with a notice for the user (size, seed, how to turn it
    off): a default that silently trains on 80% of the user's data would look like a bug.
    It keeps every group on one side; given splits are kept as given, and the texts they
    share with train are counted (``grouping``).
    """
    from probe.data.splits import grouping_summary

    carved = None
    splits = {"train": None, "val": None, "test": None}
    for name, item in found.items():
        if name != "data":
            splits[name] = _grouped(item.split, name, item.user_groups)
    if "data" in found:
        item = found["data"]
        whole = _grouped(item.split, "data", item.user_groups)
        if item.split_column is not None:
            names = split_names(item.split_column, item.source)
            for name in ("train", "val", "test"):
                if (names == name).any():
                    splits[name] = whole.take(np.flatnonzero(names == name), name)
            if splits["train"] is None:
                raise ProbeError(f"{item.source}: the split column has no 'train' rows")
        else:
            splits["train"] = whole.take(np.arange(len(whole)), "train")
    train_only = []
    if splits["test"] is None and test_size > 0:
        from probe.data.splits import train_only_classes, train_only_notice

        whole = splits["train"]
        strata = split_strata(whole.labels, kind)
        keep, held = stratified_rows(strata, test_size, seed, whole.group_ids())
        if not len(held):
            raise ProbeError(
                "no class has 2 examples to hold one out for a test set; give --test FILE "
                "or --test-size 0"
            )
        splits["train"], splits["test"] = whole.take(keep, "train"), whole.take(held, "test")
        how = "stratified" + (", whole groups" if whole.group_ids() is not None else "")
        carved = (
            f"no --test given: holding out {len(held)} of {len(whole)} examples "
            f"({round(test_size * 100, 2):g}%, {how}, seed {seed}) as the test set; "
            "--test-size 0 to use all for training"
        )
        classes = kind in (None, "classification")  # a number or label set is no class
        train_only = train_only_classes(strata, whole.group_ids()) if classes else []
        if train_only:
            carved += "; " + train_only_notice(train_only, "test")
    present = {name: split for name, split in splits.items() if split is not None}
    grouping = grouping_summary(present, group_col)
    if train_only:  # recorded with the groups: the results say what the split could not do
        rows = int(np.isin(splits["train"].labels.astype(str), train_only).sum())
        grouping["train_only"] = {"classes": len(train_only), "rows": rows, "split": "test"}
    return splits, carved, grouping


def _grouped(split: CachedSplit, name: str, user_groups=None) -> CachedSplit:
    """``split`` with its groups: equal texts, joined by the user's groups where given."""
    from probe.data.splits import group_ids

    groups = group_ids(split.text_sha1(), user_groups)
    return CachedSplit(name, split.parts, split.labels, groups)


def stratified_rows(labels: np.ndarray, fraction: float, seed: int, groups=None):
    """(kept, held out) positions: ``fraction`` of every class held out, whole ``groups``
    at a time; a class with one row (group) is kept whole (``held_out_rows``).

    The same draw as ``probe.data.splits.stratified_split`` (its first call), so ``probe
    fit`` and ``probe finetune`` test on the same rows of one file for the same seed.
    """
    from probe.data.splits import held_out_rows

    held = held_out_rows(labels, fraction, np.random.default_rng(seed), groups)
    return np.flatnonzero(~held), np.flatnonzero(held)


def _describe(splits: dict, model: str | None, found: dict[str, _Found], kind=None) -> CachedData:
    """Check that every cache comes from one model and setting; collect what heads record."""
    from probe.features.models.loading import model_fingerprint

    caches = {}
    for split in splits.values():
        for path, _ in split.parts if split is not None else []:
            caches[path] = open_cached(path)
    first = next(iter(caches.values()))
    from probe.features.extract import text_format

    def settings(c):
        return (*extraction_settings(c, "compute_dtype"), sorted(text_format(c.meta).items()))

    for path, cache in caches.items():
        if settings(cache) != settings(first):
            raise ProbeError(
                f"{Path(path).name} was extracted with another model, max_length, dtype, prompt"
                f" or site than {first.path.name}; every split needs the same extraction settings"
            )
    fingerprint = str(first.meta.get("model_fingerprint"))
    if model is not None and any(is_cache_file(item.source) for item in found.values()):
        if model_fingerprint(model) != fingerprint:
            raise ProbeError(
                f"the cache was extracted with model '{first.meta.get('model')}', not "
                f"'{model}'; drop --model or extract with it"
            )
    layers = shared_layers(caches.values())
    if not layers:
        raise ProbeError("the caches share no stored layer; extract them with the same --layers")
    for name in ("val", "test") if kind in (None, "classification") else ():
        split = splits[name]
        if split is not None:
            unseen = sorted(set(split.labels.tolist()) - set(splits["train"].labels.tolist()))
            if unseen:
                raise ProbeError(
                    f"{name} labels not in the training labels: {', '.join(unseen[:5])}"
                )
    if kind in (None, "classification") and len(set(splits["train"].labels.tolist())) < 2:
        raise ProbeError(
            f"the training labels have one class ({splits['train'].labels[0]!r}); "
            "a classifier needs at least 2 classes"
        )
    keys = {
        name: "+".join(caches[path].key for path, _ in split.parts)
        for name, split in splits.items()
        if split is not None
    }
    return CachedData(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        model=_model_spec(model) if model else str(first.meta.get("model")),
        model_fingerprint=fingerprint,
        max_length=int(first.meta.get("max_length")),
        n_layers_model=int(first.meta.get("n_layers_model", max(first.layers))),
        layers=layers,
        cache_keys=keys,
        sources={name: item.source for name, item in found.items()},
        text_format=text_format(first.meta),
    )


def _model_spec(model: str) -> str:
    """A local path made absolute, so a head found later elsewhere still names its model."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


# --- a new label set for cached texts ---------------------------------------------------------


def _rows_for_new_labels(labels_file, model, inputs, text_col, label_col, group_col, max_length):
    """Match a label file to cached rows by id or exact text; never loads the backbone."""
    from probe.data.readers import read_dataset, text_sha1

    given = {name: source for name, source in inputs.items() if source is not None}
    for source in given.values():
        if not is_cache_file(source):
            raise ProbeError(
                f"with --labels, give cache files (.h5), not {source}; or give no data and "
                "the cache store is searched for the texts"
            )
    ids_only = False
    try:
        label_set = read_dataset(labels_file, text_col, label_col, True, group_col=group_col)
    except ProbeError as error:  # an id + label file needs no text column
        if f"no column '{text_col}'" not in str(error):
            raise
        label_set = read_dataset(labels_file, "id", label_col, True, group_col=group_col)
        ids_only = True
    if label_set.skipped_empty:
        say(f"{labels_file}: skipped {label_set.skipped_empty} empty texts")
    text_keys = [text_sha1(text) for text in label_set.texts]
    candidates = (
        [open_cached(source) for source in given.values()]
        if given
        else _store_candidates(model, max_length)
    )
    if not candidates:
        where = f" for model '{model}'" if model else ""
        raise ProbeError(
            f"no complete cache in the store{where}; run probe extract on the texts first"
        )
    if ids_only and not any(c.ids is not None for c in candidates):
        raise ProbeError(f"{labels_file} has ids but no texts, and the cache has no id column")
    owner = _match_rows(candidates, label_set, text_keys)  # label row -> (cache index, row)
    missing = [i for i, hit in enumerate(owner) if hit is None]
    if missing:
        examples = ", ".join(repr(_clip(label_set.texts[i])) for i in missing[:3])
        raise ProbeError(
            f"{len(missing)} of {len(owner)} labelled texts are not in the cache (e.g. "
            f"{examples}); extract them first: probe extract --data {labels_file}"
        )
    label_values = np.asarray(label_set.labels, dtype=str)
    found = {}
    for index, name in enumerate(given):  # given caches: the rows each one holds
        mine = [i for i, (cache_index, _) in enumerate(owner) if cache_index == index]
        if mine:
            found[name] = _found_rows(name, candidates, [index], owner, mine, label_set)
    if not given:  # store search: the rows of every cache that holds some, in cache order
        holders = sorted({hit[0] for hit in owner})
        order = [i for index in holders for i, hit in enumerate(owner) if hit[0] == index]
        found = {"data": _found_rows("data", candidates, holders, owner, order, label_set)}
    if "data" in found and "train" in found:
        raise ProbeError("give --data CACHE or --train CACHE with --labels, not both")
    if "data" not in found and "train" not in found:
        raise ProbeError("none of the labelled texts is in the --train cache")
    say(
        f"matched {len(owner)} labelled texts to cached features (no model run); labels "
        f"{label_names_line(label_values)} from {labels_file}"
    )
    return found


def _found_rows(name, candidates, holders, owner, order, label_set) -> _Found:
    """The labelled rows ``order`` (positions in the label file) as one split over the
    caches ``holders``, each cache's rows in the label file's order."""
    parts = []
    for index in holders:
        rows = [owner[i][1] for i in order if owner[i][0] == index]
        parts.append((str(candidates[index].path), np.asarray(rows, dtype=np.int64)))
    labels = np.asarray(label_set.labels, dtype=str)[order]
    split = CachedSplit(name, parts, labels)
    column = [label_set.splits[i] for i in order] if label_set.splits else None
    groups = [label_set.groups[i] for i in order] if label_set.groups else None
    source = parts[0][0] if len(parts) == 1 else "the cache store"
    return _Found(split, source, column, groups)


def _store_candidates(model, max_length):
    """Complete caches in the store, of ``model`` (by fingerprint) when given."""
    from probe.features.models.loading import model_fingerprint
    from probe.features.store.caches import list_caches

    fingerprint = model_fingerprint(model) if model else None
    caches = []
    for row in list_caches():
        if not row["complete"]:
            continue
        if fingerprint and row["model_fingerprint"] != fingerprint:
            continue
        if max_length and row["max_length"] != max_length:
            continue
        caches.append(open_cached(row["path"]))
    return caches


def _match_rows(caches, label_set, text_keys) -> list:
    """For each labelled row, (index of the first cache holding it, row there) or None.

    By ``id`` where both the label file and the cache have one, else by the text's sha1.
    Only caches of the settings (model, tokenizer, max_length) that cover the most rows
    are used, so one head never mixes extractions.
    """
    groups: dict[tuple, list[int]] = {}
    for index, cache in enumerate(caches):
        setting = tuple(cache.meta.get(k) for k in ("model_fingerprint", "tokenizer", "max_length"))
        groups.setdefault(setting, []).append(index)
    best: list = []
    for members in groups.values():
        owner: list = [None] * len(text_keys)
        for index in members:
            cache = caches[index]
            by_id = label_set.ids is not None and cache.ids is not None
            keys = cache.ids if by_id else [bytes(row) for row in cache.text_sha1]
            lookup = {}
            for row, key in enumerate(keys):
                lookup.setdefault(key, row)
            wanted = label_set.ids if by_id else text_keys
            for i, key in enumerate(wanted):
                if owner[i] is None and key in lookup:
                    owner[i] = (index, lookup[key])
        if sum(hit is not None for hit in owner) > sum(hit is not None for hit in best):
            best = owner
    return best or [None] * len(text_keys)


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
