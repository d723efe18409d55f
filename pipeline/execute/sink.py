"""The store sink: the scheduler's events written to the campaign store, with provenance.

A finished cell's commit (and the deletion of its live rows and snapshot) runs on the
commit pool (pipeline/execute/commit_pool.py), so commits of different cells overlap; the
sink is a context manager whose exit waits for every commit in flight. `done` and
`failed` count cells whose commit has completed."""

from __future__ import annotations

import functools
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.execute.commit_pool import CommitPool
from pipeline.execute.progress import Progress
from pipeline.execute.stream import AttemptFinished, AttemptStarted, MeasurementBatch, SnapshotTaken
from pipeline.store import snapshots as checkpoint
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.rows import (
    Provenance,
    done_tables,
    failed_cell_table,
    measurements_table,
    utc_now,
)
from tasks.specs import CellSpec

HEARTBEAT_SECONDS = 10.0  # live attempts are touched this often (status: "running")


@functools.cache
def code_version() -> str:
    """The phasegrid version and `git describe` of its source, stored with every cell."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = f"phasegrid {version('phasegrid')}"
    except PackageNotFoundError:
        text = "phasegrid (not installed)"
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return f"{text} ({described})" if described else text
    except (OSError, subprocess.SubprocessError):
        return text


class StoreSink:
    """The scheduler's events, written to the store (pipeline.execute.scheduler.CellSink)."""

    def __init__(
        self,
        store: ParquetStore,
        prior_attempts: dict[str, int],
        total: int,
        progress: Progress | None,
        commit_concurrency: int = 1,
    ):
        self.store, self.prior, self.total, self.progress = store, prior_attempts, total, progress
        self.current: dict[str, AttemptStarted] = {}
        self.done = self.failed = 0
        self.last_beat = time.monotonic()
        self.commits = CommitPool(commit_concurrency)

    def __enter__(self) -> StoreSink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close(raise_errors=kind is None)

    def close(self, raise_errors: bool = True) -> None:
        """Wait for every commit in flight (see CommitPool.close)."""
        self.commits.close(raise_errors)
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            running = len(self.current) + self.commits.in_flight  # committing: not done yet
            self.progress.update(self.done, self.failed, running, self.total)

    def started(self, event: AttemptStarted, spec: CellSpec) -> None:
        self.commits.wait_for(event.cell_id)  # an earlier commit of the cell goes first
        self.current[event.cell_id] = event
        self.store.start_attempt(event.cell_id, event.attempt_id, asdict(event))
        self._report()

    def batch(self, event: MeasurementBatch, spec: CellSpec) -> None:
        current = self.current.get(event.cell_id)
        if current is None or current.attempt_id != event.attempt_id:
            return  # a batch of an attempt that is no longer the cell's current one
        self.store.write_live_part(
            event.cell_id,
            event.attempt_id,
            event.index,
            measurements_table(spec, list(event.measurements)),
        )

    def finished(self, event: AttemptFinished, spec: CellSpec, attempts: int) -> None:
        started = self.current.pop(event.cell_id, None)
        run = Provenance(
            event.attempt_id,
            self.prior.get(spec.cell_id, 0) + attempts,
            started.host if started else None,
            started.device if started else None,
            code_version(),
            started.started_at if started else None,
            event.finished_at,
            started.versions if started else {},
        )
        error, result = event.error, event.result
        if error is None and result is None:
            error = "the attempt finished with neither a result nor an error"
        if error is None and result is not None:
            try:
                tables = done_tables(spec, result, list(event.measurements), run)
            except Exception as err:  # a result that does not fit the schema: a failure
                error = f"storing the result failed: {type(err).__name__}: {err}"
        if error is not None:
            tables = {"cells": failed_cell_table(spec, error, run)}
        self._commit(spec.cell_id, tables, done=error is None, snapshot_too=True)

    def _commit(self, cell_id: str, tables: dict[str, Any], done: bool, snapshot_too: bool) -> None:
        """The cell's commit (`tables`: name -> pyarrow Table, from pipeline.store.rows),
        then its live rows (and snapshot) deleted, on the pool; the cell is counted when
        that has completed."""

        def work() -> None:
            self.store.commit(cell_id, tables)
            self.store.delete_live(cell_id)
            if snapshot_too:
                checkpoint.delete_snapshot(self.store, cell_id)

        def after() -> None:
            self.done, self.failed = self.done + done, self.failed + (not done)
            self._report()

        self.commits.submit(cell_id, work, after)

    def lost(self, spec: CellSpec, error: str, attempts: int) -> None:
        started = self.current.pop(spec.cell_id, None)
        run = Provenance(
            started.attempt_id if started else "",
            self.prior.get(spec.cell_id, 0) + attempts,
            started.host if started else None,
            started.device if started else None,
            code_version(),
            started.started_at if started else None,
            utc_now(),
            started.versions if started else {},
        )
        tables = {"cells": failed_cell_table(spec, error, run)}
        self._commit(spec.cell_id, tables, done=False, snapshot_too=False)

    def snapshot(self, event: SnapshotTaken, spec: CellSpec) -> None:
        current = self.current.get(event.cell_id)
        if current is not None and current.attempt_id == event.attempt_id:
            checkpoint.save_snapshot(
                self.store, spec.cell_id, checkpoint.Snapshot(event.state, event.measurements)
            )

    def resume_points(self, specs: list[CellSpec]) -> dict[str, checkpoint.Snapshot]:
        """The stored snapshot of each cell that has one (kept when a cell is lost, so a
        later resume continues it too)."""
        found = {s.cell_id: checkpoint.load_snapshot(self.store, s.cell_id) for s in specs}
        return {cell: snapshot for cell, snapshot in found.items() if snapshot is not None}

    def tick(self) -> None:
        self.commits.collect()
        if time.monotonic() - self.last_beat < HEARTBEAT_SECONDS:
            return
        self.last_beat = time.monotonic()
        for event in self.current.values():
            self.store.heartbeat(event.cell_id, event.attempt_id)
