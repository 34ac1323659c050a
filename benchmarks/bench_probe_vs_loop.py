"""probe against the workflow a careful user writes: time and accuracy, one run.

The careful user (the baseline): extract once with Hugging Face (texts sorted by length,
batches of 32 padded to their longest, ``output_hidden_states=True``, last-token and mean
pools of every layer, kept in memory as float32), then scikit-learn per layer:
``StandardScaler`` + ``LogisticRegression`` (lbfgs) for each C of probe's grid, C chosen on
the validation split. probe: ``extract`` into an empty store (the cache), then ``fit_one``
(first head) or ``run_sweep`` (every layer x pool), C chosen on the same validation split
over the same grid. Same model, token ids, split, max length and threads; loading the model is
counted for neither.

- first head: extraction + the final layer's last-token head, scored on test;
- full sweep: extraction + every layer x pool (62 heads for SmolLM2), best on validation;
- further head: the same head again, the user from arrays in memory, probe from the cache.

``--epoch-loop`` adds the old baseline, a loop that reruns the frozen backbone every epoch
(5 epochs, AdamW on a linear head): it compares a cache with no cache, so it is not run by
default.

Data: a stratified random subset of ``data/sms_spam.csv`` (``--n`` texts; 20% of each class
held out for test, then 15% of the rest for validation, seed 0).

    nice -n 10 python benchmarks/bench_probe_vs_loop.py --model smollm2-135m --n 1500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"


def hf_extract(backbone, texts, max_length, batch_size=32) -> dict[str, np.ndarray]:
    """The careful user's extraction: {pool: float32 (layers, N, D)}, every layer, once."""
    from probe.features.batching import collate
    from probe.features.models.architecture import base_model
    from probe.features.pooling import pool_last, pool_mean

    encoded = backbone.tokenizer.encode(texts, max_length).token_ids
    model = base_model(backbone.model)
    order = np.argsort([len(ids) for ids in encoded], kind="stable")  # sorted by length
    out = {}
    for first in range(0, len(order), batch_size):
        rows = order[first : first + batch_size]
        input_ids, mask = collate([encoded[i] for i in rows], backbone.tokenizer.pad_id)
        with torch.inference_mode():
            states = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        for pool, function in (("last", pool_last), ("mean", pool_mean)):
            if pool not in out:
                shape = (len(states.hidden_states), len(texts), backbone.hidden_size)
                out[pool] = np.zeros(shape, np.float32)
            for layer, hidden in enumerate(states.hidden_states):
                out[pool][layer, rows] = function(hidden, mask).float().numpy()
    return out


def sklearn_head(X_train, y_train, X_val, y_val, Cs) -> tuple:
    """StandardScaler + LogisticRegression (lbfgs) per C; the best on validation accuracy.
    Returns (validation accuracy, C, fitted pipeline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for C in Cs:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
        model.fit(X_train, y_train)
        accuracy = model.score(X_val, y_val)
        if best is None or accuracy > best[0]:
            best = (accuracy, C, model)
    return best


def frozen_loop(
    backbone, texts, labels, test_texts, max_length, epochs=5, batch_size=32, lr=1e-3, seed=0
):
    """The usual loop; returns (seconds, test predictions as class indices)."""
    from probe.features.batching import collate
    from probe.features.models.architecture import base_model
    from probe.features.pooling import pool_last

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    target = torch.tensor([names.index(label) for label in labels])
    model = base_model(backbone.model)
    pad = backbone.tokenizer.pad_id
    started = time.perf_counter()
    token_ids = backbone.tokenizer.encode(texts, max_length).token_ids
    head = torch.nn.Linear(backbone.hidden_size, len(names))
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)

    def final_last_token(batch_ids):
        input_ids, mask = collate(batch_ids, pad)  # padded to the longest text in the batch
        with torch.no_grad():
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return pool_last(hidden, mask)  # (B, D)

    for _ in range(epochs):
        order = rng.permutation(len(texts))
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            features = final_last_token([token_ids[i] for i in rows])
            loss = torch.nn.functional.cross_entropy(head(features), target[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    test_ids = backbone.tokenizer.encode(test_texts, max_length).token_ids
    predicted = []
    with torch.no_grad():
        for first in range(0, len(test_ids), batch_size):
            predicted += head(final_last_token(test_ids[first : first + batch_size])).argmax(1)
    seconds = time.perf_counter() - started
    return seconds, [names[int(i)] for i in predicted]


def _cached_data(path: str, model: str, labels: np.ndarray, rows: dict):
    """probe's view of the extracted file, split by the same rows as the user's arrays."""
    from probe.features.store.caches import open_cache
    from probe.heads.cached import CachedData, CachedSplit

    cache = open_cache(path)
    parts = {name: CachedSplit(name, [(path, idx)], labels[idx]) for name, idx in rows.items()}
    return CachedData(
        train=parts["train"],
        val=parts["val"],
        test=parts["test"],
        model=model,
        model_fingerprint=str(cache.meta["model_fingerprint"]),
        max_length=int(cache.meta["max_length"]),
        n_layers_model=int(cache.meta["n_layers_model"]),
        layers=list(cache.layers),
        cache_keys={name: cache.key for name in rows},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="data/sms_spam.csv")
    parser.add_argument("--n", type=int, default=1500, help="stratified subset size")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--epoch-loop",
        action="store_true",
        help="also the old baseline: rerun the backbone every epoch",
    )
    parser.add_argument("--name", default="probe_vs_loop_sms")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from probe.data.readers import read_dataset
    from probe.features.extract import extract
    from probe.features.models.loading import load_backbone
    from probe.heads.estimator import DEFAULT_CS
    from probe.heads.rows import stratified_rows
    from probe.research.sweep import fit_one, run_sweep

    full = read_dataset(args.data)
    if args.n and args.n < len(full):
        _, keep = stratified_rows(np.asarray(full.labels), args.n / len(full), seed=0)
        full = full.subset(np.isin(np.arange(len(full)), keep))
    labels = np.asarray(full.labels, str)
    kept, test_rows = stratified_rows(labels, 0.2, seed=0)
    inner_train, inner_val = stratified_rows(labels[kept], 0.15, seed=0)
    rows = {
        "train": np.sort(kept[inner_train]),
        "val": np.sort(kept[inner_val]),
        "test": np.sort(test_rows),
    }
    backbone = load_backbone(args.model, device="cpu")
    store = tempfile.mkdtemp(prefix="probe-bench-")
    os.environ["PROBE_CACHE"] = store  # an empty store: the first head pays for extraction
    load_average = [os.getloadavg()]
    Cs = list(DEFAULT_CS)
    final = backbone.num_layers

    # the careful user: extract once with Hugging Face, then scikit-learn per layer
    started = time.perf_counter()
    arrays = hf_extract(backbone, full.texts, args.max_length)
    user_extract_seconds = time.perf_counter() - started

    def split(pool, layer, name):
        return arrays[pool][layer, rows[name]]

    started = time.perf_counter()
    val_acc, user_C, user_model = sklearn_head(
        split("last", final, "train"),
        labels[rows["train"]],
        split("last", final, "val"),
        labels[rows["val"]],
        Cs,
    )
    user_first_predicted = user_model.predict(split("last", final, "test"))
    user_head_seconds = time.perf_counter() - started
    started = time.perf_counter()
    user_sweep = []
    for layer in range(arrays["last"].shape[0]):
        for pool in ("last", "mean"):
            accuracy, C, model = sklearn_head(
                split(pool, layer, "train"),
                labels[rows["train"]],
                split(pool, layer, "val"),
                labels[rows["val"]],
                Cs,
            )
            user_sweep.append((accuracy, layer, pool, C, model))
    user_best = max(user_sweep, key=lambda r: r[0])  # first of equals: the lowest layer
    user_sweep_predicted = user_best[4].predict(split(user_best[2], user_best[1], "test"))
    user_sweep_seconds = time.perf_counter() - started
    load_average.append(os.getloadavg())

    # probe: extract into the cache, then a head / the sweep from it
    started = time.perf_counter()
    cache = extract(backbone, full, "all", max_length=args.max_length)
    probe_extract_seconds = time.perf_counter() - started
    data = _cached_data(str(cache), args.model, labels, rows)
    result = fit_one(data, final, "last")
    probe_first_predicted = result.classifier.predict(data.test.features(final, "last"))
    probe_first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    data = _cached_data(str(cache), args.model, labels, rows)  # opening the cache counts
    sweep = run_sweep(data)
    best = sweep["best"]
    probe_sweep_predicted = sweep["_best_result"].classifier.predict(
        data.test.features(best["layer"], best["pool"])
    )
    probe_sweep_seconds = time.perf_counter() - started
    load_average.append(os.getloadavg())

    # a further head: the user from arrays in memory, probe from the cache
    started = time.perf_counter()
    sklearn_head(
        split("last", final, "train"),
        labels[rows["train"]],
        split("last", final, "val"),
        labels[rows["val"]],
        Cs,
    )
    user_again_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fit_one(_cached_data(str(cache), args.model, labels, rows), final, "last")
    probe_again_seconds = time.perf_counter() - started

    loop = None
    if args.epoch_loop:
        texts = np.asarray(full.texts, dtype=object)
        loop_seconds, loop_predicted = frozen_loop(
            backbone,
            texts[rows["train"]].tolist(),
            labels[rows["train"]].tolist(),
            texts[rows["test"]].tolist(),
            args.max_length,
        )
        loop = {"seconds": loop_seconds, "accuracy": _accuracy(labels, rows, loop_predicted)}
    load_average.append(os.getloadavg())

    truth = labels[rows["test"]]

    def acc(predicted):
        return float(np.mean(np.asarray(predicted) == truth))

    user_first = user_extract_seconds + user_head_seconds
    user_full = user_extract_seconds + user_sweep_seconds
    probe_full = probe_extract_seconds + probe_sweep_seconds
    report = {
        "command": "python " + " ".join(sys.argv),
        "model": args.model,
        "data": f"{args.data}: stratified subset of {len(full)} texts "
        f"({int(np.sum(labels == 'spam'))} spam); test 20% of each class, validation 15% of "
        "the rest (seed 0)",
        "n": {name: len(idx) for name, idx in rows.items()},
        "max_length": args.max_length,
        "threads": torch.get_num_threads(),
        "cpu": _cpu(),
        "C_grid": Cs,
        "baseline": "Hugging Face extract once (length-sorted, batch 32 padded to the longest, "
        "output_hidden_states, both pools of every layer in memory) + scikit-learn "
        "StandardScaler + LogisticRegression (lbfgs) per C, C on validation",
        "user": {
            "extract_seconds": user_extract_seconds,
            "first_head_fit_seconds": user_head_seconds,
            "first_head_seconds": user_first,
            "first_head_C": user_C,
            "first_head_test_accuracy": acc(user_first_predicted),
            "sweep_fit_seconds": user_sweep_seconds,
            "sweep_seconds": user_full,
            "sweep_best": {
                "layer": user_best[1],
                "pool": user_best[2],
                "C": user_best[3],
                "val_accuracy": user_best[0],
            },
            "sweep_test_accuracy": acc(user_sweep_predicted),
            "further_head_seconds": user_again_seconds,
        },
        "probe": {
            "extract_seconds": probe_extract_seconds,
            "first_head_seconds": probe_first_seconds,
            "first_head_C": result.classifier.C_,
            "first_head_test_accuracy": acc(probe_first_predicted),
            "sweep_seconds_with_opening": probe_sweep_seconds,
            "sweep_seconds": probe_full,
            "sweep_best": {
                "layer": best["layer"],
                "pool": best["pool"],
                "C": best["C"],
                "val_accuracy": best["val_accuracy"],
            },
            "sweep_test_accuracy": acc(probe_sweep_predicted),
            "further_head_seconds": probe_again_seconds,
        },
        "speedup_first_head": user_first / probe_first_seconds,
        "speedup_sweep": user_full / probe_full,
        "speedup_sweep_after_extraction": user_sweep_seconds / probe_sweep_seconds,
        "speedup_further_head": user_again_seconds / probe_again_seconds,
        "epoch_loop": loop,
        "load_average_start_user_probe_end": load_average,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    user, probe = report["user"], report["probe"]
    shared = max(a[0] for a in load_average) > args.threads + 0.5
    lines = [
        "# probe vs the workflow a careful user writes",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Model {args.model}; data {report['data']}: {report['n']}, max_length "
        f"{args.max_length}, {report['threads']} threads, CPU {report['cpu']}. Load average "
        "(1, 5, 15 min) at start, after the user's workflow, after probe's, at the end: "
        f"{[tuple(round(x, 2) for x in a) for a in load_average]}"
        + (" — *shared*: other jobs ran alongside, times are upper bounds." if shared else "."),
        "",
        f"Baseline: {report['baseline']}. probe: `extract` into an empty store, then "
        "`fit_one` / `run_sweep` (C over the same grid, on the same validation rows).",
        "",
        "| step | careful user (s) | probe (s) | speed-up | test acc user / probe |",
        "|---|---|---|---|---|",
        f"| extraction, every layer | {user['extract_seconds']:.1f} | "
        f"{probe['extract_seconds']:.1f} | "
        f"{user['extract_seconds'] / probe['extract_seconds']:.2f}x | - |",
        f"| first head (extraction + final layer, last token) | {user_first:.1f} | "
        f"{probe_first_seconds:.1f} | {report['speedup_first_head']:.2f}x | "
        f"{user['first_head_test_accuracy']:.4f} / {probe['first_head_test_accuracy']:.4f} |",
        f"| full sweep ({len(user_sweep)} heads) after extraction (probe: opening the cache "
        f"included) | {user_sweep_seconds:.1f} | {probe_sweep_seconds:.1f} | "
        f"{report['speedup_sweep_after_extraction']:.1f}x | - |",
        f"| extraction + full sweep | {user_full:.1f} | {probe_full:.1f} | "
        f"{report['speedup_sweep']:.2f}x | {user['sweep_test_accuracy']:.4f} / "
        f"{probe['sweep_test_accuracy']:.4f} |",
        f"| a further head (user: arrays in memory; probe: from the cache) | "
        f"{user_again_seconds:.2f} | {probe_again_seconds:.2f} | "
        f"{report['speedup_further_head']:.1f}x | - |",
        "",
        f"Selected by the user's sweep: layer {user['sweep_best']['layer']} "
        f"{user['sweep_best']['pool']} (C {user['sweep_best']['C']:g}); by probe's: layer "
        f"{probe['sweep_best']['layer']} {probe['sweep_best']['pool']} "
        f"(C {probe['sweep_best']['C']:g}).",
        "",
    ]
    if loop:
        lines += [
            f"Old baseline (reruns the backbone every epoch, 5 epochs): "
            f"{loop['seconds']:.1f} s, test accuracy {loop['accuracy']:.4f}.",
            "",
        ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _accuracy(labels, rows, predicted) -> float:
    return float(np.mean(np.asarray(predicted) == labels[rows["test"]]))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
