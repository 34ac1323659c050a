"""A sweep's result for people: the Markdown table (``sweep.md``) and the accuracy-by-layer
figure (``sweep.png``).

Apart from ``probe.research.sweep`` because the sweep fits and chooses and this only reads
its result: a new column or a new line on the figure lands here, and the saved result
(``sweep.json``) can be drawn again without fitting anything.
"""

from __future__ import annotations

from pathlib import Path

from probe.features.pooling import POOL_NAMES
from probe.heads.metrics import TITLES
from probe.research.uncertainty import with_ci


def _is_best(row: dict, best: dict) -> bool:
    keys = ("layer", "pool", "probe")  # probe: --probe rows (probe.heads.families)
    return all(row.get(key) == best.get(key) for key in keys)


def _probes(entries: list[dict]) -> list[str]:
    """The --probe families of a sweep's rows, in order; empty for a default sweep."""
    return list(dict.fromkeys(row["probe"] for row in entries if row.get("probe")))


def _selected_probe(best: dict) -> str:
    """``, probe sparse:4 (neurons 17, 5, ...)`` for a --probe row; empty otherwise."""
    if not best.get("probe"):
        return ""
    neurons = best.get("neurons")
    named = f" (neurons {', '.join(map(str, neurons))})" if neurons else ""
    return f", probe {best['probe']}{named}"


def _number(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


# column titles of the metrics a sweep may select by
SHORT = {
    "accuracy": "acc",
    "macro_f1": "macro-F1",
    "balanced_accuracy": "bal. acc",
    "auroc": "AUROC",
}


def markdown_table(result: dict) -> str:
    """One row per (layer, pool); the selected row in bold; = marks rows indistinguishable
    from the row the selection rule prefers (paired bootstrap on the selection examples).

    Test accuracy, macro-F1, balanced accuracy and AUROC (two classes) are shown, the
    headline ``metric`` and the first two with their CIs; sweep.json holds every metric's.
    """
    if result.get("target", "classification") != "classification":
        from probe.research.targets.report import target_table

        return target_table(result)
    best = result["best"]
    entries = result["entries"]
    has_test = any(row["test_accuracy"] is not None for row in entries)
    val_name = "val" if result["selection"] == "validation" else "CV"
    has = lambda key: any(row.get(key) is not None for row in entries)  # noqa: E731
    metric = result.get("metric", "accuracy")
    chosen_by = f"selection_{metric}" if "highest_metric" in result else "selection_log_loss"
    columns = [
        ("layer", lambda r: str(r["layer"])),
        ("pool", lambda r: r["pool"]),
        ("C", lambda r: _number(r["C"], "g")),
    ]
    if len(_probes(entries)) > 1:
        columns.insert(2, ("probe", lambda r: r.get("probe") or ""))
    if has(chosen_by):
        name = "log-loss" if chosen_by == "selection_log_loss" else SHORT[metric]
        columns.append((f"{val_name} {name}", lambda r: _number(r.get(chosen_by))))
        columns.append(("≈ chosen", lambda r: "=" if r.get("indistinguishable") else ""))
    if chosen_by != "selection_accuracy":
        columns.append((f"{val_name} acc", lambda r: _number(r["val_accuracy"])))
    if has_test:
        columns.append(("test acc [95% CI]", lambda r: with_ci(r, "test_accuracy")))
        columns.append(("test macro-F1 [95% CI]", lambda r: with_ci(r, "test_macro_f1")))
        for name in ("balanced_accuracy", "auroc"):  # values only, but the headline's
            key, title = f"test_{name}", f"test {SHORT[name]}"
            if has(key) and name == metric:
                columns.append((f"{title} [95% CI]", lambda r, key=key: with_ci(r, key)))
            elif has(key):
                columns.append((title, lambda r, key=key: _number(r.get(key))))
    if has("repeat_accuracy_mean"):
        columns.append(
            (
                f"acc over {result['repeats']} refits",
                lambda r: (
                    f"{r['repeat_accuracy_mean']:.4f} ± {r['repeat_accuracy_sd']:.4f}"
                    if r.get("repeat_accuracy_mean") is not None
                    else "-"
                ),
            )
        )
    if has("memorisation_capacity"):
        columns.append(
            (
                "memorisation (train acc, hashed labels)",
                lambda r: _number(r.get("memorisation_capacity")),
            )
        )
    for key, title in (
        ("selectivity_vs_random", "acc − random weights [95% CI]"),
        ("selectivity_vs_bow", "acc − bag of words [95% CI]"),
    ):
        if has(key):
            columns.append((title, lambda r, key=key: with_ci(r, key, "+")))
    if has("mdl_online_bits"):
        columns.append(("MDL bits", lambda r: _number(r.get("mdl_online_bits"), ".1f")))
        columns.append(("compression", lambda r: _number(r.get("mdl_compression"), ".3f")))
    if has("error"):
        columns.append(("error", lambda r: r.get("error") or ""))
    lines = ["| " + " | ".join(name for name, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in entries:
        cells = [cell(row) for _, cell in columns]
        if _is_best(row, best):
            cells = [f"**{cell}**" if cell else cell for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    how = result.get("selected_by", f"{val_name} accuracy")
    headline = ""  # the selected row's headline metric: on test, else on the split that chose
    if has_test:
        headline = f"; test {TITLES[metric]} {with_ci(best, f'test_{metric}')}"
    elif best.get(f"val_{metric}") is not None:
        value = with_ci(best, f"val_{metric}")
        headline = f"; validation {TITLES[metric]} {value} (the split that chose it)"
    reference = (
        f"highest {val_name} {TITLES[metric]}" if "highest_metric" in result else "lowest loss"
    )
    lines.append(
        f"Selected by {how}: layer {best['layer']}, pool {best['pool']}"
        + f"{_selected_probe(best)}, C {_number(best['C'], 'g')}"
        + headline
        + f". {result.get('n_indistinguishable', 0)} rows indistinguishable from the "
        f"{reference}. {len(entries)} heads in {result['seconds']:.1f} s ({result['n_jobs']} "
        "jobs)."
    )
    grouped = grouping_line(result.get("grouping"))
    if grouped:
        lines.append(grouped)
    curve = sparse_curve(result)
    if len(curve) > 1:
        lines += [
            "",
            f"Sparse probes, accuracy against K (layer {best['layer']}, pool {best['pool']}):",
        ]
        lines += ["", "| K | val acc | test acc | neurons (ranked on train) |", "|---|---|---|---|"]
        for point in curve:
            cells = [
                str(point["k"]),
                _number(point["val_accuracy"]),
                _number(point["test_accuracy"]),
            ]
            lines.append("| " + " | ".join([*cells, ", ".join(map(str, point["neurons"]))]) + " |")
    if result.get("baselines"):
        from probe.research.baselines.report import markdown_baselines

        lines += ["", markdown_baselines(result)]
    return "\n".join(lines)


def sparse_curve(result: dict) -> list[dict]:
    """The ``sparse:K`` rows at the selected row's layer and pool, by K: {k, val_accuracy,
    test_accuracy, neurons}; empty when the sweep fitted no sparse probe there."""
    best = result["best"]
    points = [
        {
            "k": int(row["probe"].split(":")[1]),
            "val_accuracy": row.get("val_accuracy"),
            "test_accuracy": row.get("test_accuracy"),
            "neurons": row.get("neurons") or [],
        }
        for row in result["entries"]
        if str(row.get("probe", "")).startswith("sparse:")
        and (row["layer"], row["pool"]) == (best["layer"], best["pool"])
        and not row.get("error")
    ]
    return sorted(points, key=lambda point: point["k"])


def console_summary(report: dict, top: int = 5) -> str:
    """What ``probe sweep`` prints: the selected row and its headline metric with its CI, the
    ``top`` rows by the score that chose it, the number of rows and where the full table went;
    under 100 columns however many rows and measures (sweep.md holds them all)."""
    if report.get("target", "classification") != "classification":
        from probe.research.targets.report import target_console

        return target_console(report, top)
    entries, best = report["entries"], report["best"]
    metric = report.get("metric", "accuracy")
    val_name = "val" if report["selection"] == "validation" else "CV"
    key, name, reference = _ranking(report)
    lower = key == "selection_log_loss"
    scored = sorted(
        (row for row in entries if row.get(key) is not None),
        key=lambda row: row[key] if lower else -row[key],
    )
    shown = scored[:top]
    selected = [row for row in scored[top:] if _is_best(row, best)]
    if selected:  # --prefer-early took a row below the top ones: shown last, marked
        shown = [*shown[: top - 1], selected[0]]
    split = "test" if best.get(f"test_{metric}") is not None else "val"
    headline = f"{'test' if split == 'test' else val_name} {TITLES[metric]}"
    rows = [["", "layer", "pool", "C", f"{val_name} {name}", f"{headline} [95% CI]"]]
    for row in shown:
        rows.append(
            [
                "*" if _is_best(row, best) else "",
                str(row["layer"]),
                row["pool"] + (f" {row['probe']}" if len(_probes(entries)) > 1 else ""),
                _number(row["C"], "g"),
                _number(row.get(key)) + (" =" if row.get("indistinguishable") else ""),
                with_ci(row, f"{split}_{metric}"),
            ]
        )
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(rows[0]))]
    table = ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in rows]
    lines = [
        f"selected: layer {best['layer']}, pool {best['pool']}{_selected_probe(best)}, "
        f"C {_number(best['C'], 'g')}; {headline} "
        f"{with_ci(best, f'{split}_{metric}')}",
        f"chosen by {report.get('selected_by', name)}",
    ]
    if reference:
        count = report.get("n_indistinguishable", 0)
        lines.append(f"{count} more rows indistinguishable from the {reference} (= below)")
    if report.get("task"):  # word rows
        words = ", ".join(f"{part} {n:,}" for part, n in (report.get("words") or {}).items())
        lines.append(f"task {report['task']}, word pool {report.get('word_pool')}; words {words}")
    order = "lower" if lower else "higher"
    lines += [
        "",
        f"top {len(shown)} of {len(entries)} rows by {val_name} {name} ({order} is better):",
        *(line.rstrip() for line in table),
        "",
        f"{len(entries)} rows in {report['seconds']:.1f} s ({report['n_jobs']} jobs)"
        + (f"; {len(report['errors'])} could not be fitted (below)" if report["errors"] else ""),
    ]
    files = report.get("files") or []
    if files:
        lines.append(f"full table: {files[0]} (every row and measure; -v prints it)")
        lines.append("also: " + ", ".join(str(Path(path).name) for path in files[1:]))
    return "\n".join(lines)


def _ranking(report: dict) -> tuple[str, str, str | None]:
    """(the rows' key of the score that chose, its short name, the row the bootstrap compared
    every other with: "lowest loss", "highest ...", or None without one)."""
    metric = report.get("metric", "accuracy")
    val_name = "val" if report["selection"] == "validation" else "CV"
    if "highest_metric" in report:
        highest = f"highest {val_name} {TITLES[metric]}"
        return f"selection_{metric}", SHORT.get(metric, metric), highest
    if report.get("lowest_loss") is not None:
        return "selection_log_loss", "log-loss", "lowest loss"
    return "val_accuracy", "acc", None  # too few rows per class to score each example


def grouping_line(grouping: dict | None) -> str | None:
    """How the rows were grouped, in one sentence (None for results from before groups):
    rows sharing a group per split, and given splits' held-out texts also in train."""
    if not grouping or "splits" not in grouping:
        return None
    splits = grouping["splits"]
    shared = sum(part["rows_in_shared_groups"] for part in splits.values())
    rows = sum(part["rows"] for part in splits.values())
    line = (
        f"Grouped by {grouping['by']}: {shared:,} of {rows:,} rows share a group with another "
        "row; no split, fold or resample parts a group."
    )
    for name, count in (grouping.get("held_out_texts_in_train") or {}).items():
        if count:
            line += f" {count:,} {name} texts also occur in train (given splits kept as given)."
    train_only = grouping.get("train_only")
    if train_only:
        have = "class has" if train_only["classes"] == 1 else "classes have"
        line += (
            f" {train_only['classes']:,} {have} fewer than 2 examples: kept in training only, "
            f"not in the {train_only['split']} split."
        )
    return line


def plot_sweep(result: dict, path: str | Path) -> Path:
    """Accuracy against layer, one line per pool: validation solid, test dashed with its
    95% CI as a band; multi-layer heads as horizontal dotted lines; the selected row starred."""
    from probe.figures import new_figure, save_png

    if result.get("target", "classification") != "classification":
        from probe.research.targets.report import plot_target_sweep

        return plot_target_sweep(result, path)
    figure, axes = new_figure()
    val_name = "validation" if result["selection"] == "validation" else "cross-validated"
    single = [r for r in result["entries"] if isinstance(r["layer"], int) and not r.get("error")]
    single = [r for r in single if r.get("probe") == result["best"].get("probe")]  # its probe
    for pool, colour in zip(POOL_NAMES, ("tab:blue", "tab:orange"), strict=True):
        rows = sorted((r for r in single if r["pool"] == pool), key=lambda r: r["layer"])
        if not rows:
            continue
        layers = [r["layer"] for r in rows]
        axes.plot(
            layers,
            [r["val_accuracy"] for r in rows],
            "-o",
            color=colour,
            markersize=3,
            label=f"{pool} ({val_name})",
        )
        if rows[0]["test_accuracy"] is not None:
            axes.plot(
                layers,
                [r["test_accuracy"] for r in rows],
                "--",
                color=colour,
                alpha=0.7,
                label=f"{pool} (test, 95% CI)",
            )
            if all(r.get("test_accuracy_ci") for r in rows):
                axes.fill_between(
                    layers,
                    [r["test_accuracy_ci"][0] for r in rows],
                    [r["test_accuracy_ci"][1] for r in rows],
                    color=colour,
                    alpha=0.15,
                    linewidth=0,
                )
        refits = [r for r in rows if r.get("repeat_accuracy_mean") is not None]
        if refits:
            axes.errorbar(
                [r["layer"] for r in refits],
                [r["repeat_accuracy_mean"] for r in refits],
                yerr=[r["repeat_accuracy_sd"] for r in refits],
                fmt="none",
                ecolor=colour,
                capsize=2,
                alpha=0.8,
                label=f"{pool} ({result['repeats']} refits, mean ± sd)",
            )
        same = [r for r in rows if r.get("indistinguishable")]
        axes.plot(
            [r["layer"] for r in same],
            [r["val_accuracy"] for r in same],
            "o",
            mfc="none",
            color="black",
            markersize=7,
            alpha=0.5,
        )
    multi = (r for r in result["entries"] if not isinstance(r["layer"], int) and not r.get("error"))
    for row, style in zip(multi, (":", "-.", (0, (1, 3)), (0, (5, 5))) * 8, strict=False):
        value = row["test_accuracy"] if row["test_accuracy"] is not None else row["val_accuracy"]
        axes.axhline(
            value, linestyle=style, color="grey", linewidth=1, label=f"{row['layer']} {row['pool']}"
        )
    if result.get("baselines"):
        from probe.research.baselines.report import plot_baselines

        plot_baselines(axes, result["baselines"])
    best = result["best"]
    if isinstance(best["layer"], int):
        axes.plot(
            [best["layer"]],
            [best["val_accuracy"]],
            "*",
            color="black",
            markersize=14,
            label=f"selected: layer {best['layer']}, {best['pool']}",
        )
    axes.set_xlabel("layer (0 = embeddings); open circles: indistinguishable from the chosen")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{Path(str(result['model'])).name}: linear probe per layer")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return save_png(figure, path)
