"""Adaptive gradient flow: explicit Euler that follows dθ/dt = −∇L̃ (design.md §2).

From the current point (θ, gradient g, train outputs o) with step dt, try
``θ' = θ − dt·g`` and evaluate g', o' there (same batch). An accepted step keeps g', o'
as the new point's, so a full-batch step costs one forward+backward. Flow time
t = Σ accepted dt. Two controllers (``FlowSpec.integrator``, docs/integrator.md):

**euler-heun** (the default). One more forward, at the Heun point
``θ_H = θ − dt(g + g')/2``, gives the local error of the Euler step in output space,

    E = max_μ |f_μ(θ_H) − f_μ(θ')|,

O(dt²) on smooth stretches and O(dt·jump) where ∇L̃ jumps (a relu unit flips on a point,
a margin crosses the hinge's kink), so a small enough dt always passes and the flow
crosses switching surfaces (the Filippov solution) instead of stalling on them. For a
loss whose ℓ' jumps (the plain hinge), a trial in which a margin crosses 1 takes the
Heun slope g' with ℓ' frozen at the old margins (``across_kink``, one more backward):
margins sliding along 1 would otherwise chatter with dt ∝ tol (measured: 11× more steps
to fit); relu switches are not frozen, their crossing error is what E bounds. Accept
iff E ≤ max_local_error and change = max_μ |o'_μ − o_μ| < max_output_change (a trust
region); the next dt is dt·clip(0.9·min((tol/E)^½, limit/change), 0.2, 2) (at most
0.9 dt after a rejection). Cost per trial: 1 forward+backward + 1 forward.

**paper** (the reference code, mariogeiger/gradientflow, bit for bit). Accept iff

    turn   = ‖g − g'‖² / (‖g‖·‖g'‖) < max_gradient_turn      and
    change = max_μ |o'_μ − o_μ|     < max_output_change;

if both ratios are under half their limits, dt ← dt·dt_grow; on rejection dt ← dt/dt_shrink
and retry from the same point. A zero gradient on either side counts as no turn. Ours:
for a loss whose ℓ' jumps (the hinge at z = 1), a trial in which a margin crosses the
kink is judged on the gradient *continued* with the old ℓ' (``across_kink``). The turn
does not shrink with dt across a jump of ∇L̃ (relu nets), so this controller stalls there.

**Stalls** (every integrator): the flow stops with "stalled" as soon as an accepted step
leaves θ unchanged, flow time advances by less than STALL_RELATIVE of itself over a
window of STALL_WINDOW accepted steps, or dt falls below MIN_DT — a Zeno stall is never
stored as a budget that ran out.

State is a frozen dataclass and every function here is pure given the maps θ ↦ (g, o)
(``evaluate``) and θ ↦ o (``forward``). `conclude` is the one step controller of both
engines (train_cell, train_bundle): it reads only host numbers (`Trial`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from tasks.specs import INTEGRATORS, FlowSpec

Evaluate = Callable[[Tensor], tuple[Tensor, Tensor]]  # θ [N] ↦ (∇L̃ [N], f(x) [B])
Forward = Callable[[Tensor], Tensor]  # θ [N] ↦ f(x) [B] (no gradient)
# (θ' [N], f at θ [B], f at θ' [B]) ↦ ∇L̃ at θ' with ℓ' frozen at the old margins, or
# None if no margin crossed a kink of ℓ
AcrossKink = Callable[[Tensor, Tensor, Tensor], "Tensor | None"]

MIN_DT = 1e-12  # a dt below this is a stall
STALL_WINDOW = 50  # accepted steps over which flow time must advance ...
STALL_RELATIVE = 1e-12  # ... by more than this fraction of itself
MAX_GROWTH = 2.0  # euler-heun: dt grows at most ×2 per step (×5 measured worse at kinks)
_EMPTY = torch.empty(0)


@dataclass(frozen=True)
class FlowState:
    """One point of the flow. Tensors are on the training device; the rest are floats.

    ``gradient``/``outputs`` are g and o at ``theta`` (on the current batch), so a
    snapshot of this record is all the flow needs to continue exactly."""

    theta: Tensor  # θ [N]
    gradient: Tensor  # ∇_θ L̃ at θ [N]
    outputs: Tensor  # f = α(f̃_θ − f̃_θ₀) at θ on the batch [B]
    gradient_norm: float  # ‖g‖
    dt: float  # step size to try next
    flow_time: float = 0.0  # t = Σ accepted dt (paper units)
    step: int = 0  # accepted steps
    evaluations: int = 1  # forward+backward passes (accepted + rejected + rebatches)
    rejections: int = 0  # rejected attempts
    forward_evaluations: int = 0  # forward-only passes (euler-heun's error estimate)
    window_time: float = 0.0  # flow time at the last multiple of STALL_WINDOW steps
    stalled: bool = False  # an accepted step did not move θ, or t froze


@dataclass(frozen=True)
class Trial:
    """What the step controller reads of one trial θ' = θ − dt·g (host numbers)."""

    gradient_norm: float  # ‖g'‖
    turn: float  # ‖g − g'‖²/(‖g‖‖g'‖) (paper; NaN for euler-heun)
    change: float  # max_μ |o'_μ − o_μ|
    local_error: float  # E = max_μ |f(θ_H) − f(θ')| (euler-heun; NaN for paper)
    moved: bool  # θ' ≠ θ in floating point
    evaluations: int = 1  # forward+backward passes the trial took
    forward_evaluations: int = 0


def start_flow(theta: Tensor, evaluate: Evaluate, spec: FlowSpec) -> FlowState:
    """The flow's first point: evaluates g and o at θ₀ (one forward+backward)."""
    if spec.integrator not in INTEGRATORS:
        raise ValueError(
            f"flow.integrator must be one of {', '.join(INTEGRATORS)}, got {spec.integrator!r}"
        )
    gradient, outputs = evaluate(theta)
    norm = float(torch.linalg.vector_norm(gradient))
    return FlowState(theta, gradient, outputs, norm, float(spec.dt_initial))


def step_ratios(
    gradient: Tensor, new_gradient: Tensor, outputs: Tensor, new_outputs: Tensor
) -> Tensor:
    """(turn, change, ‖g'‖) stacked on a new last axis: [..., N], [..., B] → [..., 3].

    turn = ‖g − g'‖²/(‖g‖‖g'‖) (0 if either norm is 0), change = max_μ |o'_μ − o_μ|.
    Non-finite g' or o' give NaN/inf ratios, which ``control`` rejects."""
    norm = torch.linalg.vector_norm(gradient, dim=-1)
    new_norm = torch.linalg.vector_norm(new_gradient, dim=-1)
    turn = torch.linalg.vector_norm(gradient - new_gradient, dim=-1) ** 2 / (norm * new_norm)
    turn = torch.where((norm == 0) | (new_norm == 0), 0.0, turn)
    change = (new_outputs - outputs).abs().amax(dim=-1)
    return torch.stack([turn, change, new_norm], dim=-1)


def gradient_turn(norm: float, new_norm: float, difference: float) -> float:
    """‖g − g'‖²/(‖g‖·‖g'‖) from host norms (difference = ‖g − g'‖); 0 if a norm is 0."""
    if norm == 0.0 or new_norm == 0.0:
        return 0.0
    product = norm * new_norm
    return difference * difference / product if product else math.inf


def control(dt, turn, change, spec: FlowSpec):
    """The paper's accept/reject and next dt, elementwise: (accept, new_dt).

    Works on Python floats (one cell) and on tensors (one entry per ensemble member)."""
    accept = (turn < spec.max_gradient_turn) & (change < spec.max_output_change)
    easy = accept & (turn < 0.5 * spec.max_gradient_turn) & (change < 0.5 * spec.max_output_change)
    grown, shrunk = dt * spec.dt_grow, dt / spec.dt_shrink
    if isinstance(dt, Tensor):
        return accept, torch.where(easy, grown, torch.where(accept, dt, shrunk))
    return accept, (grown if easy else dt if accept else shrunk)


def heun_control(dt: float, error: float, change: float, spec: FlowSpec) -> tuple[bool, float]:
    """euler-heun's accept/reject and next dt (module docstring). NaN or inf E or change
    reject with the smallest factor, 0.2."""
    tol, limit = spec.max_local_error, spec.max_output_change
    accept = error <= tol and change < limit
    if not (math.isfinite(error) and math.isfinite(change)):
        return False, 0.2 * dt
    # accepted: E ~ dt² on a smooth stretch; rejected: E ~ dt·jump if a kink was crossed,
    # so the retry assumes first order (a second-order guess overshoots and is rejected again)
    ratio = tol / error if error > 0 else math.inf
    factor = 0.9 * min(
        math.sqrt(ratio) if accept else ratio, limit / change if change > 0 else math.inf
    )
    return accept, dt * min(max(factor if accept else min(factor, 0.9), 0.2), MAX_GROWTH)


def judge(dt: float, trial: Trial, spec: FlowSpec) -> tuple[bool, float]:
    """(accept, next dt) of one trial by ``spec.integrator``'s controller."""
    if spec.integrator == "paper":
        return control(dt, trial.turn, trial.change, spec)
    return heun_control(dt, trial.local_error, trial.change, spec)


def conclude(
    state: FlowState,
    trial: Trial,
    spec: FlowSpec,
    theta: Tensor = _EMPTY,
    gradient: Tensor = _EMPTY,
    outputs: Tensor = _EMPTY,
) -> tuple[FlowState, bool]:
    """The state after ``trial`` and whether it was accepted: on acceptance the point
    moves to (θ', g', o') = (theta, gradient, outputs) — empty tensors where the caller
    keeps the point itself (train_bundle) — and the stall rules are applied."""
    accept, dt = judge(state.dt, trial, spec)
    counted = replace(
        state,
        dt=dt,
        evaluations=state.evaluations + trial.evaluations,
        forward_evaluations=state.forward_evaluations + trial.forward_evaluations,
    )
    if not accept:
        return replace(counted, rejections=state.rejections + 1), False
    flow_time, step, window, stalled = (
        state.flow_time + state.dt,
        state.step + 1,
        state.window_time,
        not trial.moved,
    )
    if step % STALL_WINDOW == 0:
        stalled |= not flow_time - window > STALL_RELATIVE * flow_time
        window = flow_time
    return replace(
        counted,
        theta=theta,
        gradient=gradient,
        outputs=outputs,
        gradient_norm=trial.gradient_norm,
        flow_time=flow_time,
        step=step,
        window_time=window,
        stalled=stalled,
    ), True


def attempt_step(
    state: FlowState,
    evaluate: Evaluate,
    spec: FlowSpec,
    across_kink: AcrossKink | None = None,
    forward: Forward | None = None,
) -> tuple[FlowState, bool]:
    """One Euler trial from ``state``: the next state and whether it was accepted.
    euler-heun needs ``forward`` (f on the same batch); paper uses ``across_kink``."""
    theta = state.theta - state.dt * state.gradient
    gradient, outputs = evaluate(theta)
    if spec.integrator == "paper":
        trial = _paper_trial(state, theta, gradient, outputs, spec, across_kink)
    else:
        if forward is None:
            raise ValueError("the euler-heun integrator needs forward (θ ↦ f on the batch)")
        slope, extra = gradient, 0
        if across_kink is not None:
            continued = across_kink(theta, state.outputs, outputs)
            if continued is not None:
                slope, extra = continued, 1
        heun = forward(state.theta - (0.5 * state.dt) * (state.gradient + slope))
        stats = torch.stack(
            [
                torch.linalg.vector_norm(gradient),
                (outputs - state.outputs).abs().amax(),
                (heun - outputs).abs().amax(),
                torch.ne(theta, state.theta).any().to(theta.dtype),
            ]
        ).tolist()
        trial = Trial(
            stats[0], math.nan, stats[1], stats[2], bool(stats[3]), 1 + extra, forward_evaluations=1
        )
    return conclude(state, trial, spec, theta, gradient, outputs)


def _paper_trial(
    state: FlowState,
    theta: Tensor,
    gradient: Tensor,
    outputs: Tensor,
    spec: FlowSpec,
    across_kink: AcrossKink | None,
) -> Trial:
    """The paper controller's numbers of a trial (with the kink continuation)."""
    ratios = step_ratios(state.gradient, gradient, state.outputs, outputs)
    moved = torch.ne(theta, state.theta).any().to(theta.dtype)
    turn, change, norm, moved = torch.cat([ratios, moved.reshape(1)]).tolist()  # one sync
    evaluations = 1
    if across_kink is not None and not turn < spec.max_gradient_turn:
        continued = across_kink(theta, state.outputs, outputs)
        if continued is not None:  # judge the smooth part of the turn only
            turn = float(step_ratios(state.gradient, continued, outputs, outputs)[0])
            evaluations += 1
    return Trial(norm, turn, change, math.nan, bool(moved), evaluations)


def is_stalled(state: FlowState) -> bool:
    """Whether the flow has stalled at ``state`` (module docstring: the stall rules)."""
    return state.stalled or not state.dt >= MIN_DT


def advance(
    state: FlowState,
    evaluate: Evaluate,
    spec: FlowSpec,
    across_kink: AcrossKink | None = None,
    forward: Forward | None = None,
) -> FlowState:
    """Retry ``attempt_step`` until a step is accepted; returns the accepted state, or
    the unchanged point with dt < MIN_DT if no step size passes (``stop_reason``:
    "stalled")."""
    while not is_stalled(state):
        state, accepted = attempt_step(state, evaluate, spec, across_kink, forward)
        if accepted:
            return state
    return state


def rebatch(state: FlowState, evaluate: Evaluate) -> FlowState:
    """Re-evaluate g and o at the current θ (e.g. on a new minibatch)."""
    gradient, outputs = evaluate(state.theta)
    norm = float(torch.linalg.vector_norm(gradient))
    return replace(
        state,
        gradient=gradient,
        outputs=outputs,
        gradient_norm=norm,
        evaluations=state.evaluations + 1,
    )


def stop_reason(
    state: FlowState, n_unsatisfied: int, spec: FlowSpec, wall_seconds: float = 0.0
) -> str | None:
    """Why the flow stops at ``state`` (one of records.STOP_REASONS), or None.

    Checked in order: nan (non-finite g: diverged), fitted (N_Δ = 0), stalled (the stall
    rules: the point is finite but the flow no longer moves), zero_gradient, max_steps,
    max_time (flow time), max_wall."""
    if not math.isfinite(state.gradient_norm):
        return "nan"
    if n_unsatisfied == 0:
        return "fitted"
    if is_stalled(state):
        return "stalled"
    if state.gradient_norm == 0.0:
        return "zero_gradient"
    if spec.max_steps is not None and state.step >= spec.max_steps:
        return "max_steps"
    if spec.max_time is not None and state.flow_time >= spec.max_time:
        return "max_time"
    if spec.max_wall_seconds is not None and wall_seconds >= spec.max_wall_seconds:
        return "max_wall"
    return None
