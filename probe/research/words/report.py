"""What a word-level sweep adds to the sentence-level table: words, selectivity intervals and
the selected layer's per-class F1 (with each class's word count)."""

from __future__ import annotations


def word_fields(data) -> dict:
    """The word-level facts a sweep's JSON records next to its rows."""
    return {"unit": "word", "task": data.task, "word_pool": data.word_pool, **data.notes}


def word_markdown(result: dict) -> str:
    """Markdown lines appended to ``markdown_table``'s."""
    words = result.get("words", {})
    sentences = result.get("sentences", {})
    lines = [
        "",
        f"Task {result.get('task')}, word pool {result.get('word_pool')}; words "
        + ", ".join(
            f"{name} {n} ({sentences.get(name, '?')} sentences)" for name, n in words.items()
        )
        + f"; {result.get('unaligned_words', 0)} words without tokens left out. "
        "Intervals resample sentences.",
    ]
    rows = [r for r in result["entries"] if r.get("selectivity_ci")]
    if rows:
        lines += [
            "",
            "| layer | control acc | task acc (same words) | selectivity [95% CI] | words |",
            "|---|---|---|---|---|",
        ]
        for row in rows:
            low, high = row["selectivity_ci"]
            lines.append(
                f"| {row['layer']} | {row['control_accuracy']:.4f} | "
                f"{row.get('control_task_accuracy', float('nan')):.4f} | "
                f"{row['selectivity']:+.4f} [{low:+.3f}, {high:+.3f}] | "
                f"{row.get('control_words', 0)} |"
            )
        lines.append(
            "Control task: one label per word type (Hewitt & Liang 2019), scored on "
            "held-out words whose type occurs in training."
        )
    best = result["best"]
    report = best.get("test") or best.get("val")
    if report and report.get("per_class"):
        split = "test" if best.get("test") else "val"
        lines += [
            "",
            f"Per-class F1, layer {best['layer']} ({split}):",
            "",
            "| class | words | precision | recall | F1 |",
            "|---|---|---|---|---|",
        ]
        ordered = sorted(report["per_class"].items(), key=lambda kv: -kv[1]["support"])
        for name, row in ordered:
            lines.append(
                f"| {name} | {row['support']} | {row['precision']:.4f} | "
                f"{row['recall']:.4f} | {row['f1']:.4f} |"
            )
    return "\n".join(lines)
