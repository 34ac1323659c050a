"""The four site sweeps of ``bench_cities.sh`` side by side: cities_sites.md and .json.

For every site (block, attn, mlp, resid_mid), layer and probe (logistic, mass-mean): the test
accuracy with its cluster-bootstrap 95% interval, at the pool the sweep's selection loss
prefers for that (site, layer, probe); then each site's selected row and the best row of all.
Reads ``cities_sweep*/sweep.json`` only: nothing is fitted here.

    python benchmarks/cities_sites.py benchmarks/results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SITES = {"block": "cities_sweep", "attn": "cities_sweep_attn", "mlp": "cities_sweep_mlp"}
SITES["resid_mid"] = "cities_sweep_resid_mid"
PROBES = ("logistic", "mass-mean")


def cell(row: dict | None) -> str:
    if row is None or row.get("test_accuracy") is None:
        return "-"
    low, high = row["test_accuracy_ci"]
    return f"{row['test_accuracy']:.3f} [{low:.3f}, {high:.3f}] {row['pool']}"


def best_pool(rows: list[dict]) -> dict | None:
    """The row of the lowest selection loss (the sweep's own criterion) among the pools."""
    scored = [row for row in rows if row.get("selection_log_loss") is not None]
    return min(scored, key=lambda row: row["selection_log_loss"]) if scored else None


def collect(results: Path) -> dict:
    sweeps = {
        site: json.loads((results / folder / "sweep.json").read_text())
        for site, folder in SITES.items()
    }
    table, selected = [], {}
    for site, sweep in sweeps.items():
        best = sweep["best"]
        selected[site] = {
            k: best.get(k)
            for k in (
                "layer",
                "pool",
                "probe",
                "C",
                "test_accuracy",
                "test_accuracy_ci",
                "selection_log_loss",
            )
        }
        selected[site]["seconds"] = sweep["seconds"]
        for layer in sorted({row["layer"] for row in sweep["entries"]}):
            for probe in PROBES:
                mine = [
                    r for r in sweep["entries"] if r["layer"] == layer and r.get("probe") == probe
                ]
                row = best_pool(mine)
                table.append(
                    {
                        "site": site,
                        "layer": layer,
                        "probe": probe,
                        **(
                            row
                            and {
                                k: row.get(k)
                                for k in (
                                    "pool",
                                    "test_accuracy",
                                    "test_accuracy_ci",
                                    "selection_log_loss",
                                )
                            }
                            or {}
                        ),
                    }
                )
    winner = min(selected.items(), key=lambda item: item[1]["selection_log_loss"])
    n = sum(sweeps["block"]["n"].values())
    return {
        "baselines": baselines(sweeps["block"].get("baselines")),
        "sites": list(SITES),
        "n_statements": n,
        "rows": table,
        "selected": selected,
        "best_site": winner[0],
    }


def baselines(found: dict | None) -> dict | None:
    """The block sweep's baselines (``--baselines``): majority, bag of words, and the best
    random-weights row, each with its test accuracy and interval."""
    if not found:
        return None
    split = found["split"]

    def keep(row: dict) -> dict:
        fields = ("baseline", "layer", "pool", f"{split}_accuracy", f"{split}_accuracy_ci")
        return {key: row.get(key) for key in fields}

    random_rows = [r for r in found.get("random_weights", []) if r.get(f"{split}_accuracy")]
    best_random = max(random_rows, key=lambda r: r[f"{split}_accuracy"]) if random_rows else None
    return {
        "split": split,
        "majority": keep(found["majority"]),
        "bag_of_words": keep(found["bag_of_words"]),
        "random_weights_best": keep(best_random) if best_random else None,
    }


def baseline_lines(found: dict | None) -> list[str]:
    if not found:
        return []
    split, lines = found["split"], ["", "Baselines (block sweep, `--baselines`):", ""]
    for key in ("majority", "bag_of_words", "random_weights_best"):
        row = found.get(key)
        if row:
            low, high = row[f"{split}_accuracy_ci"]
            where = f" (layer {row['layer']} {row['pool']})" if row.get("layer") else ""
            lines.append(
                f"- {key.replace('_', ' ')}{where}: {split} accuracy "
                f"{row[f'{split}_accuracy']:.3f} [{low:.3f}, {high:.3f}]"
            )
    return lines


def markdown(report: dict, machine: list[str]) -> str:
    layers = sorted({row["layer"] for row in report["rows"]})
    find = {(r["site"], r["layer"], r["probe"]): r for r in report["rows"]}
    head = ["layer"] + [f"{site} {probe}" for site in report["sites"] for probe in PROBES]
    lines = [
        "# City statements: probes x sites x layers (SmolLM2-135M)",
        "",
        "Machine (`cities_machine.txt`):",
        "",
        *[f"- {line}" for line in machine],
        "",
        f"{report['n_statements']:,} statements `The city of X is in Y.` (true and false for "
        "each city, a city's two statements one group), 20% held out by city; C and the pool "
        "chosen by grouped 5-fold CV log loss. Each cell: test accuracy [95% cluster-bootstrap "
        "CI] and the pool the CV loss preferred at that site, layer and probe.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for layer in layers:
        cells = [
            cell(find.get((site, layer, probe))) for site in report["sites"] for probe in PROBES
        ]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    lines += ["", "Selected per site (lowest CV log loss over layers, pools and probes):", ""]
    for site, best in report["selected"].items():
        low, high = best["test_accuracy_ci"]
        lines.append(
            f"- {site}: layer {best['layer']} {best['pool']} {best['probe']}, CV log loss "
            f"{best['selection_log_loss']:.4f}, test accuracy {best['test_accuracy']:.3f} "
            f"[{low:.3f}, {high:.3f}] (sweep {best['seconds']:.0f} s)"
        )
    lines += ["", f"Lowest CV loss of all: the {report['best_site']} site."]
    lines += [*baseline_lines(report.get("baselines")), ""]
    return "\n".join(lines)


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    report = collect(results)
    machine_file = results / "cities_machine.txt"
    text = machine_file.read_text() if machine_file.is_file() else "unknown"
    machine = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    report["machine"] = machine
    (results / "cities_sites.json").write_text(json.dumps(report, indent=2))
    (results / "cities_sites.md").write_text(markdown(report, machine))
    print(results / "cities_sites.md")


if __name__ == "__main__":
    main()
