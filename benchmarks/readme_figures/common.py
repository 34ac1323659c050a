"""What every formatter shares: the results folder, the registry of blocks, numbers as the
README writes them."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
WIDTH = 95  # the README's prose line width
BLOCKS: dict[str, Callable[[Results], str]] = {}


class FigureError(Exception):
    """A block that cannot be rendered: unknown name, missing file or key."""


class Results:
    """The results folder; ``results("memory")`` is ``memory.json``, read once."""

    def __init__(self, folder: Path = RESULTS):
        self.folder = Path(folder)
        self._read: dict[str, object] = {}

    def has(self, name: str) -> bool:
        return (self.folder / f"{name}.json").is_file()

    def __call__(self, name: str):
        if name not in self._read:
            path = self.folder / f"{name}.json"
            if not path.is_file():
                raise FigureError(f"{path} is missing")
            self._read[name] = json.loads(path.read_text(encoding="utf-8"))
        return self._read[name]


def block(name: str):
    """Register a formatter as the block ``name``."""

    def register(formatter):
        BLOCKS[name] = formatter
        return formatter

    return register


def render_block(name: str, results: Results, formatters: Mapping[str, Callable] = BLOCKS) -> str:
    """The text of block ``name``; a missing file or key names the block."""
    if name not in formatters:
        raise FigureError(f"no formatter for block {name} (known: {', '.join(sorted(formatters))})")
    try:
        return formatters[name](results).strip("\n")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise FigureError(f"block {name}: {type(exc).__name__} {exc}") from None


# -- numbers as the README writes them ----------------------------------------------------------


def num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def sig(value: float, figures: int = 3) -> str:
    """``figures`` significant figures, never in exponent form: 1.48, 30.8, 1,295."""
    if value == 0:
        return "0"
    return num(value, max(0, figures - 1 - math.floor(math.log10(abs(value)))))


def times(value: float) -> str:
    """A ratio: 0.96x, 16.7x, 141x."""
    return f"{num(value, 2 if value < 10 else 1 if value < 100 else 0)}x"


def sci(value: float) -> str:
    """2.4e-5, as the README writes small differences."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def pct(fraction: float, digits: int = 1) -> str:
    return f"{100 * fraction:.{digits}f}%"


def interval(pair, digits: int = 3, sign: str = "") -> str:
    low, high = pair
    return f"[{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def span(values, digits: int = 1) -> str:
    """Smallest-largest of ``values``, or the one value if they print alike: 37.0-39.9."""
    low, high = num(min(values), digits), num(max(values), digits)
    return low if low == high else f"{low}-{high}"


def short_count(value: int) -> str:
    """1000 -> 1k, 2000000 -> 2M."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= size and value % size == 0:
            return f"{value // size}{suffix}"
    return num(value)


def cpu_name(text: str) -> str:
    """'cpu: Intel(R) Xeon(R) Processor (avx2, ...)' -> 'Intel Xeon'."""
    text = text.removeprefix("cpu: ").split(" (")[0]
    for noise in ("(R)", "(TM)", " Processor", " CPU"):
        text = text.replace(noise, "")
    return " ".join(text.split())


def is_shared(loads, cores: int | None = None, shared: bool | None = None) -> bool:
    """The benchmark's word if it wrote one; else a 1-minute load average above the cores + 0.5
    (bench_extract.py's rule; 2 cores where the file does not say) means other jobs ran beside
    it, so its times are upper bounds. ``loads`` are 1-minute averages or (1, 5, 15) triples."""
    if shared is not None:
        return shared
    return max(_one_minute(loads)) > (cores or 2) + 0.5


def _one_minute(loads) -> list[float]:
    return [load[0] if isinstance(load, list | tuple) else load for load in loads]


def machine(cpu: str, loads, cores: int | None = None, shared: bool | None = None) -> str:
    """'AMD EPYC, 2 cores, *shared*, load 27-33'."""
    state = "*shared*" if is_shared(loads, cores, shared) else "otherwise idle"
    counted = f", {cores} cores" if cores else ""
    return f"{cpu_name(cpu)}{counted}, {state}, load {span(_one_minute(loads), 0)}"


def results_file(name: str) -> str:
    return f"`benchmarks/results/{name}`"


def row_label(entry: dict) -> str:
    return f"layer {entry['layer']} {entry['pool']}"


def fill(text: str) -> str:
    """A paragraph inside a block of several: filled as the renderer fills a one-line block."""
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)
