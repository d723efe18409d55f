"""Fan bundles of cells out to Ray and hand what they stream back to a `CellSink`.

Each bundle is one Ray task, a streaming generator (`num_returns="streaming"`) that runs
`train_cell` on each of its cells and yields, per cell: `AttemptStarted` (a fresh attempt
id, host, device), `MeasurementBatch`es while it trains (every `flush_seconds`), then one
`AttemptFinished` carrying the CellResult and *all* the attempt's measurements, or the
traceback of a Python exception. The driver consumes many generators with `ray.wait`, in
completion order, with a bounded number of tasks in flight.

Bundles (tasks/ensemble.py): cells of one shape that differ only in α̃ and seed train as
one batched ensemble where the measured cost model says it pays (on a GPU always; on a CPU
for small nets); a batched run that raises is retried cell by cell with `train_cell`.

Snapshots (pipeline/checkpoint.py): a cell with `checkpoint_every_seconds` streams
`SnapshotTaken` events; the driver stores them, and hands a cell's latest one to its next
attempt (`sink.resume_points`), which continues from it. Such cells (and any with a
snapshot to resume) train with `train_cell`, not in a batched ensemble.

Retries (a documented choice):
- A Python exception in a cell is caught in the task and reported as a failed cell: it is
  deterministic, a retry would fail the same way (`retry_exceptions=False`).
- A dead worker or node (a system failure) re-submits the bundle's unfinished cells, up to
  `resources.retries` times, as *new* attempts, one task per cell. Ray's own
  `max_retries` is not used (`max_retries=0`): Ray replays a streaming generator by index
  and skips the outputs the driver already consumed, so a retry that yields a different
  number of items (timing-dependent batches) silently loses its final result (measured
  with Ray 2.60).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
import uuid
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import ray

from pipeline.checkpoint import Snapshot
from pipeline.ray_setup import task_capacity
from tasks.records import CellResult, Measurement, TrainingState
from tasks.specs import CellSpec

# a running cell's measurements reach the store at this pace (env: for watching and tests)
FLUSH_SECONDS = float(os.environ.get("PHASEGRID_FLUSH_SECONDS", "2.0"))
POLL_SECONDS = 1.0  # how often the driver wakes up without news (heartbeats, progress)


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


class CellSink(Protocol):
    """What the driver does with the stream (pipeline/campaign.py writes it to the store)."""

    def started(self, event: AttemptStarted, spec: CellSpec) -> None: ...
    def batch(self, event: MeasurementBatch, spec: CellSpec) -> None: ...
    def finished(self, event: AttemptFinished, spec: CellSpec, attempts: int) -> None: ...
    def lost(self, spec: CellSpec, error: str, attempts: int) -> None: ...
    def tick(self) -> None: ...
    def snapshot(self, event: SnapshotTaken, spec: CellSpec) -> None: ...
    def resume_points(self, specs: list[CellSpec]) -> dict[str, Snapshot]: ...


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


def run_cell(
    spec: CellSpec, flush_seconds: float = FLUSH_SECONDS, resume: Snapshot | None = None
) -> Iterator[object]:
    """One attempt of one cell as stream events (runs inside the Ray task), continuing
    from `resume` if given (its measurements are the attempt's first ones)."""
    from tasks.train_cell import train_cell

    attempt_id = uuid.uuid4().hex[:12]
    yield AttemptStarted(
        spec.cell_id,
        attempt_id,
        socket.gethostname(),
        _device(spec),
        os.getpid(),
        datetime.now(timezone.utc),
        resume.state.step if resume else None,
    )
    everything: list[Measurement] = list(resume.measurements) if resume else []
    unsent = len(everything)
    last_flush, batches, result = time.monotonic(), 0, None
    try:
        for item in train_cell(spec, resume.state if resume else None):
            if isinstance(item, CellResult):
                result = item
                continue
            if isinstance(item, TrainingState):
                yield SnapshotTaken(spec.cell_id, attempt_id, item, tuple(everything))
                continue
            everything.append(item)
            unsent += 1
            if time.monotonic() - last_flush >= flush_seconds:
                yield MeasurementBatch(
                    spec.cell_id, attempt_id, batches, tuple(everything[-unsent:])
                )
                batches, unsent, last_flush = batches + 1, 0, time.monotonic()
        if result is None:
            raise RuntimeError("train_cell ended without yielding a CellResult")
        error = None
    except Exception:  # a cell's own failure: recorded, never retried (see module doc)
        error, result = traceback.format_exc(), None
    yield AttemptFinished(
        spec.cell_id, attempt_id, tuple(everything), result, error, datetime.now(timezone.utc)
    )


@dataclass
class _BatchedAttempt:
    """The attempts of a batched run: per member its id and measurements so far."""

    specs: list[CellSpec]
    ids: list[str]
    measured: list[list[Measurement]]
    sent: list[int]  # measurements already streamed
    batches: list[int]  # MeasurementBatch index
    done: set[int] = field(default_factory=set)

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


def run_batched(
    specs: list[CellSpec], flush_seconds: float = FLUSH_SECONDS
) -> Generator[object, None, list[CellSpec]]:
    """One attempt of each of ``specs`` trained together by `tasks.train_bundle` (one
    batched ensemble; a single fully-connected cell is its fast path), as stream events.
    Returns the cells it did not finish because the batched training raised: the caller
    retries them one by one (the batched traceback goes to this worker's log)."""
    from tasks.train_bundle import train_bundle

    n = len(specs)
    run = _BatchedAttempt(
        specs, [uuid.uuid4().hex[:12] for _ in specs], [[] for _ in specs], [0] * n, [0] * n
    )
    host, device, now = socket.gethostname(), _device(specs[0]), datetime.now(timezone.utc)
    for spec, attempt_id in zip(specs, run.ids):
        yield AttemptStarted(spec.cell_id, attempt_id, host, device, os.getpid(), now)
    last_flush = time.monotonic()
    try:
        for i, item in train_bundle(specs):
            if isinstance(item, CellResult):
                run.done.add(i)
                yield AttemptFinished(
                    specs[i].cell_id,
                    run.ids[i],
                    tuple(run.measured[i]),
                    item,
                    None,
                    datetime.now(timezone.utc),
                )
                continue
            run.measured[i].append(item)
            if time.monotonic() - last_flush >= flush_seconds:
                yield from run.flush()
                last_flush = time.monotonic()
    except Exception:  # retried cell by cell: a batched-only failure must not cost the cells
        logging.getLogger(__name__).warning(
            "batched training of %d cells failed; retrying them one by one:\n%s",
            n,
            traceback.format_exc(),
        )
    return [spec for i, spec in enumerate(specs) if i not in run.done]


def bundle_task(
    specs: list[CellSpec], flush_seconds: float, resumes: dict[str, Snapshot] | None = None
) -> Iterator[object]:
    """The body of one Ray task. Cells that `tasks.ensemble.training_plan` batches train
    as one ensemble (or alone on the fast path); the others, and any cell a batched run did
    not finish, one after the other with `train_cell` (the reference engine)."""
    from tasks.ensemble import training_plan
    from tasks.train_cell import resolve_device

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


@dataclass
class Flight:
    """A submitted bundle: its cells, which have finished, and its attempt number."""

    specs: list[CellSpec]
    attempt: int  # 1 for the first submission
    finished: set[str] = field(default_factory=set)

    def unfinished(self) -> list[CellSpec]:
        return [s for s in self.specs if s.cell_id not in self.finished]


def check_feasible(cpus_per_task: float, gpus_per_task: float) -> None:
    """Refuse, with the fix, a task shape the cluster can never place (it would hang)."""
    total = ray.cluster_resources()
    for name, need in (("CPU", cpus_per_task), ("GPU", gpus_per_task)):
        if need > total.get(name, 0.0):
            raise RuntimeError(
                f"each task asks for {need:g} {name} ([resources] {name.lower()}s_per_task) "
                f"but the Ray cluster has {total.get(name, 0.0):g}: lower it, or run on a "
                f"cluster with {name}s (--address)"
            )


def run_bundles(
    bundles: list[list[CellSpec]], resources, sink: CellSink, flush_seconds: float = FLUSH_SECONDS
) -> None:
    """Run every bundle on the connected Ray cluster, feeding `sink` as events arrive.
    `resources`: cpus_per_task, gpus_per_task, max_in_flight (None: 2x what fits), retries."""
    cpus, gpus = float(resources.cpus_per_task), float(resources.gpus_per_task)
    check_feasible(cpus, gpus)
    task = ray.remote(
        num_cpus=cpus,
        num_gpus=gpus,
        max_calls=0,
        max_retries=0,
        retry_exceptions=False,
        num_returns="streaming",
    )(bundle_task)
    limit = resources.max_in_flight or 2 * task_capacity(cpus, gpus)
    queue: deque[Flight] = deque(Flight(list(b), 1) for b in bundles)
    flying: dict = {}
    while queue or flying:
        while queue and len(flying) < limit:
            flight = queue.popleft()
            flying[task.remote(flight.specs, flush_seconds, sink.resume_points(flight.specs))] = (
                flight
            )
        ready, _ = ray.wait(list(flying), num_returns=1, timeout=POLL_SECONDS)
        for generator in ready:
            _advance(generator, flying, queue, resources.retries, sink)
        sink.tick()


def _advance(generator, flying: dict, queue: deque, retries: int, sink: CellSink) -> None:
    """Take the next event of one ready generator; on a system failure, retry or give up."""
    flight = flying[generator]
    specs = {s.cell_id: s for s in flight.specs}
    try:
        event = ray.get(next(generator))
    except StopIteration:
        del flying[generator]
        for spec in flight.unfinished():  # cannot happen unless the task body is changed
            sink.lost(spec, "the task ended without finishing this cell", flight.attempt)
        return
    except ray.exceptions.RayError as err:
        del flying[generator]
        _worker_died(flight, err, queue, retries, sink)
        return
    spec = specs[event.cell_id]
    if isinstance(event, AttemptStarted):
        sink.started(event, spec)
    elif isinstance(event, MeasurementBatch):
        sink.batch(event, spec)
    elif isinstance(event, SnapshotTaken):
        sink.snapshot(event, spec)
    else:
        flight.finished.add(event.cell_id)
        sink.finished(event, spec, flight.attempt)


def _worker_died(
    flight: Flight, err: Exception, queue: deque, retries: int, sink: CellSink
) -> None:
    remaining = flight.unfinished()
    deterministic = isinstance(err, ray.exceptions.RayTaskError)
    if remaining and not deterministic and flight.attempt <= retries:
        # one task per cell: a bundle that killed its worker (e.g. out of memory) is split
        queue.extendleft(Flight([spec], flight.attempt + 1) for spec in reversed(remaining))
        return
    why = (
        "the task raised outside train_cell"
        if deterministic
        else f"the worker died {flight.attempt} time(s) (retries = {retries})"
    )
    for spec in remaining:
        sink.lost(spec, f"{why}: {type(err).__name__}: {err}", flight.attempt)
