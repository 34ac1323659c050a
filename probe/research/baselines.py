"""Baseline rows of a sweep: how much of a probe's accuracy the backbone explains.

A sentence-level control task cannot answer that (held-out sentences never repeat, so
hashed labels are at chance by construction). Three baselines can, each on the same splits,
scored on the same held-out split (test, else validation) with the same bootstrap CIs:

- **majority**: the most frequent training label for every example;
- **bag of words**: TF-IDF of word unigrams and bigrams (scikit-learn ``TfidfVectorizer``,
  sublinear tf, fitted on the training texts of each fold) and scikit-learn
  ``LogisticRegression``, C chosen as the probe's is (same grid; highest validation
  accuracy, ties to the lower log loss; stratified k-fold on train without --val);
- **random weights**: the same architecture, freshly initialised under a fixed seed
  (``probe.features.models.random_weights``), extracted by the same pipeline under its own key and
  swept layer by layer with the same head and C search (Conneau et al. 2018; Hewitt & Liang
  2019, section 5).

Each probe row then gets ``selectivity_vs_random`` (its accuracy minus the random-weights
row's at the same layer and pool) and ``selectivity_vs_bow``, each with a paired-bootstrap
95% CI over the held-out examples (the same resamples as every other CI).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probe.errors import ProbeError
from probe.features.pooling import POOL_NAMES
from probe.heads.cached import CachedData, CachedSplit, is_cache_file
from probe.research.uncertainty import RESAMPLES, metric_intervals, paired_differences

BOW_METHOD = "TF-IDF word 1-2 grams, sublinear tf + scikit-learn LogisticRegression"
BOW_NAME = f"bag of words ({BOW_METHOD})"
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


# --- inputs -----------------------------------------------------------------------------------


def prepare_baselines(
    data: CachedData,
    *,
    text_col: str = "text",
    label_col: str = "label",
    random_weights: bool = True,
    seed: int = RANDOM_SEED,
    device: str | None = None,
    quiet: bool = True,
    log=None,
) -> BaselineInputs:
    """Read the splits' texts back from their data files and extract them with random weights."""
    texts = split_texts(data, text_col, label_col)
    if not random_weights:
        return BaselineInputs(texts, None)
    from probe.features.models.random_weights import random_weights_model

    started = time.perf_counter()
    model = random_weights_model(data.model, seed)
    random = random_weights_data(data, texts, model, device=device, quiet=quiet, log=log)
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


def random_weights_data(data: CachedData, texts: dict, model: str, *, device=None, quiet=True,
                        log=None) -> CachedData:  # fmt: skip
    """``data``'s splits, their features extracted by ``model`` (random weights)."""
    from probe.data.readers import TextDataset, text_sha1
    from probe.features.extract import extract
    from probe.heads.cached import open_cached

    first = open_cached(data.train.parts[0][0]).meta
    distinct = list(dict.fromkeys(text for split in texts.values() for text in split))
    dataset = TextDataset(distinct, None, "the sweep's texts (random-weights baseline)")
    layers = ",".join(str(layer) for layer in data.layers)
    view = extract(model, dataset, layers, max_length=data.max_length, device=device,
                   dtype=first.get("compute_dtype"))  # fmt: skip
    row_of = {text_sha1(text): row for row, text in enumerate(distinct)}

    def split(original: CachedSplit | None) -> CachedSplit | None:
        if original is None:
            return None
        rows = np.asarray([row_of[text_sha1(t)] for t in texts[original.name]], np.int64)
        return CachedSplit(original.name, [(str(view), rows)], original.labels)

    cache = open_cached(str(view))
    return CachedData(
        train=split(data.train), val=split(data.val), test=split(data.test), model=model,
        model_fingerprint=str(cache.meta.get("model_fingerprint")),
        max_length=data.max_length, n_layers_model=data.n_layers_model,
        layers=sorted(set(data.layers) & set(cache.layers)),
        cache_keys={"train": cache.key}, sources=dict(data.sources),
    )  # fmt: skip


# --- the rows ---------------------------------------------------------------------------------


def held_out_split(data: CachedData) -> CachedSplit | None:
    """The split every baseline and selectivity is scored on: test, else validation."""
    return data.test if data.test is not None else data.val


def _scored_row(row: dict, split: CachedSplit, predicted, classes, resamples, seed) -> dict:
    """``row`` plus accuracy, macro F1 and their CIs on ``split``; the per-example
    correctness goes in ``_correct`` (dropped from the JSON)."""
    from probe.heads.metrics import classification_report

    truth = np.asarray(split.labels)
    report = classification_report(truth, predicted, list(classes))
    codes = np.searchsorted(classes, truth), np.searchsorted(classes, predicted)
    ci = metric_intervals(*codes, len(classes), n_resamples=resamples, seed=seed)
    name = split.name
    return {**row, f"{name}_accuracy": report["accuracy"], f"{name}_accuracy_ci": ci["accuracy"],
            f"{name}_macro_f1": report["macro_f1"], f"{name}_macro_f1_ci": ci["macro_f1"],
            "_correct": (np.asarray(predicted) == truth).astype(np.float64)}  # fmt: skip


def majority_row(data: CachedData, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    classes, counts = np.unique(data.train.labels, return_counts=True)
    held = held_out_split(data)
    predicted = np.full(len(held), classes[counts.argmax()])
    return _scored_row({"baseline": "majority", "prediction": str(classes[counts.argmax()])},
                       held, predicted, classes, resamples, seed)  # fmt: skip


def bag_of_words_row(data: CachedData, texts: dict, *, C=None, Cs=None, class_weight=None,
                     cv: int = 5, resamples: int = RESAMPLES, seed: int = 0) -> dict:  # fmt: skip
    """TF-IDF + logistic regression on the training texts, C chosen as the probe's is."""
    from probe.heads.estimator import DEFAULT_CS
    from probe.heads.maths import pick_C

    started = time.perf_counter()
    classes = np.unique(data.train.labels)
    train_texts, train_labels = texts["train"], np.asarray(data.train.labels)
    grid = [float(C)] if C is not None else [float(c) for c in (Cs or DEFAULT_CS)]
    search = {"method": "given", "Cs": grid}
    if len(grid) > 1:
        if data.val is not None:
            scores = _path_scores(train_texts, train_labels, texts["val"],
                                  np.asarray(data.val.labels), grid, class_weight)  # fmt: skip
            search = {"method": "validation"}
        else:
            scores, search = _cross_validated_scores(train_texts, train_labels, grid,
                                                     class_weight, cv, seed)  # fmt: skip
        search.update({"Cs": grid, "accuracy": scores[:, 0].tolist(),
                       "log_loss": scores[:, 1].tolist()})  # fmt: skip
        chosen = pick_C(grid, scores)
    else:
        chosen = grid[0]
    model = _bow_pipeline(chosen, class_weight).fit(train_texts, train_labels)
    held = held_out_split(data)
    row = {"baseline": "bag of words", "method": BOW_NAME, "C": chosen,
           "C_search": search.get("method"),
           "vocabulary": len(model.named_steps["tfidf"].vocabulary_)}  # fmt: skip
    if data.val is not None and held is not data.val:
        row["val_accuracy"] = float(np.mean(model.predict(texts["val"]) == data.val.labels))
    scored = _scored_row(row, held, model.predict(texts[held.name]), classes, resamples, seed)
    scored["seconds"] = time.perf_counter() - started
    return scored


def _bow_pipeline(C: float, class_weight=None, warm_start: bool = False):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
        ("logistic", LogisticRegression(C=C, class_weight=class_weight, max_iter=1000,
                                        warm_start=warm_start)),
    ])  # fmt: skip


def _path_scores(train_texts, train_labels, held_texts, held_labels, grid, class_weight):
    """(len(grid), 2): accuracy and mean log loss on the held texts, C warm-started upward."""
    from sklearn.metrics import log_loss

    vectoriser = _bow_pipeline(1.0).named_steps["tfidf"].fit(train_texts)
    X, X_held = vectoriser.transform(train_texts), vectoriser.transform(held_texts)
    logistic = _bow_pipeline(1.0, class_weight, warm_start=True).named_steps["logistic"]
    scores = []
    for C in sorted(grid):
        logistic.set_params(C=C).fit(X, train_labels)
        known = np.isin(held_labels, logistic.classes_)
        probabilities = logistic.predict_proba(X_held[known])
        scores.append(
            (
                float(np.mean(logistic.predict(X_held) == held_labels)),
                log_loss(held_labels[known], probabilities, labels=logistic.classes_),
            )
        )
    order = np.argsort(np.argsort(grid))  # back to the grid's order
    return np.asarray(scores)[order]


def _cross_validated_scores(texts, labels, grid, class_weight, cv, seed):
    from sklearn.model_selection import StratifiedKFold

    folds = min(int(cv), int(np.unique(labels, return_counts=True)[1].min()))
    if folds < 2:
        return np.tile([0.0, 0.0], (len(grid), 1)), {"method": "default (too few per class)"}
    texts = np.asarray(texts, dtype=object)
    total = np.zeros((len(grid), 2))
    for train_rows, held_rows in StratifiedKFold(folds, shuffle=True,
                                                 random_state=0).split(texts, labels):  # fmt: skip
        total += _path_scores(
            list(texts[train_rows]),
            labels[train_rows],
            list(texts[held_rows]),
            labels[held_rows],
            grid,
            class_weight,
        )
    return total / folds, {"method": f"{folds}-fold cross-validation"}


def _random_fit(index, random: CachedData, layer, pool, options):
    from probe.research.sweep import _numbered_fit

    return _numbered_fit(index, random, layer, pool, train_accuracy=False, **options)


def random_weight_rows(random: CachedData, tasks, *, C=None, Cs=None, class_weight=None,
                       cv: int = 5, n_jobs: int = 1, resamples: int = RESAMPLES,
                       seed: int = 0) -> list[dict]:  # fmt: skip
    """One row per (layer, pool): the probe's head and C search on random-weights features."""
    from joblib import Parallel, delayed

    from probe.research.sweep import _error_row

    options = {"C": C, "Cs": Cs, "class_weight": class_weight, "cv": cv}
    held = held_out_split(random)
    finished = Parallel(n_jobs=n_jobs)(
        delayed(_random_fit)(index, random, layer, pool, options)
        for index, (layer, pool) in enumerate(tasks)
    )
    rows = []
    for (layer, pool), (_, result) in zip(tasks, finished, strict=True):
        if isinstance(result, str):
            rows.append({"baseline": "random weights", **_error_row(layer, pool, result)})
            continue
        row = {"baseline": "random weights", "layer": result.layer, "pool": pool,
               "C": result.classifier.C_, "seconds": result.seconds}  # fmt: skip
        if random.val is not None and held is not random.val:
            row["val_accuracy"] = result.reports["val"]["accuracy"]
        rows.append(_scored_row(row, held, result.predictions[held.name],
                                result.classifier.classes_, resamples, seed))  # fmt: skip
    return rows


# --- selectivity ------------------------------------------------------------------------------


def mean_difference_intervals(differences: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(rows, 2) paired-bootstrap 95% intervals of each row's mean per-example difference."""
    differences = np.asarray(differences, np.float64)
    stacked = np.vstack([np.zeros((1, differences.shape[1])), differences])
    return paired_differences(stacked, 0, n_resamples=resamples, seed=seed)[1:]


def add_selectivity(rows: list[dict], correct: list, baselines: dict, *,
                    resamples: int = RESAMPLES, seed: int = 0) -> None:  # fmt: skip
    """Set ``selectivity_vs_random`` and ``selectivity_vs_bow`` (+ ``_ci``) on probe rows.

    ``correct`` holds each row's per-example correctness on the held-out split (None for a
    failed row); ``baselines`` is what ``baseline_rows`` returns, ``_correct`` still inside.
    """
    random = {(r["layer"], r["pool"]): r.get("_correct") for r in baselines.get("random_weights",
                                                                                 [])}  # fmt: skip
    references = [("bow", baselines.get("bag_of_words", {}).get("_correct"), None)]
    references.append(("random", None, random))
    for name, single, per_row in references:
        pairs = []
        for i, (row, mine) in enumerate(zip(rows, correct, strict=True)):
            other = single if per_row is None else per_row.get((row["layer"], row["pool"]))
            row[f"selectivity_vs_{name}"] = row[f"selectivity_vs_{name}_ci"] = None
            if mine is not None and other is not None:
                pairs.append((i, mine - other))
        if not pairs:
            continue
        differences = np.stack([d for _, d in pairs])
        intervals = mean_difference_intervals(differences, resamples, seed)
        for (i, difference), interval in zip(pairs, intervals, strict=True):
            rows[i][f"selectivity_vs_{name}"] = float(difference.mean())
            rows[i][f"selectivity_vs_{name}_ci"] = [float(interval[0]), float(interval[1])]


def baseline_rows(data: CachedData, inputs: BaselineInputs, tasks, *, C=None, Cs=None,
                  class_weight=None, cv: int = 5, n_jobs: int = 1, resamples: int = RESAMPLES,
                  seed: int = 0) -> dict:  # fmt: skip
    """{"majority": row, "bag_of_words": row, "random_weights": [rows], "split", "seconds"}."""
    if held_out_split(data) is None:
        raise ProbeError("--baselines needs held-out data (--test, --val or --test-size > 0)")
    started = time.perf_counter()
    found = {"split": held_out_split(data).name,
             "majority": majority_row(data, resamples, seed),
             "bag_of_words": bag_of_words_row(data, inputs.texts, C=C, Cs=Cs,
                                              class_weight=class_weight, cv=cv,
                                              resamples=resamples, seed=seed)}  # fmt: skip
    if inputs.random is not None:
        single = [(layer, pool) for layer, pool in tasks if isinstance(layer, int)]
        found["random_weights"] = random_weight_rows(
            inputs.random, single, C=C, Cs=Cs, class_weight=class_weight, cv=cv,
            n_jobs=n_jobs, resamples=resamples, seed=seed)  # fmt: skip
        found["random_model"] = inputs.random_model
        found["random_seed"] = inputs.seed
        found["random_extract_seconds"] = inputs.extract_seconds
    found["seconds"] = time.perf_counter() - started
    return found


def without_correctness(baselines: dict) -> dict:
    """The baselines as the JSON holds them (per-example vectors dropped)."""
    strip = lambda row: {k: v for k, v in row.items() if not k.startswith("_")}  # noqa: E731
    return {key: [strip(r) for r in value] if isinstance(value, list)
            else strip(value) if isinstance(value, dict) else value
            for key, value in baselines.items()}  # fmt: skip


def with_baselines(data: CachedData, inputs: BaselineInputs, rows: list[dict], results: list,
                   tasks, **options) -> dict:  # fmt: skip
    """The sweep's baselines (for its JSON), after setting every row's selectivity.

    ``results`` are the sweep's ``FitResult``s (an error string for a failed row), in the
    order of ``rows``; ``options`` are ``baseline_rows``'s keywords.
    """
    found = baseline_rows(data, inputs, tasks, **options)
    held = held_out_split(data)
    truth = np.asarray(held.labels)
    correct = [(np.asarray(r.predictions[held.name]) == truth).astype(np.float64)
               if hasattr(r, "predictions") else None for r in results]  # fmt: skip
    add_selectivity(rows, correct, found, resamples=options.get("resamples", RESAMPLES),
                    seed=options.get("seed", 0))  # fmt: skip
    return without_correctness(found)


def _with_ci(row: dict, key: str) -> str:
    value, interval = row.get(key), row.get(f"{key}_ci")
    if value is None:
        return "-"
    return f"{value:.4f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def markdown_baselines(result: dict) -> str:
    """The baseline rows as a Markdown table, scored on the same held-out split."""
    found = result["baselines"]
    split = found["split"]
    lines = [f"Baselines on the same {split} split (95% bootstrap CIs):", "",
             f"| baseline | layer | pool | C | {split} acc [95% CI] | {split} macro-F1 [95% CI] |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    rows = [found["majority"], found["bag_of_words"], *found.get("random_weights", [])]
    for row in rows:
        C = row.get("C")
        lines.append(
            f"| {row['baseline']} | {row.get('layer', '-')} | {row.get('pool', '-')} | "
            f"{'-' if C is None else format(C, 'g')} | {_with_ci(row, f'{split}_accuracy')} | "
            f"{_with_ci(row, f'{split}_macro_f1')} |"
        )
    lines += ["", f"Bag of words: {BOW_METHOD}. Random weights: {found.get('random_model', '-')} "
              f"(seed {found.get('random_seed', '-')}); baselines took {found['seconds']:.1f} s "
              f"beyond the sweep, the random-weights extraction "
              f"{found.get('random_extract_seconds', 0.0):.1f} s."]  # fmt: skip
    return "\n".join(lines)


def plot_baselines(axes, found: dict) -> None:
    """The random-weights rows (dotted, per pool) and bag of words and majority (horizontal
    lines) on a sweep's accuracy-by-layer axes."""
    split = found["split"]
    for pool, colour in zip(POOL_NAMES, ("tab:blue", "tab:orange"), strict=True):
        rows = sorted(
            (
                r
                for r in found.get("random_weights", [])
                if r.get("pool") == pool and r.get(f"{split}_accuracy") is not None
            ),
            key=lambda r: r["layer"],
        )
        if rows:
            axes.plot(
                [r["layer"] for r in rows],
                [r[f"{split}_accuracy"] for r in rows],
                ":x",
                color=colour,
                markersize=3,
                label=f"{pool} random weights ({split})",
            )
    for key, name, colour in (
        ("bag_of_words", "bag of words", "tab:green"),
        ("majority", "majority", "grey"),
    ):
        axes.axhline(
            found[key][f"{split}_accuracy"],
            color=colour,
            linestyle="-.",
            linewidth=1,
            label=f"{name} ({split})",
        )
