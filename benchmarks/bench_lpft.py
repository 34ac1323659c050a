"""LP-FT (head started at the linear probe) against a zero head, at 1 and 3 epochs, with CIs.

Issue 20: ``probe finetune --unfreeze 1 --epochs 1`` on 160 balanced SMS texts scored 0.67
with a zero head on unstandardised features (train loss 0.98 after an epoch, above ln 2).
Kumar et al. 2022 (LP-FT) start fine-tuning at the probe instead. Both starts run here with the
same splits, seed and settings; only ``--init-head`` differs. A third row is the probe alone
(the LP-FT start, never fine-tuned) on the same test examples.

Splits (seed 0, disjoint, balanced where said):
  sms  - data/sms_spam.csv: 160 train, 40 val, 100 test, each half ham, half spam
  sst2 - /work/shared/datasets/sst2: 2,000 train and 1,000 test drawn without overlap from
         GLUE's train (67k); val = GLUE validation (872)

    PROBE_CACHE=/work/store nice -n 10 python benchmarks/bench_lpft.py --datasets sms,sst2

Writes ``benchmarks/results/lpft_<model>.json`` and ``.md`` (rewritten after every run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from probe.data.readers import TextDataset
from probe.data.splits import Splits
from probe.finetune.training import FinetuneConfig, finetune
from probe.messages import configure
from probe.research.uncertainty import metric_intervals, paired_differences

SST2 = Path("/work/shared/datasets/sst2")


def _dataset(frame: pd.DataFrame, source: str) -> TextDataset:
    return TextDataset(list(frame["text"].astype(str)), list(frame["label"].astype(str)), source)


def _balanced(frame: pd.DataFrame, per_class: int, rng) -> pd.DataFrame:
    parts = [g.sample(per_class, random_state=rng) for _, g in frame.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=rng)


def sms_splits(seed: int = 0) -> Splits:
    frame = pd.read_csv("data/sms_spam.csv").drop_duplicates("text")
    rng = np.random.RandomState(seed)
    picked = _balanced(frame, 150, rng)  # 300 texts, 150 per class
    halves = {label: g for label, g in picked.groupby("label")}

    def cut(lo, hi):
        chosen = pd.concat([g.iloc[lo:hi] for g in halves.values()])
        return chosen.sample(frac=1.0, random_state=rng)

    source = "data/sms_spam.csv (balanced 160/40/100)"
    return Splits(
        _dataset(cut(0, 80), source),
        _dataset(cut(80, 100), source),
        _dataset(cut(100, 150), source),
    )


def sst2_splits(seed: int = 0) -> Splits:
    """The subset of ``bench_research.py`` (pandas sample of 3,000, seed 0: 2,000 train, 1,000
    test), so the features its sweep extracted into a shared store serve the probe start."""
    sample = pd.read_csv(SST2 / "train.csv").sample(n=3000, random_state=seed)
    val = pd.read_csv(SST2 / "validation.csv")
    source = "GLUE SST-2 (2k train / 1k held-out train / 872 validation)"
    return Splits(
        _dataset(sample.iloc[:2000], source),
        _dataset(val, source),
        _dataset(sample.iloc[2000:], source),
    )


# max length: SMS 128 (a few texts are cut); SST-2 the model's default (no sentence is cut,
# and the rows are the ones bench_research extracted)
DATASETS = {"sms": (sms_splits, 128), "sst2": (sst2_splits, None)}


def _codes(labels, classes) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    return np.asarray([index[label] for label in labels])


def probe_alone(model: str, splits: Splits, max_length: int, layer: int, pool: str) -> dict:
    """The LP-FT start, scored as it is: the probe of that layer/pool, C chosen on val."""
    from probe.features.extract import extract
    from probe.features.store.caches import open_cache
    from probe.heads.estimator import ProbeClassifier

    started = time.perf_counter()
    features = {
        name: open_cache(
            extract(model, getattr(splits, name), [layer], max_length=max_length, device="cpu")
        ).features(layer, pool)
        for name in ("train", "val", "test")
    }
    probe = ProbeClassifier().fit(
        features["train"],
        np.asarray(splits.train.labels),
        features["val"],
        np.asarray(splits.val.labels),
    )
    return {
        "predicted": list(probe.predict(features["test"])),
        "C": float(probe.C_),
        "seconds": time.perf_counter() - started,
    }


def run_one(model, splits, init, epochs, max_length, args) -> dict:
    config = FinetuneConfig(
        unfreeze=args.unfreeze,
        epochs=epochs,
        init_head=init,
        max_length=max_length,
        batch_size=args.batch_size,
        forgetting_check=False,
        seed=0,
    )
    started = time.perf_counter()
    result = finetune(model, splits, config, device="cpu")
    report = result.report
    predicted = [result.label_names[i] for i in result.test_logits.argmax(1)]
    return {
        "init": init,
        "epochs": epochs,
        "layer": report["layer"],
        "pool": report["pool"],
        "test": {k: report["test"][k] for k in ("accuracy", "macro_f1", "confusion_matrix")},
        "best_epoch": report["best_epoch"],
        "history": [
            {k: row[k] for k in ("epoch", "train_loss", "val_accuracy", "val_loss", "seconds")}
            for row in report["epochs"]
        ],
        "init_head": report["init_head"],
        "seconds": time.perf_counter() - started,
        "predicted": predicted,
    }


def add_intervals(rows: list[dict], truth: list[str], classes: list[str]) -> None:
    """95% bootstrap CIs per row; LP-FT minus zero (same epochs) and LP-FT minus the probe
    alone by a paired bootstrap on the same test examples."""
    true_codes = _codes(truth, classes)
    for row in rows:
        pred = _codes(row["predicted"], classes)
        row["ci"] = metric_intervals(true_codes, pred, len(classes), n_resamples=2000, seed=0)
    correct = np.asarray([_codes(r["predicted"], classes) == true_codes for r in rows], float)
    names = [(r["init"], r["epochs"]) for r in rows]
    for i, row in enumerate(rows):
        for other, label in (
            (("zero", row["epochs"]), "vs_zero"),
            (("probe alone", 0), "vs_probe"),
        ):
            if row["init"] == "probe" and other in names:
                j = names.index(other)
                interval = paired_differences(correct[[j, i]], 0, n_resamples=2000, seed=0)[1]
                row[label] = {
                    "difference": float(correct[i].mean() - correct[j].mean()),
                    "ci": [float(x) for x in interval],
                }


def _machine() -> dict:
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True)
    return {
        "cpu": cpu.stdout.split(":", 1)[-1].strip(),
        "cores": os.cpu_count(),
        "load_before": os.getloadavg(),
        "python": platform.python_version(),
    }


def _fmt_ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def markdown(result: dict) -> str:
    lines = [
        f"# LP-FT vs a zero head: {result['model']}, unfreeze {result['unfreeze']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"CPU: {result['machine']['cpu']}, {result['machine']['cores']} cores, *shared* with other "
        f"agents (load average before {result['machine']['load_before'][0]:.2f}, after "
        f"{result['load_after'][0]:.2f}): times are upper bounds.",
        "",
        "Settings: layer = final (30), pool last, unfreeze 1 (+ final norm), AdamW lr body 1e-5, "
        f"head 1e-3, batch {result['batch_size']}, seed 0 (one seed per row), best epoch on "
        "validation kept; 95% percentile bootstrap CIs over test examples (2,000 resamples); "
        "differences by a paired bootstrap on the same test examples. `probe` = LP-FT "
        "(`--init-head probe`: probe of the same layer/pool fitted on cached train features, C "
        "on validation, standardisation folded into the head); `zero` = `--init-head zero`; "
        "`probe alone` = that probe, never fine-tuned. Time: the first row of a dataset also "
        "pays for extracting the probe's features and the frozen prefix, both cached for the "
        "later rows.",
        "",
    ]
    for name, block in result["datasets"].items():
        length = block["max_length"] or "default"
        lines += [
            f"## {name}: {block['sizes']} (max length {length})",
            "",
            "| start | epochs | test acc [95% CI] | macro F1 [95% CI] | train loss by epoch "
            "| val acc by epoch | LP-FT - zero [95% CI] | LP-FT - probe alone [95% CI] "
            "| time s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in block["rows"]:
            history = row.get("history", [])
            diff, gain = row.get("vs_zero"), row.get("vs_probe")
            lines.append(
                f"| {row['init']} | {row['epochs']} | {row['test']['accuracy']:.3f} "
                f"{_fmt_ci(row['ci']['accuracy'])} | {row['test']['macro_f1']:.3f} "
                f"{_fmt_ci(row['ci']['macro_f1'])} | "
                + ", ".join(f"{h['train_loss']:.3f}" for h in history)
                + " | "
                + ", ".join(f"{h['val_accuracy']:.3f}" for h in history)
                + " | "
                + (f"{diff['difference']:+.3f} {_fmt_ci(diff['ci'])}" if diff else "")
                + " | "
                + (f"{gain['difference']:+.3f} {_fmt_ci(gain['ci'])}" if gain else "")
                + f" | {row['seconds']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def render(paths: list[str], out: Path) -> None:
    """Merge result files (one per dataset, e.g. run in parallel) into one md + json."""
    merged = None
    for path in paths:
        result = json.loads(Path(path).read_text())
        if merged is None:
            merged = result
        else:
            merged["datasets"].update(result["datasets"])
            merged["command"] += f"; {result['command']}"
            merged["load_after"] = result["load_after"]
    out.with_suffix(".json").write_text(json.dumps(merged, indent=1, default=float))
    out.with_suffix(".md").write_text(markdown(merged))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--datasets", default="sms,sst2")
    parser.add_argument("--epochs", default="1,3")
    parser.add_argument("--unfreeze", default="1")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args()
    configure("normal")  # fine-tuning's lines (probe.messages) on stderr
    out = Path(args.out_dir) / f"lpft_{args.model}"
    result = {
        "model": args.model,
        "unfreeze": args.unfreeze,
        "batch_size": args.batch_size,
        "command": "PROBE_CACHE=/work/store python benchmarks/bench_lpft.py "
        f"--datasets {args.datasets} --epochs {args.epochs}",
        "machine": _machine(),
        "datasets": {},
    }
    for name in args.datasets.split(","):
        make, max_length = DATASETS[name]
        splits = make()
        classes = sorted(set(splits.train.labels))
        block = {"sizes": splits.sizes(), "max_length": max_length, "rows": []}
        result["datasets"][name] = block
        for epochs in [int(e) for e in args.epochs.split(",")]:
            for init in ("probe", "zero"):
                print(f"== {name} init {init} epochs {epochs}", flush=True)
                block["rows"].append(run_one(args.model, splits, init, epochs, max_length, args))
                alone = probe_alone_row(args.model, splits, max_length, block)
                add_intervals(block["rows"] + alone, list(splits.test.labels), classes)
                result["load_after"] = os.getloadavg()
                out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float))
                out.with_suffix(".md").write_text(markdown(result))
        block["rows"] += probe_alone_row(args.model, splits, max_length, block)
        add_intervals(block["rows"], list(splits.test.labels), classes)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float))
        out.with_suffix(".md").write_text(markdown(result))


def probe_alone_row(model, splits, max_length, block) -> list[dict]:
    """Once per dataset (cached in ``block``): the probe alone, as a row."""
    if "probe_alone" not in block:
        from sklearn.metrics import f1_score

        layer = block["rows"][0]["layer"]
        alone = probe_alone(model, splits, max_length, layer, "last")
        truth, predicted = np.asarray(splits.test.labels), np.asarray(alone["predicted"])
        accuracy = float(np.mean(predicted == truth))
        macro_f1 = float(f1_score(truth, predicted, average="macro"))
        block["probe_alone"] = {
            "init": "probe alone",
            "epochs": 0,
            "C": alone["C"],
            "seconds": alone["seconds"],
            "test": {"accuracy": accuracy, "macro_f1": macro_f1},
            "predicted": alone["predicted"],
        }
    return [block["probe_alone"]]


if __name__ == "__main__":
    main()
