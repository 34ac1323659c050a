"""What a PromptEOL template does to a linear probe: SmolLM2-135M on SST-2, with and without.

PromptEOL (Jiang et al. 2023) wraps a sentence as ``This sentence: "{text}" means in one
word:"`` so that a causal model's last token has to summarise it. Here both conditions go
through the same pipeline: ``probe extract --layers all`` (with ``--prompt`` or without),
then the probe sweep (every layer x both pools, C searched on validation), the row selected
by validation log loss, and its test accuracy with a 95% bootstrap CI. The baseline is the
same sweep without a prompt: what a careful user gets from ``probe sweep`` as is.

Data: 2,000 SST-2 training sentences and 1,000 disjoint test sentences drawn from SST-2's
training file (pandas sample, seed 0: the subset of ``bench_research.py``), the 872
validation sentences for selection.

    PROBE_CACHE=/work/store python benchmarks/bench_prompt.py --sst2 ../shared/datasets/sst2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_research import make_subset  # noqa: E402

from probe.messages import configure  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PROMPT_EOL = 'This sentence: "{text}" means in one word:"'


def run_condition(model: str, files: dict, prompt: str | None) -> dict:
    from probe.data.readers import read_dataset
    from probe.features.extract import extract
    from probe.heads.rows import prepare
    from probe.research.sweep import run_sweep

    started = time.perf_counter()
    cpu_started = time.process_time()
    caches = {
        split: str(extract(model, read_dataset(str(path)), "all", prompt=prompt))
        for split, path in files.items()
    }
    extract_seconds = time.perf_counter() - started
    extract_cpu = time.process_time() - cpu_started
    data = prepare(
        None, train=caches["train"], val=caches["val"], test=caches["test"], layers="all"
    )
    result = run_sweep(data, n_jobs=1)
    best = result["best"]
    entries = [r for r in result["entries"] if not r.get("error")]
    selected = next(r for r in entries if (r["layer"], r["pool"]) == (best["layer"], best["pool"]))
    top = max(entries, key=lambda r: r["test_accuracy"])
    return {
        "prompt": prompt,
        "caches": caches,
        "extract_seconds": round(extract_seconds, 1),
        "extract_cpu_seconds": round(extract_cpu, 1),
        "selected_by": result["selected_by"],
        "selected": {
            k: selected[k]
            for k in ("layer", "pool", "C", "val_accuracy", "test_accuracy", "test_accuracy_ci")
        },
        "best_test_row": {k: top[k] for k in ("layer", "pool", "test_accuracy")},
        "rows": [
            {k: r[k] for k in ("layer", "pool", "val_accuracy", "test_accuracy")} for r in entries
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--sst2", type=Path, default=Path("../shared/datasets/sst2"))
    parser.add_argument("--subset-dir", type=Path, default=Path("/tmp/sst2k"))
    parser.add_argument("--name", default="prompt_sst2")
    parser.add_argument(
        "--conditions",
        default="none,PromptEOL",
        help="which to run (extracting one condition alone fills the store "
        "in parallel with the other; the report needs both)",
    )
    args = parser.parse_args()
    wanted = args.conditions.split(",")

    configure("normal")  # extraction's lines (probe.messages) on stderr, beside these

    train, test = make_subset(args.sst2, args.subset_dir)
    files = {"train": train, "val": args.sst2 / "validation.csv", "test": test}
    load_before = os.getloadavg()
    conditions = {
        name: run_condition(args.model, files, prompt)
        for name, prompt in (("none", None), ("PromptEOL", PROMPT_EOL))
        if name in wanted
    }
    load_after = os.getloadavg()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    report = {
        "command": "python " + " ".join(sys.argv),
        "model": args.model,
        "data": {
            "train": 2000,
            "val": 872,
            "test": 1000,
            "source": "SST-2; train/test drawn "
            "from SST-2 train (pandas sample seed 0), val = SST-2 validation",
        },
        "machine": {
            "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)),
            "shared": True,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "conditions": conditions,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# PromptEOL vs no prompt: {args.model}, SST-2 (2k train, validation-selected)",
        "",
        f"Command: `PROBE_CACHE=/work/store {report['command']}`  ",
        "CLI equivalent per condition: `probe extract --model smollm2-135m --data FILE "
        f"--layers all --prompt '{PROMPT_EOL}'`, then `probe sweep --train TRAIN.h5 --val "
        "VAL.h5 --test TEST.h5`.",
        "",
        "- Data: 2,000 training and 1,000 disjoint test sentences from SST-2's training file "
        "(pandas sample, seed 0; the subset of `bench_research.py`), 872 validation sentences "
        "(SST-2 validation) choose C, the layer and the pool (validation log loss).",
        f"- Machine: {cpu}, {report['machine']['cores']} cores, shared with other helpers "
        f"(load average before {tuple(round(x, 2) for x in load_before)}, after "
        f"{tuple(round(x, 2) for x in load_after)}): times are *shared* upper bounds.",
        "",
        "| condition | selected (layer, pool, C) | val acc | test acc [95% CI] | best test row "
        "| extract s (CPU s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in conditions.items():
        s, top = result["selected"], result["best_test_row"]
        low, high = s["test_accuracy_ci"]
        lines.append(
            f"| {name} | {s['layer']}, {s['pool']}, {s['C']} | {s['val_accuracy']:.4f} | "
            f"{s['test_accuracy']:.4f} [{low:.3f}, {high:.3f}] | {top['layer']} {top['pool']} "
            f"{top['test_accuracy']:.4f} | {result['extract_seconds']} "
            f"({result['extract_cpu_seconds']}) |"
        )
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
