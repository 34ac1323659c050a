"""The one way probe draws a figure: headless matplotlib, one size and resolution, atomic PNG.

Sweep plots, learning curves and the comparison all go through here, so they look alike and
none of them opens a display (``Agg``) or leaves a half-written PNG behind.
"""

from __future__ import annotations

from pathlib import Path


def new_figure(rows: int = 1, columns: int = 1, size: tuple[float, float] = (8, 4.5)):
    """(figure, axes) from pyplot on the headless backend; matplotlib is imported here only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, columns, figsize=size)


def save_png(figure, path: str | Path) -> Path:
    """Lay out, write atomically at 120 dpi, and free the figure."""
    import matplotlib.pyplot as plt

    from probe.files import atomic_path

    path = Path(path)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as staging:
        figure.savefig(staging, dpi=120, format="png")
    plt.close(figure)
    return path
