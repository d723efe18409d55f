"""Train a bundle of same-shape cells as one batched ensemble: `train_bundle(specs)`.

The members' parameters are the rows of θ [m, N]; one *trial* evaluates every active
member at once (`tasks.ensemble.EnsembleObjective`, batched matmuls). Everything else is
per member, exactly as `tasks.train_cell.run_cell` does it for one cell: its own dt and
flow state, judged by the same step controller (`tasks.flow.conclude` on host numbers),
its own checkpoints, stop rule (`tasks.flow.stop_reason`) and records (built by the same
`tasks.cell_records`). A rejected member retries from its
point with its smaller dt in the next trial while the others move on; a member that stops
yields its `CellResult` and leaves the batch (its rows are dropped), so finished members
cost nothing. Per member the records equal `train_cell`'s up to floating-point
reordering (tests/test_ensemble.py); wall seconds count from the bundle's start.

Cost per trial: one batched forward+backward (plus one batched forward for euler-heun's
error estimate at each member's Heun point) and one host sync for all members; the
observables only at each member's log-spaced checkpoints. ``train_bundle([spec])`` is
also the fast path for a single fully-connected cell (no autograd in the flow).
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from tasks.batched_fc import BatchedFC, stack_parameters
from tasks.bundling import EnsembleObjective, bundle_key, can_batch
from tasks.cell import Cell, prepare_cell
from tasks.cell_records import final_result, measure
from tasks.flow import (
    FlowState,
    Trial,
    conclude,
    gradient_turn,
    is_stalled,
    step_ratios,
    stop_reason,
)
from tasks.losses import has_kink, loss_derivative
from tasks.models import FullyConnected
from tasks.observables import next_checkpoint
from tasks.records import CellResult, Measurement
from tasks.specs import CellSpec, FlowSpec

Record = Measurement | CellResult
_NOTHING = torch.empty(0)  # FlowState's tensors where only its numbers are read


@dataclass(eq=False)
class _Member:
    """Host-side progress of one member: its flow state's numbers (``flow``, whose tensors
    are empty: the point is row ``r`` of the ensemble's), replaced after every trial."""

    index: int  # position in the bundle (what train_bundle yields)
    cell: Cell
    flow: FlowState
    n_unsatisfied: int
    checkpoint: int = 0  # next step to measure at
    last: Measurement | None = None

    def state(
        self, theta: Tensor = _NOTHING, gradient: Tensor = _NOTHING, outputs: Tensor = _NOTHING
    ) -> FlowState:
        return replace(self.flow, theta=theta, gradient=gradient, outputs=outputs)


@dataclass(eq=False)
class _Ensemble:
    """The active members and their stacked point: row r of each tensor is members[r]."""

    members: list[_Member]
    objective: EnsembleObjective
    theta: Tensor  # θ [m, N]
    gradient: Tensor  # ∇L̃ at θ [m, N]
    outputs: Tensor  # f(x_train) at θ [m, P]


def train_bundle(specs: Sequence[CellSpec]) -> Iterator[tuple[int, Record]]:
    """Train ``specs`` (same `tasks.ensemble.bundle_key`: they may differ in α̃ and seed)
    as one batched ensemble. Yields (i, record) with i the index into ``specs``: per
    member, the Measurements then the one CellResult that ``train_cell(specs[i])`` yields."""
    if not can_batch(specs):
        keys = {bundle_key(s) for s in specs}
        why = (
            "a cell cannot be batched (CNN or minibatch flow)"
            if None in keys
            else "they differ in more than alpha_tilde and seed"
        )
        raise ValueError(
            f"these {len(specs)} cells cannot train as one bundle: {why}; "
            "train them one by one with tasks.train_cell.train_cell"
        )
    first = prepare_cell(specs[0])
    cells = [first] + [prepare_cell(spec, first.task) for spec in specs[1:]]
    yield from run_bundle(cells)


def run_bundle(cells: Sequence[Cell]) -> Iterator[tuple[int, Record]]:
    """The batched flow of prepared cells (see `train_bundle`)."""
    flow, clock0 = cells[0].spec.flow, time.perf_counter()
    ensemble = _start(cells)
    returned = list(range(len(cells)))  # members back from a flow step (or at start)
    while True:
        finished = yield from _visit(ensemble, returned, time.perf_counter() - clock0)
        if finished:
            ensemble = _without(ensemble, finished)
        if not ensemble.members:
            return
        returned = _trial(ensemble, flow)


def _start(cells: Sequence[Cell]) -> _Ensemble:
    """Every member at θ₀ with its gradient and outputs (one batched evaluation)."""
    first = cells[0]
    x, y = first.task.x_train, first.task.y_train
    alpha = torch.tensor([c.spec.alpha for c in cells], dtype=x.dtype, device=x.device)
    models = _fully_connected(cells)
    net, theta = BatchedFC.of(models[0]), stack_parameters(models)
    initial = net.forward(theta, x)[0]  # by the flow's own forward: f is exactly 0 at θ₀
    objective = EnsembleObjective(net, x, y, alpha, initial, loss_derivative(first.spec.loss))
    gradient, outputs, margins = objective(theta)
    norms = torch.linalg.vector_norm(gradient, dim=1).tolist()
    unsatisfied = (~(margins >= 1.0)).sum(1).tolist()
    members = [
        _Member(
            i,
            c,
            FlowState(_NOTHING, _NOTHING, _NOTHING, norms[i], float(c.spec.flow.dt_initial)),
            unsatisfied[i],
        )
        for i, c in enumerate(cells)
    ]
    return _Ensemble(members, objective, theta, gradient, outputs)


def _fully_connected(cells: Sequence[Cell]) -> list[FullyConnected]:
    """The cells' nets, which `can_batch` admits only as fully-connected ones."""
    models = [c.model for c in cells]
    fc = [m for m in models if isinstance(m, FullyConnected)]
    if len(fc) != len(models):
        raise TypeError(
            "only fully-connected nets train as a bundle; train the others one by one "
            "with tasks.train_cell.train_cell"
        )
    return fc


def _visit(
    ensemble: _Ensemble, rows: list[int], wall_seconds: float
) -> Generator[tuple[int, Record], None, list[int]]:
    """The head of train_cell's loop for each member in ``rows``: measure at a checkpoint
    or at the stop, and finish a member that stops. Returns the finished rows."""
    finished = []
    for row in rows:
        member = ensemble.members[row]
        spec = member.cell.spec.flow
        reason = stop_reason(member.flow, member.n_unsatisfied, spec, wall_seconds)
        fresh = member.last is None or member.last.step != member.flow.step
        due = (member.flow.step >= member.checkpoint or reason) and fresh
        if not (due or reason):
            continue
        state = member.state(ensemble.theta[row], ensemble.gradient[row], ensemble.outputs[row])
        if due:
            member.last = measure(member.cell, state, ensemble.outputs[row], wall_seconds)
            yield member.index, member.last
            member.checkpoint = next_checkpoint(member.flow.step, spec.checkpoints_per_decade)
        if reason:
            assert member.last is not None  # measured at the stop above, or already
            yield (
                member.index,
                final_result(member.cell, state, reason, member.last, ensemble.outputs[row]),
            )
            finished.append(row)
    return finished


def _without(ensemble: _Ensemble, rows: list[int]) -> _Ensemble:
    """The ensemble without the members ``rows`` (their tensor rows dropped)."""
    gone = set(rows)
    keep = [r for r in range(len(ensemble.members)) if r not in gone]
    index = torch.tensor(keep, dtype=torch.long, device=ensemble.theta.device)
    return _Ensemble(
        [ensemble.members[r] for r in keep],
        ensemble.objective.select(index),
        ensemble.theta[index],
        ensemble.gradient[index],
        ensemble.outputs[index],
    )


def _trial(ensemble: _Ensemble, flow: FlowSpec) -> list[int]:
    """One Euler trial θ' = θ − dt·g of every member, judged per member by the shared
    controller `tasks.flow.conclude`; accepted members move to θ'. Returns the rows whose
    `tasks.flow.advance` would return: accepted, or stalled."""
    members, theta = ensemble.members, ensemble.theta
    dt: float | Tensor = (
        members[0].flow.dt
        if len(members) == 1
        else torch.tensor(
            [m.flow.dt for m in members], dtype=theta.dtype, device=theta.device
        ).unsqueeze_(1)  # [m, 1]
    )
    trial = _euler(theta, ensemble.gradient, dt)
    gradient, outputs, margins = ensemble.objective(trial)
    continued: list[int] = []  # euler-heun rows whose slope was continued at a kink
    columns = [
        torch.linalg.vector_norm(gradient, dim=1),
        torch.linalg.vector_norm(outputs - ensemble.outputs, math.inf, dim=1),
        torch.sum(margins >= 1.0, dim=1, dtype=theta.dtype),
        torch.ne(trial, theta).any(1).to(theta.dtype),
    ]
    if flow.integrator == "paper":
        columns.append(torch.linalg.vector_norm(ensemble.gradient - gradient, dim=1))
    else:  # the Heun point θ − dt(g + g')/2: one more forward
        slope, continued = _heun_slope(ensemble, trial, gradient, margins)
        both = ensemble.gradient + slope
        heun = _euler(theta, both, 0.5 * dt)
        columns.append(
            torch.linalg.vector_norm(ensemble.objective.outputs(heun) - outputs, math.inf, dim=1)
        )
    stats = torch.stack(columns, dim=1).tolist()  # the one host sync
    trials = [_member_trial(m, s, flow) for m, s in zip(members, stats)]
    if flow.integrator != "paper":
        for row in continued:
            trials[row] = replace(trials[row], evaluations=2)
    if flow.integrator == "paper" and has_kink(members[0].cell.spec.loss):
        _continue_across_kink(ensemble, trial, outputs, margins, trials, flow)
    accepted, returned, n_points = [], [], margins.shape[1]
    for row, (member, numbers, judged) in enumerate(zip(members, stats, trials)):
        member.flow, accept = conclude(member.flow, judged, flow)
        if accept:  # N_Δ counts a NaN margin as unsatisfied, as tasks.losses does
            member.n_unsatisfied = n_points - int(numbers[2])
        accepted.append(accept)
        if accept or is_stalled(member.flow):
            returned.append(row)
    _move(ensemble, accepted, trial, gradient, outputs)
    return returned


def _euler(theta: Tensor, slope: Tensor, dt: float | Tensor) -> Tensor:
    """θ − dt·slope [m, N]: one member by its float dt (the single-net fast path's op),
    several by their dts [m, 1]."""
    if isinstance(dt, Tensor):
        return torch.addcmul(theta, dt, slope, value=-1.0)
    return torch.add(theta, slope, alpha=-dt)


def _heun_slope(
    ensemble: _Ensemble, trial: Tensor, gradient: Tensor, margins: Tensor
) -> tuple[Tensor, list[int]]:
    """g' for euler-heun's Heun point: for a kinked loss, the rows where a margin crossed 1
    take the gradient at θ' with ℓ' frozen at the old margins (`tasks.flow.attempt_step`;
    one more evaluation each). Returns (slope [m, N], the continued rows)."""
    if not has_kink(ensemble.members[0].cell.spec.loss):
        return gradient, []
    old = ensemble.objective.y * ensemble.outputs < 1.0
    rows = torch.nonzero((old != (margins < 1.0)).any(1)).flatten()
    if rows.numel() == 0:
        return gradient, []
    slope = gradient.clone()
    slope[rows] = ensemble.objective.select(rows)(trial[rows], ensemble.outputs[rows])[0]
    return slope, rows.tolist()


def _member_trial(member: _Member, stats: list[float], flow: FlowSpec) -> Trial:
    """A member's `tasks.flow.Trial` from its row of _trial's stats
    (‖g'‖, change, #satisfied, moved, then ‖g − g'‖ (paper) or E (euler-heun))."""
    norm, change, _, moved, last = stats
    if flow.integrator == "paper":
        return Trial(
            norm,
            gradient_turn(member.flow.gradient_norm, norm, last),
            change,
            math.nan,
            bool(moved),
        )
    return Trial(norm, math.nan, change, last, bool(moved), forward_evaluations=1)


def _move(
    ensemble: _Ensemble, accepted: list[bool], theta: Tensor, gradient: Tensor, outputs: Tensor
) -> None:
    """Accepted rows take the trial's θ', g', f'; rejected rows keep theirs."""
    if all(accepted):
        ensemble.theta, ensemble.gradient, ensemble.outputs = theta, gradient, outputs
    elif any(accepted):
        mask = torch.tensor(accepted, device=theta.device).unsqueeze(1)
        ensemble.theta = torch.where(mask, theta, ensemble.theta)
        ensemble.gradient = torch.where(mask, gradient, ensemble.gradient)
        ensemble.outputs = torch.where(mask, outputs, ensemble.outputs)


def _continue_across_kink(
    ensemble: _Ensemble,
    trial: Tensor,
    outputs: Tensor,
    margins: Tensor,
    trials: list[Trial],
    flow: FlowSpec,
) -> None:
    """The paper controller's `AlphaObjective.across_kink` for the batch: members whose
    gradient turned too much and one of whose margins crossed 1 are judged on the
    gradient at θ' continued with the old ℓ' (one more evaluation each); ``trials`` is
    updated in place."""
    rows = [r for r, t in enumerate(trials) if not t.turn < flow.max_gradient_turn]
    if not rows:
        return
    index = torch.tensor(rows, dtype=torch.long, device=trial.device)
    y = ensemble.objective.y
    crossed = ((y * ensemble.outputs[index] < 1.0) != (margins[index] < 1.0)).any(1).tolist()
    rows = [r for r, c in zip(rows, crossed) if c]
    if not rows:
        return
    index = torch.tensor(rows, dtype=torch.long, device=trial.device)
    continued = ensemble.objective.select(index)(trial[index], ensemble.outputs[index])[0]
    new = step_ratios(ensemble.gradient[index], continued, outputs[index], outputs[index])
    for row, turn in zip(rows, new[:, 0].tolist()):
        trials[row] = replace(trials[row], turn=turn, evaluations=trials[row].evaluations + 1)
