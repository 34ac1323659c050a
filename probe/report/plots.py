"""The report's figures as inline SVG strings (matplotlib, glyphs drawn as paths: no fonts).

Each figure gets its own ``svg.hashsalt``, so the ids matplotlib gives clip paths and
markers never collide between figures in one page.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from probe.figures import new_figure
from probe.report.results import curve_points, held_out_name, interval_path, lookup

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def to_svg(figure, salt: str) -> str:
    """The figure as an ``<svg>`` element (XML prolog and DOCTYPE dropped for inline use)."""
    import matplotlib
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def layer_plot(sweep: dict, salt: str) -> str | None:
    """Accuracy against layer, one colour per pool: test with its CI band, validation dashed,
    the random-weights baseline dotted; bag of words and majority as horizontal lines.

    Every plotted series carries an SVG id (``SALT-test-last``, ``SALT-random-mean``,
    ``SALT-bow``, ``SALT-selected``, ...) so the report test can read its points back."""
    rows = [r for r in sweep.get("entries", []) if isinstance(r.get("layer"), int)]
    chosen = (sweep.get("best") or {}).get("probe")  # --probe rows: the selected row's probe
    rows = [r for r in rows if r.get("probe") == chosen]
    if not rows:
        return None
    figure, axes = new_figure(size=(8, 4.2))
    pools = list(dict.fromkeys(str(r.get("pool")) for r in rows))
    found = sweep.get("baselines") if isinstance(sweep.get("baselines"), dict) else {}
    split = str(found.get("split", "test"))
    held_out = held_out_name(sweep)  # what val_accuracy holds
    random = [r for r in found.get("random_weights") or [] if isinstance(r, dict)]
    random = [r for r in random if isinstance(r.get("layer"), int)]
    target = sweep.get("target", "classification") != "classification"
    metric = str(sweep.get("metric")) if target else "accuracy"  # R², macro-F1 for targets
    val_key = f"selection_{metric}" if target else "val_accuracy"
    for pool, colour in zip(pools, COLOURS * 4, strict=False):
        mine = sorted((r for r in rows if str(r.get("pool")) == pool), key=lambda r: r["layer"])
        for key, style in ((f"test_{metric}", "-"), (val_key, "--")):
            points = [(r["layer"], _number(r.get(key))) for r in mine]
            points = [(x, y) for x, y in points if y is not None]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            name = "val" if key == val_key else key.split("_")[0]
            shown = held_out if name == "val" else name
            (line,) = axes.plot(
                xs, ys, style, color=colour, marker="o", markersize=3, label=f"{pool} ({shown})"
            )
            line.set_gid(f"{salt}-{name}-{pool}")
            bands = [(r["layer"], lookup(r, interval_path(r, key) or ["-"])) for r in mine]
            bands = [(x, ci) for x, ci in bands if ci is not None]
            if bands:
                axes.fill_between(
                    [x for x, _ in bands],
                    [ci[0] for _, ci in bands],
                    [ci[1] for _, ci in bands],
                    color=colour,
                    alpha=0.15,
                    linewidth=0,
                    label=f"{pool} {shown} 95% CI",
                )
        baseline = sorted(
            (r for r in random if str(r.get("pool")) == pool), key=lambda r: r["layer"]
        )
        points = [(r["layer"], _number(r.get(f"{split}_accuracy"))) for r in baseline]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            (line,) = axes.plot(
                xs,
                ys,
                ":",
                color=colour,
                marker="x",
                markersize=3,
                label=f"{pool} random weights ({split})",
            )
            line.set_gid(f"{salt}-random-{pool}")
    for key, name, colour in (
        ("bag_of_words", "bag of words", "tab:green"),
        ("majority", "majority", "grey"),
    ):
        value = _number(lookup(found, [key, f"{split}_accuracy"]))
        if value is not None:
            axes.axhline(
                value, color=colour, linestyle="-.", linewidth=1, label=f"{name} ({split})"
            ).set_gid(f"{salt}-{key}")
    best = sweep.get("best") or {}
    best_y = _number(best.get(f"test_{metric}")) or _number(best.get(val_key))
    if isinstance(best.get("layer"), int) and best_y is not None:
        label = f"selected: layer {best['layer']}, {best.get('pool')}"
        (star,) = axes.plot(
            [best["layer"]], [best_y], "*", color="black", markersize=13, label=label
        )
        star.set_gid(f"{salt}-selected")
    axes.set_xlabel("layer (0 = embeddings)")
    axes.set_ylabel(metric)
    axes.set_title(f"{Path(str(sweep.get('model', ''))).name}: linear probe per layer")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return to_svg(figure, salt)


def scatter_plot(sweep: dict, salt: str) -> str | None:
    """Predicted against true values of the selected regression row on its held-out split,
    one panel per target (the first four), the diagonal drawn; None for other sweeps."""
    found = (sweep.get("best") or {}).get("predictions")
    if not isinstance(found, dict) or not found.get("truth"):
        return None
    truth, predicted = np.asarray(found["truth"], float), np.asarray(found["predicted"], float)
    names = list(found.get("names") or [])[:4]
    figure, axes = new_figure(size=(3.6 * len(names), 3.4), columns=len(names))
    for column, (ax, name) in enumerate(zip(np.atleast_1d(axes), names, strict=True)):
        ax.scatter(truth[:, column], predicted[:, column], s=4, alpha=0.4, color="tab:blue")
        low = float(min(truth[:, column].min(), predicted[:, column].min()))
        high = float(max(truth[:, column].max(), predicted[:, column].max()))
        ax.plot([low, high], [low, high], color="black", linewidth=1, gid=f"{salt}-diagonal")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.grid(alpha=0.3)
    figure.suptitle(f"selected row on {found.get('split')}: predicted vs true")
    figure.tight_layout()
    return to_svg(figure, salt)


def _curve_series(points: list[dict]) -> dict[str, list[tuple]]:
    """metric -> [(training examples, mean, sd)] from a curve's rows ("all" included)."""
    series: dict[str, list[tuple]] = {}
    for point in points:
        x = _number(point.get("n_train"))
        if x is None:
            continue
        for key, value in point.items():
            if key.endswith("_mean") and _number(value) is not None:
                metric = key[: -len("_mean")]
                sd = _number(point.get(f"{metric}_sd")) or 0.0
                series.setdefault(metric, []).append((x, float(value), sd))
    return series


def curve_plot(curve: dict, salt: str) -> str | None:
    """Mean with a +-1 sd band per metric against training examples (log x)."""
    series = _curve_series(curve_points(curve) or [])
    if not series:
        return None
    figure, axes = new_figure(size=(7, 4))
    for (metric, values), colour in zip(series.items(), COLOURS * 4, strict=False):
        values.sort()
        xs = [v[0] for v in values]
        means = [v[1] for v in values]
        axes.plot(xs, means, "-o", color=colour, markersize=3, label=f"{metric} (mean)")
        low = [m - v[2] for m, v in zip(means, values, strict=True)]
        high = [m + v[2] for m, v in zip(means, values, strict=True)]
        axes.fill_between(
            xs, low, high, color=colour, alpha=0.2, linewidth=0, label=f"{metric} ± 1 sd"
        )
    axes.set_xscale("log", base=2)
    axes.set_xlabel("training examples")
    axes.set_ylabel("score")
    where = f"layer {curve.get('layer')}, {curve.get('pool')}" if "layer" in curve else ""
    axes.set_title(f"learning curve {where}".strip())
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return to_svg(figure, salt)


def compare_plot(compare: dict, salt: str) -> str | None:
    """Test accuracy with its 95% CI for the probe and each fine-tuning row."""
    rows = [compare.get("probe") or {}, *compare.get("finetune", [])]
    points = []
    for row in rows:
        accuracy = _number(lookup(row, ["test", "accuracy"]))
        if accuracy is not None:
            points.append((str(row.get("method", "?")), accuracy, lookup(row, ["ci", "accuracy"])))
    if not points:
        return None
    figure, axes = new_figure(size=(8, 3.8))
    for x, (_, accuracy, ci) in enumerate(points):
        error = [[accuracy - ci[0]], [ci[1] - accuracy]] if ci else None
        axes.errorbar(
            [x], [accuracy], yerr=error, fmt="o", capsize=4, color="black" if x == 0 else "tab:blue"
        )
    axes.set_xticks(range(len(points)), [p[0] for p in points], rotation=15, fontsize=7)
    axes.set_ylabel("test accuracy (95% CI)")
    axes.set_title("probe vs fine-tuning")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return to_svg(figure, salt)


def intervene_plot(result: dict, salt: str) -> str | None:
    """The dose-response figure of ``probe intervene`` (``draw_dose``) as inline SVG."""
    from probe.interventions.writing import draw_dose

    if not result.get("dose"):
        return None
    figure = draw_dose(result)
    figure.tight_layout()
    return to_svg(figure, salt)
