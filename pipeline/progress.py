"""A rich progress bar for run/resume: cells done / failed / running, and the ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class CellProgress:
    """Context manager implementing pipeline.campaign.Progress on a rich Progress."""

    def __init__(self, title: str, console: Console | None = None):
        self.bar = Progress(
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

    def __enter__(self) -> "CellProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def update(self, done: int, failed: int, running: int, total: int) -> None:
        counts = f"done {done} · failed {failed} · running {running}"
        self.bar.update(self.task, completed=done + failed, total=total, counts=counts)
