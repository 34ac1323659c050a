"""The README's quick start, timed as a newcomer runs it: the sweep on ``data/sms_slice.csv``
(SmolLM2-135M, layers 8, 16, 24) in an empty store, then ``probe predict`` on the two real
messages the README shows, with what it answered.

    python benchmarks/bench_quickstart.py --out benchmarks/results/quickstart.json

The converted model comes from the shared models folder (``PROBE_MODELS``, else the user
cache): a first run on a new machine also converts it (about 20 s more).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPAM = (
    "WINNER!! As a valued network customer you have been selected to receivea £900 prize "
    "reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only."
)
HAM = "Nah I don't think he goes to usf, he lives around here though"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def timed(command: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quickstart.json"))
    args = parser.parse_args()
    probe = [sys.executable, "-m", "probe"]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PROBE_CACHE": f"{folder}/store", "HF_HUB_OFFLINE": "1"}
        head_dir = f"{folder}/quickstart"
        sweep_seconds, _ = timed(
            [*probe, "sweep", "--model", "smollm2-135m", "--data", "data/sms_slice.csv"]
            + ["--layers", "8,16,24", "--out-dir", head_dir, "-q"],
            env,
        )
        predict_seconds, answer = timed(
            [*probe, "predict", "--head", f"{head_dir}/head.json", SPAM, HAM, "--json"], env
        )
        sweep = json.loads(Path(head_dir, "sweep.json").read_text())
    predicted = [json.loads(line)["label"] for line in answer.splitlines() if line.strip()]
    result = {
        "command": "README quick start: probe sweep on data/sms_slice.csv, then probe predict",
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average": [list(load_before), list(os.getloadavg())],
        "seconds": {"sweep": round(sweep_seconds, 1), "predict": round(predict_seconds, 1)},
        "selected": {k: sweep["best"][k] for k in ("layer", "pool", "C", "test_accuracy")},
        "predictions": {"spam message": predicted[0], "ham message": predicted[1]},
        "right": predicted == ["spam", "ham"],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
