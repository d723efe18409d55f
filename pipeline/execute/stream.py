"""What one task streams back: attempt events, and the one adaptor that turns what the
engines yield into them.

`bundle_task` is the body of a task (a Ray task, or `LocalExecutor` in process): per cell
it yields `AttemptStarted` (a fresh attempt id, host, device), `MeasurementBatch`es while
the cell trains (every `flush_seconds`), `SnapshotTaken` for cells that checkpoint, then
one `AttemptFinished` with the CellResult and *all* the attempt's measurements, or the
traceback of a Python exception. Both engines (`tasks.train_cell`, `tasks.train_bundle`)
go through the same `Attempts` adaptor: a single cell is an attempt group of one.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pipeline.spec.schema import Resources
from pipeline.store.snapshots import Snapshot
from tasks.records import CellResult, Measurement, TrainingState
from tasks.specs import CellSpec

# a running cell's measurements reach the store at this pace (env: for watching and tests)
FLUSH_SECONDS = float(os.environ.get("PHASEGRID_FLUSH_SECONDS", "2.0"))


@dataclass(frozen=True)
class AttemptStarted:
    cell_id: str
    attempt_id: str
    host: str
    device: str
    pid: int
    started_at: datetime
    resumed_step: int | None = None  # the snapshot's step this attempt continues from


@dataclass(frozen=True)
class MeasurementBatch:
    cell_id: str
    attempt_id: str
    index: int  # 0, 1, ... within the attempt
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class AttemptFinished:
    cell_id: str
    attempt_id: str
    measurements: tuple[Measurement, ...]  # every measurement of this attempt
    result: CellResult | None  # None when error is set
    error: str | None  # traceback of a Python exception
    finished_at: datetime


@dataclass(frozen=True)
class SnapshotTaken:
    cell_id: str
    attempt_id: str
    state: TrainingState
    measurements: tuple[Measurement, ...]  # every measurement of the cell before `state`


Event = AttemptStarted | MeasurementBatch | AttemptFinished | SnapshotTaken


class CellSink(Protocol):
    """What the driver does with the stream (pipeline.execute.sink writes it to the store)."""

    def started(self, event: AttemptStarted, spec: CellSpec) -> None: ...
    def batch(self, event: MeasurementBatch, spec: CellSpec) -> None: ...
    def finished(self, event: AttemptFinished, spec: CellSpec, attempts: int) -> None: ...
    def lost(self, spec: CellSpec, error: str, attempts: int) -> None: ...
    def tick(self) -> None: ...
    def snapshot(self, event: SnapshotTaken, spec: CellSpec) -> None: ...
    def resume_points(self, specs: list[CellSpec]) -> dict[str, Snapshot]: ...


class Executor(Protocol):
    """Runs bundles of cells and feeds their events to `sink`: `RayExecutor` on a Ray
    session, `LocalExecutor` in this process."""

    def run(self, bundles: list[list[CellSpec]], resources: Resources, sink: CellSink) -> None: ...


def deliver(event: Event, spec: CellSpec, sink: CellSink, attempt: int) -> None:
    """Hand one stream event to the sink's matching method."""
    if isinstance(event, AttemptStarted):
        sink.started(event, spec)
    elif isinstance(event, MeasurementBatch):
        sink.batch(event, spec)
    elif isinstance(event, SnapshotTaken):
        sink.snapshot(event, spec)
    elif isinstance(event, AttemptFinished):
        sink.finished(event, spec, attempt)


def _device(spec: CellSpec) -> str:
    """What the cell trains on, as stored in the `device` column."""
    import torch

    wanted = spec.observables.device
    if wanted == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        return "cpu" if wanted == "auto" else f"{wanted} (not available on this worker)"
    index = torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


class Attempts:
    """One attempt of each of `specs` (trained together or alone), as stream events: the
    measurements so far per member, which were streamed, and the flush clock."""

    def __init__(self, specs: list[CellSpec], flush_seconds: float, resume: Snapshot | None = None):
        self.specs, self.flush_seconds = specs, flush_seconds
        self.ids = [uuid.uuid4().hex[:12] for _ in specs]
        # a resumed attempt's first measurements are its snapshot's (streamed with the first batch)
        self.measured: list[list[Measurement]] = [
            list(resume.measurements) if resume else [] for _ in specs
        ]
        self.sent = [0] * len(specs)
        self.batches = [0] * len(specs)
        self.done: set[int] = set()
        self.resumed_step = resume.state.step if resume else None
        self.last_flush = time.monotonic()

    def started(self) -> Iterator[AttemptStarted]:
        host, device, now = socket.gethostname(), _device(self.specs[0]), datetime.now(UTC)
        for spec, attempt_id in zip(self.specs, self.ids):
            yield AttemptStarted(
                spec.cell_id, attempt_id, host, device, os.getpid(), now, self.resumed_step
            )
        self.last_flush = time.monotonic()

    def measured_one(self, i: int, item: Measurement) -> Iterator[MeasurementBatch]:
        """Record member `i`'s measurement; stream every unsent one when the clock says so."""
        self.measured[i].append(item)
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            yield from self.flush()
            self.last_flush = time.monotonic()

    def flush(self) -> Iterator[MeasurementBatch]:
        """A MeasurementBatch of each unfinished member with unsent measurements."""
        for j, spec in enumerate(self.specs):
            if j not in self.done and self.sent[j] < len(self.measured[j]):
                yield MeasurementBatch(
                    spec.cell_id,
                    self.ids[j],
                    self.batches[j],
                    tuple(self.measured[j][self.sent[j] :]),
                )
                self.sent[j], self.batches[j] = len(self.measured[j]), self.batches[j] + 1

    def snapshot(self, i: int, state: TrainingState) -> SnapshotTaken:
        return SnapshotTaken(self.specs[i].cell_id, self.ids[i], state, tuple(self.measured[i]))

    def finished(self, i: int, result: CellResult | None, error: str | None) -> AttemptFinished:
        self.done.add(i)
        return AttemptFinished(
            self.specs[i].cell_id,
            self.ids[i],
            tuple(self.measured[i]),
            result,
            error,
            datetime.now(UTC),
        )

    def unfinished(self) -> list[CellSpec]:
        return [spec for i, spec in enumerate(self.specs) if i not in self.done]


def run_cell(
    spec: CellSpec, flush_seconds: float = FLUSH_SECONDS, resume: Snapshot | None = None
) -> Iterator[Event]:
    """One attempt of one cell as stream events (runs inside the task), continuing from
    `resume` if given (its measurements are the attempt's first ones)."""
    from tasks.train_cell import train_cell

    attempt = Attempts([spec], flush_seconds, resume)
    yield from attempt.started()
    result = None
    try:
        for item in train_cell(spec, resume.state if resume else None):
            if isinstance(item, CellResult):
                result = item
            elif isinstance(item, TrainingState):
                yield attempt.snapshot(0, item)
            else:
                yield from attempt.measured_one(0, item)
        if result is None:
            raise RuntimeError("train_cell ended without yielding a CellResult")
        error = None
    except Exception:  # a cell's own failure: recorded, never retried (pipeline.execute)
        error, result = traceback.format_exc(), None
    yield attempt.finished(0, result, error)


def run_batched(
    specs: list[CellSpec], flush_seconds: float = FLUSH_SECONDS
) -> Generator[Event, None, list[CellSpec]]:
    """One attempt of each of ``specs`` trained together by `tasks.train_bundle` (one
    batched ensemble; a single fully-connected cell is its fast path), as stream events.
    Returns the cells it did not finish because the batched training raised: the caller
    retries them one by one (the batched traceback goes to this worker's log)."""
    from tasks.train_bundle import train_bundle

    attempt = Attempts(specs, flush_seconds)
    yield from attempt.started()
    try:
        for i, item in train_bundle(specs):
            if isinstance(item, CellResult):
                yield attempt.finished(i, item, None)
            else:
                yield from attempt.measured_one(i, item)
    except Exception:  # retried cell by cell: a batched-only failure must not cost the cells
        logging.getLogger(__name__).warning(
            "batched training of %d cells failed; retrying them one by one:\n%s",
            len(specs),
            traceback.format_exc(),
        )
    return attempt.unfinished()


def bundle_task(
    specs: list[CellSpec], flush_seconds: float, resumes: dict[str, Snapshot] | None = None
) -> Iterator[Event]:
    """The body of one task. Cells that `tasks.bundling.training_plan` batches train as
    one ensemble (or alone on the fast path); the others, and any cell a batched run did
    not finish, one after the other with `train_cell` (the reference engine)."""
    from tasks.bundling import training_plan
    from tasks.cell import resolve_device

    resumes = resumes or {}
    snapshotting = [s for s in specs if s.checkpoint_every_seconds or s.cell_id in resumes]
    others = [s for s in specs if s not in snapshotting]
    groups, alone = training_plan(others, resolve_device(specs[0].observables.device))
    for spec in snapshotting:
        yield from run_cell(spec, flush_seconds, resumes.get(spec.cell_id))
    for group in groups:
        alone += yield from run_batched(group, flush_seconds)
    for spec in alone:
        yield from run_cell(spec, flush_seconds)
