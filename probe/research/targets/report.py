"""The table, console summary and figure of a regression or multi-label sweep: the same
shape as a classification sweep's (``probe.research.sweep_report``), with the task's metrics
(R², r, rho, MAE, RMSE; micro-/macro-F1, subset accuracy, LRAP) in place of accuracy."""

from __future__ import annotations

from pathlib import Path

from probe.features.pooling import POOL_NAMES
from probe.research.uncertainty import with_ci

SHOWN = 3  # test metrics with their CIs in the table (sweep.json holds every one)


def _number(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _split(result: dict) -> str:
    return "test" if result["best"].get(f"test_{result['metric']}") is not None else "val"


def target_table(result: dict) -> str:
    """sweep.md of a regression or multi-label sweep: one row per (layer, pool)."""
    metric, best, entries = result["metric"], result["best"], result["entries"]
    penalty = best.get("penalty", "C")
    where = "val" if result["selection"] == "validation" else "CV"
    split = _split(result)
    shown = list(dict.fromkeys([metric, *result["metrics"]]))[:SHOWN]
    header = ["layer", "pool", penalty, f"{where} {metric}", "≈ chosen"]
    header += [f"{split} {name} [95% CI]" for name in shown]
    control = f"control_train_{metric}"
    extra = [key for key in (control, f"selectivity_{metric}") if any(key in r for r in entries)]
    header += extra
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in entries:
        bold = "**" if (row["layer"], row["pool"]) == (best["layer"], best["pool"]) else ""
        cells = [
            f"{bold}{row['layer']}{bold}",
            row["pool"],
            _number(row.get("C"), "g"),
            _number(row.get(f"selection_{metric}")),
            "=" if row.get("indistinguishable") else "",
            *(with_ci(row, f"{split}_{name}") for name in shown),
            *(_number(row.get(key), "+.4f" if "selectivity" in key else ".4f") for key in extra),
        ]
        if row.get("error"):
            cells = [str(row["layer"]), row["pool"], "error: " + str(row["error"])[:80]]
            cells += [""] * (len(header) - 3)
        lines.append("| " + " | ".join(cells) + " |")
    names = ", ".join(result.get("target_names") or [])
    lines += [
        "",
        f"{result['target']} sweep of {names}: selected by {result['selected_by']}: layer "
        f"{best['layer']}, pool {best['pool']}, {penalty} {best['C']:g}; {split} {metric} "
        f"{with_ci(best, f'{split}_{metric}')}. {result.get('n_indistinguishable', 0)} rows "
        f"indistinguishable from it. {len(entries)} heads in {result['seconds']:.1f} s.",
    ]
    baselines = result.get("baselines") or {}
    for name in ("constant", "bag_of_words", "random_weights"):
        if name in baselines:
            found = baselines[name]
            lines.append(
                f"- baseline {name.replace('_', ' ')} ({found.get('method', found.get('model'))})"
                f": {baselines['held_out']} {metric} {_number(found.get(metric))}"
            )
    for note in ("mdl", "repeats_note"):
        if best.get(note):
            lines.append(f"- {note.split('_')[0]}: {best[note]}")
    return "\n".join(lines) + "\n"


def target_console(report: dict, top: int = 5) -> str:
    """What ``probe sweep`` prints for such rows: the selection and the top rows."""
    metric, best = report["metric"], report["best"]
    split = _split(report)
    penalty = best.get("penalty", "C")
    lower = metric in ("mae", "rmse")
    key = f"selection_{metric}"
    scored = sorted(
        (r for r in report["entries"] if r.get(key) is not None),
        key=lambda r: r[key] if lower else -r[key],
    )
    lines = [
        f"selected: layer {best['layer']}, pool {best['pool']}, {penalty} {best['C']:g}; "
        f"{split} {metric} {with_ci(best, f'{split}_{metric}')}",
        f"chosen by {report['selected_by']}; {report.get('n_indistinguishable', 0)} more rows "
        "indistinguishable (=)",
        "",
    ]
    for row in scored[:top]:
        mark = "*" if (row["layer"], row["pool"]) == (best["layer"], best["pool"]) else " "
        same = " =" if row.get("indistinguishable") else ""
        lines.append(
            f"{mark} layer {row['layer']:>3} {row['pool']:<5} {metric} {row[key]:.4f}{same}  "
            f"{split} {with_ci(row, f'{split}_{metric}')}"
        )
    lines.append(f"\n{len(report['entries'])} rows in {report['seconds']:.1f} s")
    files = report.get("files") or []
    if files:
        lines.append(f"full table: {files[0]}")
    return "\n".join(lines)


def plot_target_sweep(result: dict, path: str | Path) -> Path:
    """The selection metric per layer, one line per pool, the selected row starred."""
    from probe.figures import new_figure, save_png

    figure, axes = new_figure()
    metric, best = result["metric"], result["best"]
    single = [r for r in result["entries"] if isinstance(r["layer"], int) and not r.get("error")]
    for pool, colour in zip(POOL_NAMES, ("tab:blue", "tab:orange"), strict=True):
        rows = sorted((r for r in single if r["pool"] == pool), key=lambda r: r["layer"])
        if rows:
            axes.plot(
                [r["layer"] for r in rows],
                [r.get(f"selection_{metric}") for r in rows],
                "-o",
                color=colour,
                label=f"{pool} ({result['selection']})",
            )
    if isinstance(best["layer"], int):
        axes.plot(
            [best["layer"]],
            [best.get(f"selection_{metric}")],
            "*",
            color="black",
            markersize=14,
            label=f"selected: layer {best['layer']}, {best['pool']}",
        )
    axes.set_xlabel("layer (0 = embeddings)")
    axes.set_ylabel(metric)
    axes.set_title(f"{Path(str(result['model'])).name}: {result['target']} probe per layer")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return save_png(figure, path)


def format_target_fit(summary: dict) -> str:
    """``probe fit``'s report of a regression or multi-label head: the metrics per split."""
    lines = [
        f"model {summary['model']}  layer {summary['layer']}  pool {summary['pool']}  "
        + "  ".join(f"{name} {n}" for name, n in summary["n"].items()),
        f"{summary['target']}: {summary['penalty']} {summary['C']:g} "
        f"({summary['C_search']['method']})  fit {summary['train_seconds']:.2f} s",
    ]
    for split, report in summary["metrics"].items():
        plain = {k: v for k, v in report.items() if isinstance(v, (int, float)) or v is None}
        cells = "  ".join(f"{k} {'-' if v is None else format(v, '.4g')}" for k, v in plain.items())
        lines.append(f"{split}: {cells}")
    return "\n".join([*lines, "", f"head: {summary['head']}"])
