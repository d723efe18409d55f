"""Train a bundle of same-shape cells as one batched ensemble: `train_bundle(specs)`.

The members' parameters are the rows of θ [m, N]; one *trial* evaluates every active
member at once (`tasks.ensemble.EnsembleObjective`, batched matmuls). Everything else is
per member, exactly as `tasks.train_cell.run_cell` does it for one cell: its own dt, its
own accept/reject (the same `tasks.flow.control` on the same host floats), its own step
and evaluation counters, checkpoints, stop rule (`tasks.flow.stop_reason`) and records
(built by train_cell's own `_measure` and `_result`). A rejected member retries from its
point with its smaller dt in the next trial while the others move on; a member that stops
yields its `CellResult` and leaves the batch (its rows are dropped), so finished members
cost nothing. Per member the records equal `train_cell`'s up to floating-point
reordering (tests/test_ensemble.py); wall seconds count from the bundle's start.

Cost per trial: one batched forward+backward and one host sync for all members; the
observables only at each member's log-spaced checkpoints. ``train_bundle([spec])`` is
also the fast path for a single fully-connected cell (no autograd in the flow).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tasks.batched_fc import BatchedFC, stack_parameters
from tasks.ensemble import EnsembleObjective, bundle_key, can_batch
from tasks.flow import FlowState, control, step_ratios, stop_reason
from tasks.losses import has_kink, loss_derivative
from tasks.observables import next_checkpoint
from tasks.records import CellResult, Measurement
from tasks.specs import CellSpec, FlowSpec
from tasks.train_cell import Cell, _measure, _result, prepare_cell

Record = Measurement | CellResult
_NOTHING = torch.empty(0)  # FlowState's tensors where only its numbers are read


@dataclass(eq=False)
class _Member:
    """Host-side progress of one member, updated in place after every trial."""

    index: int  # position in the bundle (what train_bundle yields)
    cell: Cell
    dt: float
    gradient_norm: float
    n_unsatisfied: int
    flow_time: float = 0.0
    step: int = 0
    evaluations: int = 1
    rejections: int = 0
    checkpoint: int = 0  # next step to measure at
    last: Measurement | None = None

    def state(
        self, theta: Tensor = _NOTHING, gradient: Tensor = _NOTHING, outputs: Tensor = _NOTHING
    ) -> FlowState:
        return FlowState(
            theta,
            gradient,
            outputs,
            self.gradient_norm,
            self.dt,
            self.flow_time,
            self.step,
            self.evaluations,
            self.rejections,
        )


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
    net, theta = BatchedFC.of(first.model), stack_parameters([c.model for c in cells])
    initial = net.forward(theta, x)[0]  # by the flow's own forward: f is exactly 0 at θ₀
    objective = EnsembleObjective(net, x, y, alpha, initial, loss_derivative(first.spec.loss))
    gradient, outputs, margins = objective(theta)
    norms = torch.linalg.vector_norm(gradient, dim=1).tolist()
    unsatisfied = (~(margins >= 1.0)).sum(1).tolist()
    members = [
        _Member(i, c, float(c.spec.flow.dt_initial), norms[i], unsatisfied[i])
        for i, c in enumerate(cells)
    ]
    return _Ensemble(members, objective, theta, gradient, outputs)


def _visit(
    ensemble: _Ensemble, rows: list[int], wall_seconds: float
) -> Iterator[tuple[int, Record]]:
    """The head of train_cell's loop for each member in ``rows``: measure at a checkpoint
    or at the stop, and finish a member that stops. Returns the finished rows."""
    finished = []
    for row in rows:
        member = ensemble.members[row]
        spec = member.cell.spec.flow
        reason = stop_reason(member.state(), member.n_unsatisfied, spec, wall_seconds)
        fresh = member.last is None or member.last.step != member.step
        measure = (member.step >= member.checkpoint or reason) and fresh
        if not (measure or reason):
            continue
        state = member.state(ensemble.theta[row], ensemble.gradient[row], ensemble.outputs[row])
        if measure:
            member.last = _measure(member.cell, state, ensemble.outputs[row], wall_seconds)
            yield member.index, member.last
            member.checkpoint = next_checkpoint(member.step, spec.checkpoints_per_decade)
        if reason:
            yield (
                member.index,
                _result(member.cell, state, reason, member.last, ensemble.outputs[row]),
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


def _turn(norm: float, new_norm: float, difference: float) -> float:
    """‖g − g'‖²/(‖g‖·‖g'‖), 0 if either norm is 0 (as `tasks.flow.step_ratios`)."""
    if norm == 0.0 or new_norm == 0.0:
        return 0.0
    product = norm * new_norm
    return difference * difference / product if product else math.inf


def _trial(ensemble: _Ensemble, flow: FlowSpec) -> list[int]:
    """One Euler trial θ' = θ − dt·g of every member; accepted members move to θ'.
    Returns the rows whose `advance` would return: accepted, or dt underflowed to 0."""
    members, theta = ensemble.members, ensemble.theta
    if len(members) == 1:
        trial = torch.add(theta, ensemble.gradient, alpha=-members[0].dt)
    else:
        dt = torch.tensor([m.dt for m in members], dtype=theta.dtype, device=theta.device)
        trial = torch.addcmul(theta, dt.unsqueeze_(1), ensemble.gradient, value=-1.0)
    gradient, outputs, margins = ensemble.objective(trial)
    stats = torch.stack(
        [
            torch.linalg.vector_norm(gradient, dim=1),
            torch.linalg.vector_norm(ensemble.gradient - gradient, dim=1),
            torch.linalg.vector_norm(outputs - ensemble.outputs, math.inf, dim=1),
            torch.sum(margins >= 1.0, dim=1, dtype=theta.dtype),
        ],
        dim=1,
    ).tolist()
    turns = [_turn(m.gradient_norm, s[0], s[1]) for m, s in zip(members, stats)]
    n_points = margins.shape[1]
    if has_kink(members[0].cell.spec.loss):
        _continue_across_kink(ensemble, trial, outputs, margins, turns, flow)
    accepted, returned = [], []
    for row, (member, (norm, _, change, satisfied), turn) in enumerate(zip(members, stats, turns)):
        member.evaluations += 1
        accept, new_dt = control(member.dt, turn, change, flow)
        if accept:  # N_Δ counts a NaN margin as unsatisfied, as tasks.losses does
            member.flow_time, member.step = member.flow_time + member.dt, member.step + 1
            member.gradient_norm, member.n_unsatisfied = norm, n_points - int(satisfied)
        else:
            member.rejections += 1
        member.dt = new_dt
        accepted.append(accept)
        if accept or not new_dt > 0.0:
            returned.append(row)
    _move(ensemble, accepted, trial, gradient, outputs)
    return returned


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
    turns: list[float],
    flow: FlowSpec,
) -> None:
    """`AlphaObjective.across_kink` for the batch: members whose gradient turned too much
    and one of whose margins crossed 1 are judged on the gradient at θ' continued with
    the old ℓ' (one more evaluation each); ``turns`` is updated in place."""
    rows = [r for r, turn in enumerate(turns) if not turn < flow.max_gradient_turn]
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
        turns[row] = turn
        ensemble.members[row].evaluations += 1
