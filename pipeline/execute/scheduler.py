"""Fan bundles of cells out to Ray and hand what they stream back to a `CellSink`.

Each bundle is one Ray task, a streaming generator (`num_returns="streaming"`) running
`pipeline.execute.stream.bundle_task`, which yields per cell `AttemptStarted`,
`MeasurementBatch`es, `SnapshotTaken`s and one `AttemptFinished`. The driver consumes many
generators with `ray.wait`, in completion order, with a bounded number of tasks in flight.
`RayExecutor` is this module behind the executor interface (pipeline.execute.local has the
in-process one).

Bundles (tasks/bundling.py): cells of one shape that differ only in α̃ and seed train as
one batched ensemble where the measured cost model says it pays (on a GPU always; on a CPU
for small nets); a batched run that raises is retried cell by cell with `train_cell`.

Snapshots (pipeline/store/snapshots.py): a cell with `checkpoint_every_seconds` streams
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

from collections import deque
from dataclasses import dataclass, field

import ray

from pipeline.execute.ray_session import RaySession, start_ray, task_capacity
from pipeline.execute.stream import FLUSH_SECONDS, AttemptFinished, CellSink, bundle_task, deliver
from pipeline.spec.schema import Resources
from tasks.specs import CellSpec

POLL_SECONDS = 1.0  # how often the driver wakes up without news (heartbeats, progress)


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
    bundles: list[list[CellSpec]],
    resources: Resources,
    sink: CellSink,
    flush_seconds: float = FLUSH_SECONDS,
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
            # ray's stubs count a default parameter as absent (RemoteFunction1): a stub gap
            flying[
                task.remote(
                    flight.specs,
                    flush_seconds,  # type: ignore[call-arg]
                    sink.resume_points(flight.specs),
                )
            ] = flight
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
    if isinstance(event, AttemptFinished):
        flight.finished.add(event.cell_id)
    deliver(event, specs[event.cell_id], sink, flight.attempt)


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


class RayExecutor:
    """Runs bundles as Ray tasks. One Ray session per executor: connected (`start_ray`) at
    the first bundle, so a run with nothing to do never starts Ray; closed on exit."""

    def __init__(self, address: str | None = None):
        self.address = address
        self.session: RaySession | None = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, bundles: list[list[CellSpec]], resources: Resources, sink: CellSink) -> None:
        if self.session is None:
            self.session = start_ray(self.address)
        run_bundles(bundles, resources, sink)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
