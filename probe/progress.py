"""Progress for long jobs: a bar on a terminal, a widget in a notebook, plain lines elsewhere.

A job whose stderr is a file, a pipe or a CI log is never silent: every ``interval``
seconds it prints ``desc: done/total unit (pct), rate/s, ETA`` as one line, and a last line
when it ends. On a terminal it is a tqdm bar. In a Jupyter kernel (stderr is no terminal
there, but a frontend shows live output) it is tqdm's notebook widget where ``ipywidgets``
is installed, else the plain lines: a text bar would redraw into the saved notebook's
output hundreds of times. ``quiet`` turns all off. The interval is
``PROBE_PROGRESS_INTERVAL`` seconds when that is set (tests set it small), else 5.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

LINE_INTERVAL_S = 5.0
ETA_MIN_SHARE = 0.05  # no ETA before 5% of the work is done ...
ETA_MIN_SECONDS = 10.0  # ... and 10 s have passed: a first rate is mostly start-up
MAX_SAMPLES = 256  # (time, done) pairs kept for the ETA's window


def line_interval() -> float:
    """Seconds between plain progress lines: ``$PROBE_PROGRESS_INTERVAL`` or 5."""
    try:
        return max(float(os.environ.get("PROBE_PROGRESS_INTERVAL", LINE_INTERVAL_S)), 0.0)
    except ValueError:
        return LINE_INTERVAL_S


class Progress:
    """``update(n)`` as work is done; ``close()`` (or a ``with`` block) when it ends."""

    def __init__(
        self,
        total: float,
        desc: str,
        unit: str = "it",
        quiet: bool = False,
        stream=None,
        interval: float | None = None,
        workers: int = 1,
        clock=time.perf_counter,
    ):
        self.total, self.desc, self.unit = float(total), desc, unit
        self.workers = max(int(workers), 1)  # items in progress at once (parallel jobs)
        self.stream = stream or sys.stderr
        self.interval = line_interval() if interval is None else interval
        self.done = 0.0
        self.clock = clock
        self.started = self._last_line = clock()
        self._samples: list[tuple[float, float]] = []  # (time, done) at updates, for the ETA
        self._closed = False
        self._postfix = ""
        self._bar = None
        self.mode = progress_mode(self.stream, quiet)
        self._lines = self.mode == "lines"
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=True,
                file=self.stream,
                dynamic_ncols=True,
            )
        elif self.mode == "widget":
            from tqdm.notebook import tqdm as notebook_tqdm

            self._bar = notebook_tqdm(total=total, desc=desc, unit=unit, unit_scale=True)

    def update(self, amount: float = 1) -> None:
        self.done += amount
        now = self.clock()
        self._samples.append((now, self.done))
        if len(self._samples) > 2 * MAX_SAMPLES:  # every other one: the window needs no more
            self._samples = self._samples[::2]
        if self._bar is not None:
            self._bar.update(amount)
        elif self._lines and now - self._last_line >= self.interval:
            self._print_line()

    def set_postfix(self, refresh: bool = False, **values) -> None:
        """Extra figures (``loss=0.31``) shown after the bar, or at the end of each line."""
        self._postfix = ", ".join(f"{key} {value}" for key, value in values.items())
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=refresh)

    def set_total(self, total: float) -> None:
        """A better estimate of the total (extraction knows its tokens chunk by chunk)."""
        self.total = float(round(total))
        if self._bar is not None:
            self._bar.total = self.total
            if self.mode == "widget":  # the widget's bar keeps a maximum of its own
                self._bar.container.children[1].max = self.total
            self._bar.refresh()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self._lines:
            self.total = max(self.total, self.done)  # an estimated total ends exact
            self._print_line(final=True)

    def line(self, final: bool = False) -> str:
        """``extract: 1200/5000 tok (24%), 410 tok/s, ETA 9 s`` (the ETA once ``eta`` has one)."""
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        text = f"{self.desc}: {_count(self.done)}/{_count(self.total)} {self.unit}{share}, "
        text += f"{_rate(rate)} {self.unit}/s"
        text += f", {self._postfix}" if self._postfix else ""
        if final:
            return text + f", done in {elapsed:.1f} s"
        left = self.eta()
        return text + (f", ETA {left:.0f} s" if left is not None else "")

    def eta(self) -> float | None:
        """Seconds left, or None until the work done says enough: ``ETA_MIN_SHARE`` of the
        total, ``ETA_MIN_SECONDS`` of running, and an item of each of the ``workers`` plus one.

        The pace is the recent one: from the last update at or before half the time since the
        first update, to now. What came before (loading a model, starting workers, a first
        burst of cheap items) would pull an average over the whole run far off: such an
        average once put the first ETA of a job of about 700 s at 6,197 s.
        """
        now = self.clock()
        if self.done >= self.total or len(self._samples) <= self.workers:
            return None
        if self.done < ETA_MIN_SHARE * self.total or now - self.started < ETA_MIN_SECONDS:
            return None
        first = self._samples[0][0]
        middle = first + (now - first) / 2
        since, done_then = next(s for s in reversed(self._samples) if s[0] <= middle)
        pace = (self.done - done_then) / max(now - since, 1e-9)
        return (self.total - self.done) / pace if pace > 0 else None

    def _print_line(self, final: bool = False) -> None:
        self._last_line = self.clock()
        print(self.line(final), file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_mode(stream, quiet: bool = False) -> str:
    """How progress shows on ``stream`` here: ``off``, ``bar``, ``widget`` or ``lines``."""
    widgets = importlib.util.find_spec("ipywidgets") is not None
    return choose_mode(quiet, _is_terminal(stream), in_notebook(), widgets)


def choose_mode(quiet: bool, terminal: bool, notebook: bool, widgets: bool) -> str:
    """The rule: quiet is off; a notebook kernel gets the widget (with ``ipywidgets``) or
    plain lines; else a terminal gets a bar and anything else (logs, pipes) plain lines."""
    if quiet:
        return "off"
    if notebook:
        return "widget" if widgets else "lines"
    return "bar" if terminal else "lines"


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel: ipykernel loaded and its shell running (the
    test tqdm.autonotebook makes; a terminal IPython has no ``IPKernelApp``)."""
    ipython = sys.modules.get("IPython")
    if "ipykernel" not in sys.modules or ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _rate(value: float) -> str:
    """A rate with two significant digits below 10 (``0.034 heads/s``, not ``0.0``)."""
    if value >= 10 or value == 0:
        return _count(value)
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or float(value).is_integer() else f"{value:.1f}"
