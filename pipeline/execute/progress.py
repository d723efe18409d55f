"""Progress of a run: the interface the drivers report to, and its display: a rich bar on a
terminal (cells done / failed / running, and the ETA); elsewhere (a Slurm `.out` file, a
pod's log) one plain, time-stamped line every $PHASEGRID_PROGRESS_SECONDS (default 60)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Protocol

from rich import progress as rich_progress
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PROGRESS_ENV = "PHASEGRID_PROGRESS_SECONDS"
PROGRESS_DEFAULT_S = 60.0


class Progress(Protocol):
    """Receives counts as cells start and end (`CellProgress` draws them as a rich bar)."""

    def update(self, done: int, failed: int, running: int, total: int) -> None: ...


def progress_seconds() -> float:
    """Seconds between plain progress lines: $PHASEGRID_PROGRESS_SECONDS, else 60."""
    try:
        seconds = float(os.environ.get(PROGRESS_ENV, "") or PROGRESS_DEFAULT_S)
    except ValueError:
        seconds = PROGRESS_DEFAULT_S
    return seconds if seconds > 0 else PROGRESS_DEFAULT_S


class CellProgress:
    """Context manager implementing `Progress`: a rich bar on a terminal, else plain lines
    (see the module docstring). Nothing is shown before the first update, so an error
    found before any cell runs is not preceded by an empty bar."""

    def __init__(self, title: str, console: Console | None = None, every: float | None = None):
        self.title, self.console = title, console or Console(stderr=True)
        self.plain = not self.console.is_terminal
        self.every = every or progress_seconds()
        self.counts = (0, 0, 0, 0)
        self.started, self.start = False, time.monotonic()
        self.stop = threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True, name="progress-lines")
        self.bar = rich_progress.Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.bar.add_task(title, total=None, counts="")

    def __enter__(self) -> CellProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.started and self.plain:
            self.ticker.join(timeout=2)
            self._line()
        elif self.started:
            self.bar.stop()

    def update(self, done: int, failed: int, running: int, total: int) -> None:
        self.counts = (done, failed, running, total)
        if not self.started:
            self.started = True
            if self.plain:
                self._line()
                self.ticker.start()
            else:
                self.bar.start()
        if not self.plain:
            counts = f"done {done} · failed {failed} · running {running}"
            self.bar.update(self.task, completed=done + failed, total=total, counts=counts)

    def line(self) -> str:
        """The plain progress line of the counts so far."""
        done, failed, running, total = self.counts
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"{now} {self.title}: {done + failed}/{total} · done {done} · failed {failed} · "
            f"running {running} · {time.monotonic() - self.start:.0f} s"
        )

    def _line(self) -> None:
        self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def _tick(self) -> None:
        while not self.stop.wait(self.every):
            self._line()
