"""One cell, start to finish: `train_cell(spec)` yields Measurements, then one CellResult.

No I/O, no printing, no global seeding: the data come from `tasks.data.load_task` (its
own seeds), the initial weights from a generator derived from ``spec.seed``, minibatches
(if any) from another. The same spec gives the same numbers (wall times aside).

Cost per accepted full-batch step: one forward+backward (the flow reuses the trial's
gradient), plus one host sync for N_Δ; observables only at log-spaced checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from tasks.cell import Cell, derived_generator, prepare_cell
from tasks.cell_records import final_result, measure
from tasks.flow import (
    AcrossKink,
    Evaluate,
    FlowState,
    Forward,
    advance,
    rebatch,
    start_flow,
    stop_reason,
)
from tasks.losses import unsatisfied_margins
from tasks.observables import chunked_outputs, next_checkpoint
from tasks.records import CellResult, Measurement, TrainingState
from tasks.specs import CellSpec


def train_cell(
    spec: CellSpec, resume_from: TrainingState | None = None
) -> Iterator[Measurement | CellResult | TrainingState]:
    """Train one cell by the adaptive gradient flow; yield a `Measurement` at each
    log-spaced checkpoint (always including steps 0 and the last), then one `CellResult`.
    With ``spec.checkpoint_every_seconds`` set, also a `TrainingState` that often (wall
    clock); ``resume_from`` (one of those) continues the same trajectory from it."""
    yield from run_cell(prepare_cell(spec), resume_from=resume_from)


def _evaluator(cell: Cell, batch: Tensor | None) -> Evaluate:
    """θ ↦ (∇L̃, f) on the full train set (batch None) or on the indices ``batch``."""
    if batch is None:
        return cell.objective
    return lambda theta: cell.objective(theta, batch)


def _forward(cell: Cell, batch: Tensor | None) -> Forward:
    """θ ↦ f on the same points as `_evaluator` (no autograd): euler-heun's error estimate."""
    objective = cell.objective
    x, initial = objective.x, objective.initial_outputs
    if batch is not None:
        x, initial = x[batch], initial[batch]

    def forward(theta: Tensor) -> Tensor:
        with torch.no_grad():
            return objective.outputs(theta, x, initial)

    return forward


def _across_kink(cell: Cell, batch: Tensor | None) -> AcrossKink | None:
    """The flow's kink continuation on the same batch, for a kinked loss only."""
    if not cell.objective.kinked:
        return None
    return lambda theta, old, new: cell.objective.across_kink(theta, old, new, batch)


def run_cell(
    cell: Cell, state: FlowState | None = None, resume_from: TrainingState | None = None
) -> Iterator[Measurement | CellResult | TrainingState]:
    """Run the flow of ``cell`` from θ₀; or continue it from a full-batch ``state`` (then
    measured from the next scheduled checkpoint after its step on, wall seconds from 0);
    or from a snapshot ``resume_from`` (exactly: the same later records as without the
    interruption, wall seconds aside). Yields as `train_cell`."""
    flow = cell.spec.flow
    batches = _Batches(cell, resume_from)
    clock = _Clock(cell.spec.checkpoint_every_seconds, resume_from)
    batch = batches.current
    last = resume_from.last_measurement if resume_from is not None else None
    if resume_from is not None:  # measured again after the snapshot's last one
        state = _restored(cell, resume_from)
        checkpoint = next_checkpoint(last.step, flow.checkpoints_per_decade) if last else 0
    elif state is None:
        state, checkpoint = start_flow(cell.theta0, _evaluator(cell, batch), flow), 0
    else:
        checkpoint = next_checkpoint(state.step, flow.checkpoints_per_decade)
    while True:
        train_outputs = _train_outputs(cell, state, batch)
        n_unsat = unsatisfied_margins(cell.task.y_train * train_outputs)
        reason = stop_reason(state, n_unsat, flow, clock.wall())
        if (state.step >= checkpoint or reason) and (last is None or last.step != state.step):
            last = measure(cell, state, train_outputs, clock.wall())
            yield last
            checkpoint = next_checkpoint(state.step, flow.checkpoints_per_decade)
        if reason:
            break
        if clock.snapshot_due():
            yield _snapshot(state, batches, clock.wall(), last)
        state = advance(
            state, _evaluator(cell, batch), flow, _across_kink(cell, batch), _forward(cell, batch)
        )
        if batch is not None:  # a minibatch flow moves to a fresh batch after each step
            batch = batches.draw()
            state = rebatch(state, _evaluator(cell, batch))
    assert last is not None  # measured at the stop above, or already
    yield final_result(cell, state, reason, last, train_outputs)


class _Batches:
    """Minibatch indices from the cell's "batch" generator (uniform without replacement
    within a batch), or None for a full-batch flow; ``current`` is the batch in use."""

    def __init__(self, cell: Cell, resume_from: TrainingState | None):
        self.size, self.n = cell.spec.flow.batch_size, cell.task.x_train.shape[0]
        self.device = cell.task.x_train.device
        self.generator = derived_generator(cell.spec.seed, "batch")
        if resume_from is None:
            self.current = self.draw()
            return
        self.generator.set_state(torch.from_numpy(resume_from.batch_generator_state.copy()))
        saved = resume_from.batch
        self.current = None if saved is None else torch.from_numpy(saved.copy()).to(self.device)

    def draw(self) -> Tensor | None:
        """The next batch (indices [B]), or None in a full-batch flow (draws nothing)."""
        if self.size is None or self.size >= self.n:
            self.current = None
        else:
            self.current = torch.randperm(self.n, generator=self.generator)[: self.size].to(
                self.device
            )
        return self.current


class _Clock:
    """Training wall time (continuing a snapshot's) and when the next snapshot is due."""

    def __init__(self, every: float | None, resume_from: TrainingState | None):
        self.every = every
        self.start = time.perf_counter() - (resume_from.wall_seconds if resume_from else 0.0)
        self.saved = time.perf_counter()

    def wall(self) -> float:
        return time.perf_counter() - self.start

    def snapshot_due(self) -> bool:
        """True (and the countdown restarts) once ``every`` seconds passed since the last."""
        if self.every is None or time.perf_counter() - self.saved < self.every:
            return False
        self.saved = time.perf_counter()
        return True


def _host(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def _snapshot(
    state: FlowState, batches: _Batches, wall_seconds: float, last: Measurement | None
) -> TrainingState:
    """The loop's state as host arrays (one device sync)."""
    batch = None if batches.current is None else _host(batches.current)
    return TrainingState(
        state.step,
        state.flow_time,
        state.dt,
        state.gradient_norm,
        state.evaluations,
        state.rejections,
        wall_seconds,
        _host(state.theta),
        _host(state.gradient),
        _host(state.outputs),
        batch,
        batches.generator.get_state().numpy().copy(),
        last,
        state.forward_evaluations,
        state.window_time,
    )


def _restored(cell: Cell, saved: TrainingState) -> FlowState:
    """The FlowState of a snapshot, on the cell's device; checks it fits the cell."""
    theta0, dtype = cell.theta0, _host(cell.theta0[:0]).dtype
    for name in ("theta", "gradient"):
        array = getattr(saved, name)
        if array.shape != tuple(theta0.shape) or array.dtype != dtype:
            raise ValueError(
                f"the snapshot's {name} is {array.dtype}{list(array.shape)} but "
                f"this cell trains {theta0.dtype}{list(theta0.shape)}: it belongs "
                "to another cell or code version; delete it to start from zero"
            )

    def tensor(array: np.ndarray) -> Tensor:
        return torch.from_numpy(array.copy()).to(theta0.device)

    return FlowState(
        tensor(saved.theta),
        tensor(saved.gradient),
        tensor(saved.outputs),
        saved.gradient_norm,
        saved.dt,
        saved.flow_time,
        saved.step,
        saved.evaluations,
        saved.rejections,
        saved.forward_evaluations,
        saved.window_time,
    )


def _train_outputs(cell: Cell, state: FlowState, batch: Tensor | None) -> Tensor:
    """f(x_train) at ``state``: the flow's own outputs in a full-batch flow (batch None)."""
    if batch is None:
        return state.outputs
    return chunked_outputs(
        cell.objective, state.theta, cell.task.x_train, cell.objective.initial_outputs
    )
