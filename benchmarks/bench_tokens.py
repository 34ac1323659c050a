"""Token-level probes on UD-EWT dev with SmolLM2-135M: extraction cost, sweep time, a check.

1. Extraction (``--part compare``): the first N EWT dev sentences at all 31 layers, word rows
   (``--unit word``, word pool last) against the same texts at sentence level (same tokens;
   the sentence path pools last and mean). Both run in a fresh row store (the converted
   model is shared from ``$PROBE_CACHE/models``); the figure is the views'
   ``extract_seconds`` (the forward pass, pooling and writing, not the model load). On a
   shared, oversubscribed machine N is a subset (the whole file took ~45 min per run there).
   ``--part full``: the word rows of all 2,001 sentences into ``$PROBE_CACHE`` (for the
   sweeps), with its peak RSS (``/usr/bin/time``) beside the subset's: flat in N? Disk bytes
   per word per layer from the store.
2. ``probe sweep --task upos --control`` and ``--task deprel --control`` on the same file
   (split by sentence: 20% test, 10% of the rest validation, seed 0): wall time, table.
3. Reference: scikit-learn's ``LogisticRegression`` (lbfgs, float64, the sweep's C, on
   ``StandardScaler`` features) fitted on the same training words at the selected layer,
   scored on the same test words: a careful user's independent probe.

    PROBE_CACHE=/work/store nice -n 10 python benchmarks/bench_tokens.py --part full
    PROBE_CACHE=/work/store nice -n 10 python benchmarks/bench_tokens.py --part compare --n 250
    PROBE_CACHE=/work/store nice -n 10 python benchmarks/bench_tokens.py --part sweeps
    PROBE_CACHE=/work/store python benchmarks/bench_tokens.py --part write
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
EWT = (
    Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ud_ewt" / "en_ewt-ud-dev.conllu"
)
MODEL = "smollm2-135m"


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "load_before": os.getloadavg()}


def run(args: list[str], store: Path) -> tuple[str, float, int]:
    """(stdout, wall seconds, peak RSS in MB) of a ``python -m probe`` subprocess."""
    env = {**os.environ, "PROBE_CACHE": str(store), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-m", "probe", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"probe {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    rss = int(re.findall(r"MAXRSS (\d+)", done.stderr)[-1]) // 1024
    return done.stdout, wall, rss


def fresh_store(root: Path, name: str) -> Path:
    """A new store whose models folder is the shared one (no reconversion)."""
    store = root / name
    subprocess.run(["rm", "-rf", str(store)], check=True)
    store.mkdir(parents=True)
    (store / "models").symlink_to(Path(os.environ["PROBE_CACHE"]).resolve() / "models")
    return store


def first_sentences(n: int, path: Path) -> Path:
    blocks = [b for b in EWT.read_text(encoding="utf-8").split("\n\n") if b.strip()][:n]
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return path


def compare(work: Path, n: int) -> dict:
    """Sentence-level vs word-level extraction of the first ``n`` sentences, fresh stores."""
    import h5py
    import pandas as pd

    from probe.data.conllu import read_word_dataset
    from probe.features.store.caches import store_report

    subset = first_sentences(n, work / f"ewt{n}.conllu")
    data = read_word_dataset(str(subset))
    csv = work / f"ewt{n}_texts.csv"
    pd.DataFrame({"text": data.texts}).to_csv(csv, index=False)
    out = {"sentences": len(data), "words": data.n_words}
    store = fresh_store(work, "store-sentence")
    view, wall, rss = run(
        ["extract", "--model", MODEL, "--data", str(csv), "--layers", "all", "-q"], store
    )
    with h5py.File(view.strip().splitlines()[-1]) as handle:
        out["sentence"] = {
            "extract_seconds": float(handle.attrs["extract_seconds"]),
            "tokens": int(handle["n_tokens"][()].sum()),
            "wall_s": wall,
            "peak_rss_mb": rss,
        }
    store = fresh_store(work, "store-word")
    view, wall, rss = run(
        [
            "extract",
            "--model",
            MODEL,
            "--data",
            str(subset),
            "--unit",
            "word",
            "--layers",
            "all",
            "-q",
        ],
        store,
    )
    with h5py.File(view.strip().splitlines()[-1]) as handle:
        out["word"] = {
            "extract_seconds": float(handle.attrs["extract_seconds"]),
            "words": int(handle.attrs["n"]),
            "wall_s": wall,
            "peak_rss_mb": rss,
            "unaligned": int(handle.attrs["unaligned"]),
        }
    out["word_over_sentence"] = out["word"]["extract_seconds"] / out["sentence"]["extract_seconds"]
    report = [s for s in store_report(store)["settings"] if s["unit"].startswith("word")][0]
    out["word"]["bytes_per_word_per_layer"] = report["bytes_per_unit_layer"]
    return out


def full(work: Path) -> dict:
    """The word rows of every EWT dev sentence, into ``$PROBE_CACHE`` (the sweeps read them)."""
    import h5py

    store = Path(os.environ["PROBE_CACHE"])
    view, wall, rss = run(
        [
            "extract",
            "--model",
            MODEL,
            "--data",
            str(EWT),
            "--unit",
            "word",
            "--layers",
            "all",
            "-q",
        ],
        store,
    )
    with h5py.File(view.strip().splitlines()[-1]) as handle:
        out = {
            "extract_seconds": float(handle.attrs["extract_seconds"]),
            "computed_rows": int(handle.attrs["computed_rows"]),
            "words": int(handle.attrs["n"]),
            "sentences": int(handle.attrs["n_sentences"]),
            "unaligned": int(handle.attrs["unaligned"]),
            "wall_s": wall,
            "peak_rss_mb": rss,
            "view": view.strip().splitlines()[-1],
        }
    report = word_rows_report(store)
    out["bytes_per_word_per_layer"] = report["bytes_per_unit_layer"]
    out["mb_per_1000_words_per_layer"] = report["bytes_per_unit_layer"] * 1000 / 1e6
    return out


def word_rows_report(store: Path) -> dict:
    """The SmolLM2 word:last rows' folder report (only it: a shared store may hold settings
    written by other versions of probe)."""
    from probe.features.store.housekeeping import setting_report
    from probe.features.store.rowstore import rows_dir

    for folder in sorted(rows_dir(store).iterdir()):
        setting = json.loads((folder / "setting.json").read_text())
        if (
            setting.get("pools") == ["word:last"]
            and "SmolLM2" in json.dumps(setting)
            or (setting.get("pools") == ["word:last"] and setting.get("compute_dtype") == "float32")
        ):
            return setting_report(folder)
    raise SystemExit("no word:last rows in the store")


def sweeps(work: Path) -> dict:
    store = Path(os.environ["PROBE_CACHE"])
    out = {}
    for task in ("upos", "deprel"):
        folder = work / f"sweep-{task}"
        stdout, wall, rss = run(
            [
                "sweep",
                "--model",
                MODEL,
                "--data",
                str(EWT),
                "--task",
                task,
                "--control",
                "--out-dir",
                str(folder),
                "-q",
            ],
            store,
        )
        report = json.loads((folder / "sweep.json").read_text())
        out[task] = {
            "wall_s": wall,
            "sweep_seconds": report["seconds"],
            "peak_rss_mb": rss,
            "table": stdout,
            "report": report,
        }
    return out


def sklearn_reference(work: Path, upos: dict) -> dict:
    """The sweep's split (same call, same seed), its selected layer and C, in scikit-learn."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from probe.research.words.rows import prepare_words

    data = prepare_words(MODEL, task="upos", data=str(EWT))
    best = upos["report"]["best"]
    layer, C = int(best["layer"]), float(best["C"])
    X_train = data.train.features(layer, "last").astype(np.float64)
    X_test = data.test.features(layer, "last").astype(np.float64)
    scaler = StandardScaler().fit(X_train)
    started = time.perf_counter()
    model = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(X_train), data.train.labels)
    seconds = time.perf_counter() - started
    accuracy = float(np.mean(model.predict(scaler.transform(X_test)) == data.test.labels))
    return {
        "layer": layer,
        "C": C,
        "sklearn_test_accuracy": accuracy,
        "probe_test_accuracy": best["test_accuracy"],
        "sklearn_fit_seconds": seconds,
        "difference_points": 100 * (best["test_accuracy"] - accuracy),
        "n_train": len(data.train),
        "n_test": len(data.test),
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["compare", "full", "sweeps", "write"], required=True)
    parser.add_argument("--n", type=int, default=250, help="sentences of --part compare")
    args = parser.parse_args()
    if "PROBE_CACHE" not in os.environ:
        raise SystemExit("set PROBE_CACHE to the store holding the converted SmolLM2")
    work = Path("/tmp/bench_tokens")
    work.mkdir(exist_ok=True)
    part = work / f"part-{args.part}.json"
    if args.part == "compare":
        result = {"machine": machine(), "compare": compare(work, args.n)}
    elif args.part == "full":
        result = {"machine": machine(), "full": full(work)}
    elif args.part == "sweeps":
        result = {"machine": machine(), "sweeps": sweeps(work)}
        result["reference"] = sklearn_reference(work, result["sweeps"]["upos"])
    if args.part != "write":
        result["machine"]["load_after"] = os.getloadavg()
        part.write_text(json.dumps(result, indent=1, default=str))
        print(json.dumps(result, indent=1, default=str)[:4000])
        return
    merged = {"model": MODEL, "data": str(EWT)}
    for name in ("compare", "full", "sweeps"):
        path = work / f"part-{name}.json"
        if path.is_file():
            merged[name] = json.loads(path.read_text())
    RESULTS.mkdir(exist_ok=True)
    for task, sweep in merged.get("sweeps", {}).get("sweeps", {}).items():
        (RESULTS / f"tokens_smollm2_ewt_{task}.md").write_text(sweep.pop("table"))
    (RESULTS / "tokens_smollm2_ewt.json").write_text(json.dumps(merged, indent=1, default=str))
    (RESULTS / "tokens_smollm2_ewt.md").write_text(summary(merged))


def summary(merged: dict) -> str:
    """The figures of every part that ran, as Markdown."""
    lines = [
        f"# Token-level probes: {MODEL} on UD-EWT dev",
        "",
        "Made by `benchmarks/bench_tokens.py` (command lines in its docstring). Timings "
        "are *shared*: measured on a 2-core machine oversubscribed by other jobs "
        "(load averages below), so they are upper bounds.",
        "",
    ]
    if "compare" in merged:
        c, m = merged["compare"]["compare"], merged["compare"]["machine"]
        lines += [
            f"## Extraction, {c['sentences']} sentences ({c['words']} words, "
            f"{c['sentence']['tokens']} tokens), all 31 layers",
            "",
            f"CPU {m['cpu']} x {m['cores']} cores, load {m['load_before'][0]:.1f} before, "
            f"{m['load_after'][0]:.1f} after (*shared*).",
            "",
            "| rows | extract s | wall s | peak RSS MB |",
            "|---|---|---|---|",
            f"| sentence (last + mean pools) | {c['sentence']['extract_seconds']:.1f} | "
            f"{c['sentence']['wall_s']:.1f} | {c['sentence']['peak_rss_mb']} |",
            f"| word (word pool last) | {c['word']['extract_seconds']:.1f} | "
            f"{c['word']['wall_s']:.1f} | {c['word']['peak_rss_mb']} |",
            "",
            f"Word / sentence extraction time: {c['word_over_sentence']:.2f} "
            "(target <= 1.10). Baseline: `probe extract` of the same texts at sentence "
            "level, what a user runs today.",
            "",
        ]
    if "full" in merged:
        f, m = merged["full"]["full"], merged["full"]["machine"]
        small_rss = merged.get("compare", {}).get("compare", {}).get("word", {}).get("peak_rss_mb")
        lines += [
            "## Word rows of all 2,001 sentences",
            "",
            f"{f['words']} words, {f['unaligned']} unaligned; extract "
            f"{f['extract_seconds']:.0f} s ({f['computed_rows']} sentences computed; "
            f"load {m['load_before'][0]:.1f} -> {m['load_after'][0]:.1f}, *shared*), "
            f"peak RSS {f['peak_rss_mb']} MB (200 sentences: "
            f"{small_rss} MB)."
            f" Disk: {f['bytes_per_word_per_layer']:.0f} bytes per word per layer = "
            f"{f['mb_per_1000_words_per_layer']:.2f} MB per 1,000 words per layer "
            "(fp16 x 576 = 1,152 bytes of payload).",
            "",
        ]
    if "sweeps" in merged:
        part = merged["sweeps"]
        m = part["machine"]
        lines += [
            "## Sweeps (`probe sweep --task T --control`, 1,000 resamples)",
            "",
            f"Load {m['load_before'][0]:.1f} -> {m['load_after'][0]:.1f} (*shared*).",
            "",
            "| task | heads | sweep s | wall s | selected layer | test acc [95% CI] | "
            "selectivity at it |",
            "|---|---|---|---|---|---|---|",
        ]
        for task, sweep in part["sweeps"].items():
            report = sweep["report"]
            best = report["best"]
            ci = best.get("test_accuracy_ci") or [float("nan")] * 2
            lines.append(
                f"| {task} | {len(report['entries'])} | {sweep['sweep_seconds']:.1f} | "
                f"{sweep['wall_s']:.1f} | {best['layer']} | {best['test_accuracy']:.4f} "
                f"[{ci[0]:.3f}, {ci[1]:.3f}] | {best.get('selectivity') or 0:+.4f} "
                "|"
            )
        r = part["reference"]
        lines += [
            "",
            f"Reference at the selected UPOS layer {r['layer']} (C {r['C']:g}): "
            f"scikit-learn `LogisticRegression` (lbfgs, float64, StandardScaler) on the "
            f"same {r['n_train']} training words: test accuracy "
            f"{r['sklearn_test_accuracy']:.4f} vs probe {r['probe_test_accuracy']:.4f} "
            f"({r['difference_points']:+.2f} points; target within 1).",
            "",
            "Tables: `tokens_smollm2_ewt_upos.md`, `tokens_smollm2_ewt_deprel.md`.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
