"""The issue's multi-label target, end to end: ``probe sweep --multi-label`` over the 62 rows
(31 layers x 2 pools) of the EWT sentence properties with SmolLM2-135M's features cached
(every CI, the selection's paired bootstrap, the saved head), timed as the command runs.

    PROBE_CACHE=STORE python benchmarks/bench_multilabel_sweep.py   # after one extraction

Writes benchmarks/results/multilabel_sweep_ewt.json and .md: wall and CPU seconds of the
sweep (the run_sweep call, features read included), the load before and after, the CPU."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def cpu_model() -> str:
    found = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    names = [line.split(":", 1)[1].strip() for line in found.splitlines() if "Model name" in line]
    return names[0] if names else platform.processor()


def main() -> None:
    from probe.research.commands import prepare_rows
    from probe.research.sweep import run_sweep

    data = prepare_rows(
        model="smollm2-135m",
        data=str(ROOT / "data" / "ewt_properties.csv"),
        multi_label=True,
        label_col="labels",
    )
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_sweep(data)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    best = result["best"]
    record = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "rows": len(result["entries"]),
        "n": result["n"],
        "wall_seconds": wall,
        "parent_cpu_seconds": cpu,  # the workers' CPU is not counted here
        "sweep_seconds": result["seconds"],
        "target_seconds": 60,
        "selected": {
            "layer": best["layer"],
            "pool": best["pool"],
            "C": best["C"],
            "test_macro_f1": best["test_macro_f1"],
            "test_macro_f1_ci": best["test_macro_f1_ci"],
        },
        "selected_by": result["selected_by"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multilabel_sweep_ewt.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# probe sweep --multi-label on the EWT sentence properties (62 rows)",
        "",
        f"CPU {record['cpu']} ({record['cores']} cores); load "
        f"{record['load_before'][0]:.2f} before, {record['load_after'][0]:.2f} after.",
        "",
        f"- {record['rows']} rows in {wall:.1f} s wall (target 60 s), features cached; the "
        f"sweep itself {record['sweep_seconds']:.1f} s.",
        f"- selected by {record['selected_by']}: layer {best['layer']} {best['pool']}, C "
        f"{best['C']:g}, test macro-F1 {best['test_macro_f1']:.4f} "
        f"[{best['test_macro_f1_ci'][0]:.3f}, {best['test_macro_f1_ci'][1]:.3f}].",
    ]
    (RESULTS / "multilabel_sweep_ewt.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
