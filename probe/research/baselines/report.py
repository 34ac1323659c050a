"""The baselines beside a sweep's results: their Markdown table under the sweep's, and their
lines on its accuracy-by-layer figure.
"""

from __future__ import annotations

from probe.features.pooling import POOL_NAMES
from probe.research.baselines.bow import BOW_METHOD
from probe.research.uncertainty import with_ci


def markdown_baselines(result: dict) -> str:
    """The baseline rows as a Markdown table, scored on the same held-out split."""
    found = result["baselines"]
    split = found["split"]
    lines = [
        f"Baselines on the same {split} split (95% bootstrap CIs):",
        "",
        f"| baseline | layer | pool | C | {split} acc [95% CI] | {split} macro-F1 [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    rows = [found["majority"], found["bag_of_words"], *found.get("random_weights", [])]
    for row in rows:
        C = row.get("C")
        lines.append(
            f"| {row['baseline']} | {row.get('layer', '-')} | {row.get('pool', '-')} | "
            f"{'-' if C is None else format(C, 'g')} | {with_ci(row, f'{split}_accuracy')} | "
            f"{with_ci(row, f'{split}_macro_f1')} |"
        )
    lines += [
        "",
        f"Bag of words: {BOW_METHOD}. Random weights: {found.get('random_model', '-')} "
        f"(seed {found.get('random_seed', '-')}); baselines took {found['seconds']:.1f} s "
        f"beyond the sweep, the random-weights extraction "
        f"{found.get('random_extract_seconds', 0.0):.1f} s.",
    ]
    return "\n".join(lines)


def plot_baselines(axes, found: dict) -> None:
    """The random-weights rows (dotted, per pool) and bag of words and majority (horizontal
    lines) on a sweep's accuracy-by-layer axes."""
    split = found["split"]
    for pool, colour in zip(POOL_NAMES, ("tab:blue", "tab:orange"), strict=True):
        rows = sorted(
            (
                r
                for r in found.get("random_weights", [])
                if r.get("pool") == pool and r.get(f"{split}_accuracy") is not None
            ),
            key=lambda r: r["layer"],
        )
        if rows:
            axes.plot(
                [r["layer"] for r in rows],
                [r[f"{split}_accuracy"] for r in rows],
                ":x",
                color=colour,
                markersize=3,
                label=f"{pool} random weights ({split})",
            )
    for key, name, colour in (
        ("bag_of_words", "bag of words", "tab:green"),
        ("majority", "majority", "grey"),
    ):
        axes.axhline(
            found[key][f"{split}_accuracy"],
            color=colour,
            linestyle="-.",
            linewidth=1,
            label=f"{name} ({split})",
        )
