"""The probe against the usual frozen-backbone training loop: time and accuracy, one run.

Usual loop: for each of 5 epochs and each shuffled batch of 32, run the frozen backbone on
the batch padded to its longest text, take the final layer's last-token state, update a
linear head with AdamW (lr 1e-3, weight decay 0.01, cross-entropy); then classify the test
texts the same way. Probe: extract every layer once (length-sorted batches, the cache),
fit ``ProbeClassifier`` on the final layer's last-token state (C by 5-fold cross-validation
on train), classify the test texts from the cache. Same model, texts, split, max_length and
threads; loading the model is counted for neither.

- first head: extraction included (an empty cache store);
- further heads: the same head again from the cache, and a head for a new label set (does
  the message contain a digit?) on the same cached texts; the loop would pay its full time
  again for each, so the ratio is loop time / cached fit time.

Data: a stratified random subset of ``data/sms_spam.csv`` (``--n`` texts, 20% of each
class held out for test, seed 0), so the loop finishes in minutes on a 2-core CPU.

    nice -n 10 python benchmarks/bench_probe_vs_loop.py --model smollm2-135m --n 1500
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"


def frozen_loop(backbone, texts, labels, test_texts, max_length, epochs=5, batch_size=32,
                lr=1e-3, seed=0):  # fmt: skip
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="data/sms_spam.csv")
    parser.add_argument("--n", type=int, default=1500, help="stratified subset size")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="probe_vs_loop_sms")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from probe.data.readers import read_dataset
    from probe.features.extract import extract
    from probe.features.models.loading import load_backbone
    from probe.heads.metrics import classification_report
    from probe.heads.rows import prepare, stratified_rows
    from probe.research.sweep import fit_one

    full = read_dataset(args.data)
    if args.n and args.n < len(full):
        _, keep = stratified_rows(np.asarray(full.labels), args.n / len(full), seed=0)
        full = full.subset(np.isin(np.arange(len(full)), keep))
    backbone = load_backbone(args.model, device="cpu")
    store = tempfile.mkdtemp(prefix="probe-bench-")
    os.environ["PROBE_CACHE"] = store  # an empty store: the first head pays for extraction
    load_average = [os.getloadavg()]

    # probe, first head: extract (all layers), split by rows, fit on the final layer
    started = time.perf_counter()
    cache = extract(backbone, full, "all", max_length=args.max_length)
    extract_seconds = time.perf_counter() - started
    data = prepare(data=str(cache), test_size=0.2, seed=0)
    final = data.layers[-1]
    result = fit_one(data, final, "last")
    probe_predicted = result.classifier.predict(data.test.features(final, "last"))
    probe_first_seconds = time.perf_counter() - started
    load_average.append(os.getloadavg())

    # probe, further heads: the same from the cache; a new label set on the cached texts
    started = time.perf_counter()
    again = fit_one(prepare(data=str(cache), test_size=0.2, seed=0), final, "last")
    again.classifier.predict(data.test.features(final, "last"))
    probe_again_seconds = time.perf_counter() - started
    digits = Path(store) / "has_digit.csv"
    import pandas as pd

    pd.DataFrame({"text": full.texts,
                  "label": ["digit" if re.search(r"\d", t) else "none" for t in full.texts]}
                 ).to_csv(digits, index=False)  # fmt: skip
    started = time.perf_counter()
    new_labels = fit_one(prepare(data=str(cache), labels=str(digits), test_size=0.2), final, "last")
    new_label_seconds = time.perf_counter() - started

    # the usual loop on the same split
    texts = np.asarray(full.texts, dtype=object)
    train_rows, test_rows = data.train.parts[0][1], data.test.parts[0][1]
    loop_seconds, loop_predicted = frozen_loop(
        backbone, texts[train_rows].tolist(), data.train.labels.tolist(),
        texts[test_rows].tolist(), args.max_length,
    )  # fmt: skip
    load_average.append(os.getloadavg())

    names = result.label_names
    probe_report = classification_report(data.test.labels, probe_predicted, names)
    loop_report = classification_report(data.test.labels, loop_predicted, names)
    report = {
        "command": "python " + " ".join(sys.argv),
        "model": args.model,
        "data": f"{args.data}: stratified subset of {len(full)} texts "
        f"({sum(v == 'spam' for v in full.labels)} spam), test 20% of each class (seed 0)",
        "n_train": len(data.train),
        "n_test": len(data.test),
        "max_length": args.max_length,
        "threads": torch.get_num_threads(),
        "real_tokens": int(sum(len(ids) for ids in
                               backbone.tokenizer.encode(full.texts, args.max_length).token_ids)),
        "loop": {"seconds": loop_seconds, "epochs": 5, "batch_size": 32,
                 "test_accuracy": loop_report["accuracy"],
                 "test_macro_f1": loop_report["macro_f1"]},
        "probe_first_head": {
            "seconds": probe_first_seconds, "extract_seconds": extract_seconds,
            "fit_seconds": result.seconds, "layers_extracted": len(data.layers),
            "layer": final, "pool": "last", "C": result.classifier.C_,
            "test_accuracy": probe_report["accuracy"], "test_macro_f1": probe_report["macro_f1"],
        },
        "probe_further_head_seconds": probe_again_seconds,
        "probe_new_label_set": {"seconds": new_label_seconds, "task": "contains a digit",
                                "test_accuracy": new_labels.reports["test"]["accuracy"]},
        "speedup_first_head": loop_seconds / probe_first_seconds,
        "speedup_further_heads": loop_seconds / probe_again_seconds,
        "speedup_new_label_set": loop_seconds / new_label_seconds,
        "accuracy_difference_probe_minus_loop": probe_report["accuracy"] - loop_report["accuracy"],
        "macro_f1_difference_probe_minus_loop": probe_report["macro_f1"] - loop_report["macro_f1"],
        "load_average_start_mid_end": load_average,
        "test_reports": {"probe": probe_report, "loop": loop_report},
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    first, loop = report["probe_first_head"], report["loop"]
    lines = [
        "# probe vs the usual frozen-backbone training loop",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Model {args.model}; data {report['data']}: {report['n_train']} train, "
        f"{report['n_test']} test, max_length {args.max_length}, {report['threads']} threads. "
        f"Load average (1, 5, 15 min) at start, after the probe, at the end: "
        f"{[tuple(round(x, 2) for x in a) for a in load_average]} (this run's own 2 threads "
        "count as 2; nothing else should run alongside).",
        "",
        "| | time (s) | test accuracy | test macro-F1 | speed-up |",
        "|---|---|---|---|---|",
        f"| usual loop (5 epochs, AdamW, final layer last token) | {loop['seconds']:.1f} | "
        f"{loop['test_accuracy']:.4f} | {loop['test_macro_f1']:.4f} | 1x |",
        f"| probe, first head (extract {first['layers_extracted']} layers "
        f"{first['extract_seconds']:.1f} s + fit {first['fit_seconds']:.2f} s) | "
        f"{first['seconds']:.1f} | {first['test_accuracy']:.4f} | {first['test_macro_f1']:.4f} "
        f"| {report['speedup_first_head']:.1f}x |",
        f"| probe, further head (cache hit) | {probe_again_seconds:.2f} | "
        f"{first['test_accuracy']:.4f} | {first['test_macro_f1']:.4f} | "
        f"{report['speedup_further_heads']:.0f}x |",
        f"| probe, new label set (contains a digit; cache hit) | {new_label_seconds:.2f} | "
        f"{report['probe_new_label_set']['test_accuracy']:.4f} | - | "
        f"{report['speedup_new_label_set']:.0f}x |",
        "",
        "Accuracy difference (probe - loop): "
        f"{report['accuracy_difference_probe_minus_loop']:+.4f}; macro-F1 difference: "
        f"{report['macro_f1_difference_probe_minus_loop']:+.4f}. "
        "Targets: >= 10x for the first head, >= 100x for further heads, at equal or better "
        "accuracy.",
        "",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
