"""Adaptive gradient flow: explicit Euler that follows dθ/dt = −∇L̃ (design.md §2).

From the current point (θ, gradient g, train outputs o) with step dt, try
``θ' = θ − dt·g`` and evaluate g', o' there (same batch). Accept iff

    turn   = ‖g − g'‖² / (‖g‖·‖g'‖) < max_gradient_turn      and
    change = max_μ |o'_μ − o_μ|     < max_output_change     (o = the α-scaled f).

If both ratios are under half their limits, dt ← dt·dt_grow. On rejection dt ← dt/dt_shrink
and retry from the same point. An accepted step keeps g', o' as the new point's, so a
full-batch step costs one forward+backward. Flow time t = Σ accepted dt.

Two refinements. As in the reference code (mariogeiger/gradientflow), a zero gradient
on either side counts as no turn (the flow then stops on "fitted" or "zero_gradient").
Ours: for a loss whose ℓ' jumps (the hinge at z = 1), a trial in which a
margin crosses the kink is judged on the gradient *continued* with the old ℓ'
(``across_kink``), so the jump itself is not mistaken for integration error — without
it the controller shrinks dt without end at the first crossing (Zeno; measured: dt
reaches 1e-17 and the flow stalls).

The state is a frozen dataclass and every function here is pure given an ``evaluate``
map θ ↦ (g, o). ``control`` is elementwise, so an ensemble can carry tensors of dt,
turn and change (one entry per member); ``step_ratios`` reduces over the last axis only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from tasks.specs import FlowSpec

Evaluate = Callable[[Tensor], tuple[Tensor, Tensor]]  # θ [N] ↦ (∇L̃ [N], f(x) [B])
# (θ' [N], f at θ [B], f at θ' [B]) ↦ ∇L̃ at θ' with ℓ' frozen at the old margins, or
# None if no margin crossed a kink of ℓ
AcrossKink = Callable[[Tensor, Tensor, Tensor], "Tensor | None"]


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


def start_flow(theta: Tensor, evaluate: Evaluate, spec: FlowSpec) -> FlowState:
    """The flow's first point: evaluates g and o at θ₀ (one forward+backward)."""
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


def control(dt, turn, change, spec: FlowSpec):
    """Accept/reject and the next dt, elementwise: (accept, new_dt).

    Works on Python floats (one cell) and on tensors (one entry per ensemble member)."""
    accept = (turn < spec.max_gradient_turn) & (change < spec.max_output_change)
    easy = accept & (turn < 0.5 * spec.max_gradient_turn) & (change < 0.5 * spec.max_output_change)
    grown, shrunk = dt * spec.dt_grow, dt / spec.dt_shrink
    if isinstance(dt, Tensor):
        return accept, torch.where(easy, grown, torch.where(accept, dt, shrunk))
    return accept, (grown if easy else dt if accept else shrunk)


def attempt_step(
    state: FlowState, evaluate: Evaluate, spec: FlowSpec, across_kink: AcrossKink | None = None
) -> tuple[FlowState, bool]:
    """One Euler trial from ``state``: the next state and whether it was accepted."""
    theta = state.theta - state.dt * state.gradient
    gradient, outputs = evaluate(theta)
    ratios = step_ratios(state.gradient, gradient, state.outputs, outputs)
    turn, change, norm = ratios.tolist()  # the one host sync of a step
    evaluations = state.evaluations + 1
    if across_kink is not None and not turn < spec.max_gradient_turn:
        continued = across_kink(theta, state.outputs, outputs)
        if continued is not None:  # judge the smooth part of the turn only
            turn = float(step_ratios(state.gradient, continued, outputs, outputs)[0])
            evaluations += 1
    accept, dt = control(state.dt, turn, change, spec)
    if not accept:
        return replace(
            state, dt=dt, evaluations=evaluations, rejections=state.rejections + 1
        ), False
    return FlowState(
        theta,
        gradient,
        outputs,
        norm,
        dt,
        state.flow_time + state.dt,
        state.step + 1,
        evaluations,
        state.rejections,
    ), True


def advance(
    state: FlowState, evaluate: Evaluate, spec: FlowSpec, across_kink: AcrossKink | None = None
) -> FlowState:
    """Retry ``attempt_step`` until a step is accepted; returns the accepted state.

    If dt shrinks to 0 (no step size passes), returns the unchanged point with dt = 0,
    which ``stop_reason`` reports as "stalled"."""
    while state.dt > 0.0:
        state, accepted = attempt_step(state, evaluate, spec, across_kink)
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

    Checked in order: nan (non-finite g: diverged), stalled (dt underflowed to 0: no
    step size passes the tests), fitted (N_Δ = 0), zero_gradient, max_steps, max_time
    (flow time), max_wall."""
    if not math.isfinite(state.gradient_norm):
        return "nan"
    if not state.dt > 0.0:
        return "stalled"
    if n_unsatisfied == 0:
        return "fitted"
    if state.gradient_norm == 0.0:
        return "zero_gradient"
    if spec.max_steps is not None and state.step >= spec.max_steps:
        return "max_steps"
    if spec.max_time is not None and state.flow_time >= spec.max_time:
        return "max_time"
    if spec.max_wall_seconds is not None and wall_seconds >= spec.max_wall_seconds:
        return "max_wall"
    return None
