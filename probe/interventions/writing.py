"""What ``probe intervene`` leaves: intervene.md (the dose-response table), intervene.json
and intervene.png (the effect over random against alpha, one line per readout, CI bands)."""

from __future__ import annotations

from pathlib import Path


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def _ci(interval) -> str:
    return f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"


def markdown_table(result: dict) -> str:
    """The dose-response (and the erasure, when made) as markdown."""
    lines = [
        f"# Intervention: layer {result['layer']} ({result['pool']}), toward {result['target']!r}",
        "",
        f"alpha in units of the typical norm there ({result['typical_norm']:.4g}); "
        f"{result['rows']['intervened']} texts changed, readouts fitted on "
        f"{result['rows']['train']} clean texts; random: {len(result['random_seeds'])} "
        "directions of the same norm. Layers: the probability of the target class; "
        "verbalizers: the log-probability margin of the target's word.",
        "",
        "| readout | alpha | head shift | random shift | effect (head - random) | 95% CI | moved |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in result["dose"]:
        lines.append(
            f"| {row['readout']} | {row['alpha']:g} | {_signed(row['head_shift'])} | "
            f"{_signed(row['random_shift'])} | {_signed(row['effect'])} | "
            f"{_ci(row['effect_ci'])} | {'yes' if row['moved'] else 'no'} |"
        )
    erasure = result.get("erasure")
    if erasure:
        probe = erasure["same_layer_probe"]
        lines += [
            "",
            f"## Erasure ({erasure['method']}, rank {erasure['rank']})",
            "",
            "Layers: accuracy of the clean-fitted readout; verbalizers: the margin toward the "
            "true class.",
            "",
            "| readout | clean | erased | random erased | effect | 95% CI |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in erasure["readouts"]:
            lines.append(
                f"| {row['readout']} | {row['clean']:.4f} | {row['erased']:.4f} | "
                f"{row['random_erased']:.4f} | {_signed(row['effect'])} | "
                f"{_ci(row['effect_ci'])} |"
            )
        lines += [
            "",
            f"Same-layer logistic probe (cross-validated on the changed texts): clean "
            f"{_number(probe['clean'])}, erased {_number(probe['erased'])}, random erased "
            f"{_number(probe['random_erased'])}; chance {probe['chance']:.4f}.",
        ]
    for note in result.get("notes") or []:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def plot_dose(result: dict, path: str | Path) -> Path:
    """``draw_dose`` as a PNG at ``path``."""
    from probe.figures import save_png

    return save_png(draw_dose(result), path)


def draw_dose(result: dict):
    """Effect over random against alpha, one line per readout with its interval as a band;
    the verbalizers (log-probabilities, another scale) in a second panel."""
    from probe.figures import new_figure

    names = list(dict.fromkeys(row["readout"] for row in result["dose"]))
    panels = [[n for n in names if n != "verbalizers"], [n for n in names if n == "verbalizers"]]
    panels = [panel for panel in panels if panel]
    figure, axes = new_figure(1, len(panels), size=(8 if len(panels) == 1 else 12, 4.5))
    axes = [axes] if len(panels) == 1 else list(axes)
    for axis, panel in zip(axes, panels, strict=True):
        for name in panel:
            rows = [row for row in result["dose"] if row["readout"] == name]
            alphas = [row["alpha"] for row in rows]
            axis.plot(alphas, [row["effect"] for row in rows], marker="o", label=name)
            axis.fill_between(
                alphas,
                [row["effect_ci"][0] for row in rows],
                [row["effect_ci"][1] for row in rows],
                alpha=0.2,
            )
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_xlabel("alpha (typical norms)")
        axis.set_ylabel(
            "log-prob margin, head - random"
            if panel == ["verbalizers"]
            else f"p({result['target']}), head - random"
        )
        axis.legend(fontsize=8)
    axes[0].set_title(f"Direction of the layer-{result['layer']} head, against random")
    return figure


def save_intervention(result: dict, folder: str | Path) -> list[Path]:
    """Write intervene.md, intervene.json and intervene.png under ``folder``."""
    from probe.outputs import write_json, write_text

    folder = Path(folder)
    return [
        write_text(folder / "intervene.md", markdown_table(result)),
        write_json(folder / "intervene.json", result),
        plot_dose(result, folder / "intervene.png"),
    ]
