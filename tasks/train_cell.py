"""One cell, start to finish: `train_cell(spec)` yields Measurements, then one CellResult.

No I/O, no printing, no global seeding: the data come from `tasks.data.load_task` (its
own seeds), the initial weights from a generator derived from ``spec.seed``, minibatches
(if any) from another. The same spec gives the same numbers (wall times aside).

Cost per accepted full-batch step: one forward+backward (the flow reuses the trial's
gradient), plus one host sync for N_Δ; observables only at log-spaced checkpoints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from tasks.alignment import layer_weights_on_host, weight_alignment_at
from tasks.data import Task, input_shape, load_task
from tasks.flow import AcrossKink, Evaluate, FlowState, advance, rebatch, start_flow, stop_reason
from tasks.kernel_pca import kernel_pca_columns
from tasks.losses import (
    AlphaObjective,
    has_kink,
    loss_derivative,
    loss_function,
    unsatisfied_margins,
)
from tasks.models import build_from_spec, count_parameters
from tasks.observables import (
    chunked_outputs,
    h0_eigenvalues,
    margin_statistics,
    measurement,
    next_checkpoint,
    ntk_at,
)
from tasks.records import CellResult, Measurement, TrainingState
from tasks.specs import CellSpec
from tasks.synthetic import informative_directions

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def derived_generator(seed: int, role: str) -> torch.Generator:
    """A CPU generator for one use of a cell's seed ("init", "batch"): seeded by a hash
    of (role, seed), so it shares no stream with the data sets' generators."""
    digest = hashlib.sha256(f"phasegrid:{role}:{int(seed)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def resolve_device(name: str) -> torch.device:
    """ "auto" → cuda if available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Cell:
    """What stays fixed while one cell trains (all tensors on the training device)."""

    spec: CellSpec
    task: Task
    model: nn.Module
    objective: AlphaObjective  # θ ↦ (∇L̃, f(x_train)); holds f̃_θ₀(x_train)
    theta0: Tensor  # θ₀ [N]
    test_initial: Tensor  # f̃_θ₀(x_test) [n_test]
    kernel_initial: Tensor  # f̃_θ₀(x_kernel) [P_K]
    ntk_initial: Tensor | None  # Θ₀ on the kernel set [P_K, P_K], if measured
    n_params: int


def prepare_cell(spec: CellSpec, task: Task | None = None) -> Cell:
    """Data, net (θ₀ from the "init" generator), α-trick objective and Θ₀ of one cell.
    ``task``: the data of ``spec.data`` already loaded on the device (a bundle's cells
    share one), else loaded here."""
    dtype = _DTYPES.get(spec.observables.dtype)
    if dtype is None:
        raise ValueError(
            f"observables.dtype must be one of {', '.join(_DTYPES)}, got {spec.observables.dtype!r}"
        )
    device = resolve_device(spec.observables.device)
    if task is None:
        raw = load_task(spec.data, dtype)
        fields = ("x_train", "y_train", "x_test", "y_test", "x_kernel", "y_kernel")
        task = Task(**{f: getattr(raw, f).to(device) for f in fields}, source=raw.source)
    shape = input_shape(spec.data)
    model = build_from_spec(
        spec.model, math.prod(shape), derived_generator(spec.seed, "init"), dtype, input_shape=shape
    ).to(device)
    theta0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    with torch.no_grad():
        initial = [model(x) for x in (task.x_train, task.x_test, task.x_kernel)]
    objective = AlphaObjective(
        model,
        spec.alpha,
        loss_derivative(spec.loss),
        task.x_train,
        task.y_train,
        initial[0],
        kinked=has_kink(spec.loss),
    )
    ntk0 = ntk_at(model, theta0, task.x_kernel) if spec.observables.ntk else None
    return Cell(
        spec, task, model, objective, theta0, initial[1], initial[2], ntk0, count_parameters(model)
    )


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
    batch, last = batches.current, resume_from and resume_from.last_measurement
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
            last = _measure(cell, state, train_outputs, clock.wall())
            yield last
            checkpoint = next_checkpoint(state.step, flow.checkpoints_per_decade)
        if reason:
            break
        if clock.snapshot_due():
            yield _snapshot(state, batches, clock.wall(), last)
        state = advance(state, _evaluator(cell, batch), flow, _across_kink(cell, batch))
        if batch is not None:  # a minibatch flow moves to a fresh batch after each step
            batch = batches.draw()
            state = rebatch(state, _evaluator(cell, batch))
    yield _result(cell, state, reason, last, train_outputs)


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
    )


def _train_outputs(cell: Cell, state: FlowState, batch: Tensor | None) -> Tensor:
    """f(x_train) at ``state``: the flow's own outputs in a full-batch flow (batch None)."""
    if batch is None:
        return state.outputs
    return chunked_outputs(
        cell.objective, state.theta, cell.task.x_train, cell.objective.initial_outputs
    )


def _measure(
    cell: Cell, state: FlowState, train_outputs: Tensor, wall_seconds: float
) -> Measurement:
    """The Measurement at ``state`` (NTK change only if asked for at checkpoints)."""
    loss = loss_function(cell.spec.loss)
    test = chunked_outputs(cell.objective, state.theta, cell.task.x_test, cell.test_initial)
    ntk_change = math.nan
    if cell.spec.observables.ntk_at_checkpoints and cell.ntk_initial is not None:
        ntk_change = _relative_change(
            cell.ntk_initial, ntk_at(cell.model, state.theta, cell.task.x_kernel)
        )
    record = measurement(
        state,
        margin_statistics(train_outputs, cell.task.y_train, loss),
        margin_statistics(test, cell.task.y_test, loss),
        cell.theta0,
        cell.n_params,
        wall_seconds,
        ntk_change,
    )
    alignment = weight_alignment_at(cell.model, state.theta, informative_directions(cell.spec.data))
    return dataclasses.replace(record, weight_alignment=alignment)


def _relative_change(before: Tensor, after: Tensor) -> float:
    return float(torch.linalg.norm(after - before) / torch.linalg.norm(before))


def _result(
    cell: Cell, state: FlowState, reason: str, last: Measurement, train_outputs: Tensor
) -> CellResult:
    """The CellResult: summary (from the final Measurement), NTK change, test outputs, H₀."""
    obs, task = cell.spec.observables, cell.task
    ntk_change = norm0 = norm1 = math.nan
    ntk_final = None
    if cell.ntk_initial is not None:
        ntk_final = ntk_at(cell.model, state.theta, task.x_kernel)
        ntk_change = _relative_change(cell.ntk_initial, ntk_final)
        norm0, norm1 = (
            float(torch.linalg.norm(cell.ntk_initial)),
            float(torch.linalg.norm(ntk_final)),
        )
    test_outputs = chunked_outputs(cell.objective, state.theta, task.x_test, cell.test_initial)
    h0 = (
        h0_eigenvalues(
            cell.model,
            state.theta,
            task.x_train[~(task.y_train * train_outputs >= 1.0)],
            cell.objective.alpha,
        )
        if obs.h0_spectrum
        else np.zeros(0)
    )
    return CellResult(
        stop_reason=reason,
        fitted=last.n_unsatisfied == 0,
        steps=state.step,
        flow_time=state.flow_time,
        wall_seconds=last.wall_seconds,
        gradient_evaluations=state.evaluations,
        n_params=cell.n_params,
        train_loss=last.train_loss,
        train_error=last.train_error,
        n_unsatisfied=last.n_unsatisfied,
        test_loss=last.test_loss,
        test_error=last.test_error,
        ntk_change=ntk_change,
        ntk_norm_initial=norm0,
        ntk_norm_final=norm1,
        test_outputs=test_outputs.cpu().numpy(),
        test_labels=task.y_test.cpu().numpy(),
        h0_eigenvalues=h0,
        **kernel_pca_columns(cell.ntk_initial, ntk_final, task.y_kernel, obs.kernel_pca_rank),
        weights_initial=layer_weights_on_host(cell.model, cell.theta0, obs.weights),
        weights_final=layer_weights_on_host(cell.model, state.theta, obs.weights),
    )
