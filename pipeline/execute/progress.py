"""Progress of a run: the interface the drivers report to, and a rich bar drawing it
(cells done / failed / running, and the ETA)."""

from __future__ import annotations

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


class Progress(Protocol):
    """Receives counts as cells start and end (`CellProgress` draws them as a rich bar)."""

    def update(self, done: int, failed: int, running: int, total: int) -> None: ...


class CellProgress:
    """Context manager implementing `Progress` on a rich progress bar."""

    def __init__(self, title: str, console: Console | None = None):
        self.bar = rich_progress.Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.bar.add_task(title, total=None, counts="")

    def __enter__(self) -> CellProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def update(self, done: int, failed: int, running: int, total: int) -> None:
        counts = f"done {done} · failed {failed} · running {running}"
        self.bar.update(self.task, completed=done + failed, total=total, counts=counts)
