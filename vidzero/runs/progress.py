"""Progress of long work: rich bars on a terminal, plain periodic lines in logs.

A run reports two counters, windows done and DDIM steps of the current window. On a terminal
they are rich bars; when stderr goes to a file or a pipe (a log, a batch system) they become one
plain line every `interval` seconds and one per finished window, so a log shows that the run is
alive and how far it got long before it ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def is_interactive(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def make_bars(console: Console | None = None, transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=transient,
    )


class RichRunProgress:
    """Two rich bars: windows of the run and DDIM steps of the current window."""

    def __init__(self, bars: Progress, label: str = "windows") -> None:
        self.bars = bars
        self.jobs = bars.add_task(label, total=None)
        self.steps = bars.add_task("steps", total=None)

    def job(self, done: int, total: int) -> None:
        self.bars.update(self.jobs, completed=done, total=total)
        self.bars.reset(self.steps)

    def step(self, done: int, total: int) -> None:
        self.bars.update(self.steps, completed=done, total=total)

    def close(self) -> None:
        self.bars.remove_task(self.jobs)
        self.bars.remove_task(self.steps)


class LineProgress:
    """Plain lines for logs: one per finished window, and one every `interval` seconds between."""

    def __init__(self, stream: TextIO | None = None, interval: float = 30.0, label: str = "") -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.label = f"{label}: " if label else ""
        self.start = self.last = time.monotonic()
        self.done = self.total = 0

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.start
        self.stream.write(f"{self.label}{text} ({elapsed:.0f} s)\n")
        self.stream.flush()
        self.last = time.monotonic()

    def job(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if done:
            rate = (time.monotonic() - self.start) / done
            self._line(f"window {done}/{total}, eta {rate * (total - done):.0f} s")

    def step(self, done: int, total: int) -> None:
        if time.monotonic() - self.last >= self.interval:
            self._line(f"window {self.done + 1}/{self.total}: step {done}/{total}")

    def close(self) -> None:
        pass


class ConsoleProgress:
    """What `progress=True` means: rich bars on a terminal, plain lines otherwise; started on the
    first report and closed by `close()`."""

    def __init__(self, label: str = "windows") -> None:
        self.label = label
        self._inner: Any = None
        self._bars: Progress | None = None

    def _ensure(self) -> Any:
        if self._inner is None:
            if is_interactive():
                self._bars = make_bars()
                self._bars.start()
                self._inner = RichRunProgress(self._bars, self.label)
            else:
                self._inner = LineProgress()
        return self._inner

    def job(self, done: int, total: int) -> None:
        self._ensure().job(done, total)

    def step(self, done: int, total: int) -> None:
        self._ensure().step(done, total)

    def close(self) -> None:
        if self._bars is not None:
            self._bars.stop()
        self._inner = self._bars = None


def progress_for(spec: Any) -> Any:
    """True: console progress; False/None: none; anything else: used as given."""
    if spec is True:
        return ConsoleProgress()
    if spec is False or spec is None:
        from vidzero.core.engine import NoProgress  # torch: only once a run is made

        return NoProgress()
    for method in ("job", "step"):
        if not callable(getattr(spec, method, None)):
            from vidzero.errors import BadInput

            raise BadInput(
                f"{{option}} must be True, False or an object with job() and step() methods, got {spec!r}", "progress"
            )
    return spec
