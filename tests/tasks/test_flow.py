"""The paper's adaptive gradient flow (`integrator = "paper"`) against closed forms and a
tiny-dt Euler oracle; the euler-heun integrator and the stall rules: tests/test_integrator.py."""

from __future__ import annotations

import math

import pytest
import torch

from tasks.flow import FlowState, advance, attempt_step, control, rebatch, start_flow, stop_reason
from tasks.losses import AlphaObjective, loss_derivative, unsatisfied_margins
from tasks.specs import FlowSpec, LossSpec

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Linear(torch.nn.Module):
    """f̃(x) = w·x."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


def linear_problem(alpha: float, P: int = 200, d: int = 3, seed: int = 0):
    """Quadratic hinge on a linear model with random labels: with P ≫ d no margin ever
    reaches 1, so L̃ = (1/2Pα²) Σ (y − α(w−w₀)·x)² exactly and, with u = w − w₀,
    du/dt = −A u + Xᵀy/(Pα), A = XᵀX/P: u(t) = u* + e^{−tA}(u₀ − u*), u₀ = 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(P, d, generator=g, dtype=F64)
    y = torch.sign(torch.randn(P, generator=g, dtype=F64))
    w0 = torch.randn(d, generator=g, dtype=F64)
    model = Linear(w0)
    objective = AlphaObjective(model, alpha, loss_derivative(LossSpec("quadhinge")), x, y, x @ w0)
    A = x.T @ x / P
    u_star = torch.linalg.solve(A, x.T @ y / (P * alpha))
    eigenvalues, vectors = torch.linalg.eigh(A)

    def exact_outputs(t: float) -> torch.Tensor:
        decay = vectors @ torch.diag(torch.exp(-t * eigenvalues)) @ vectors.T
        return alpha * x @ (u_star - decay @ u_star)

    return objective, w0, exact_outputs


def run(objective, theta0, spec: FlowSpec, until: float):
    state = start_flow(theta0, objective, spec)
    states = [state]
    while state.flow_time < until:
        state = advance(state, objective, spec)
        states.append(state)
    return states


@pytest.mark.parametrize("alpha", [1e-3, 1.0, 1e3])
def test_linear_flow_tracks_closed_form(alpha):
    """Default tolerances: every accepted point within 0.5% of the exact f(t) (measured
    0.28%, the same at every α: the α-trick makes the time scale α-independent)."""
    objective, w0, exact = linear_problem(alpha)
    states = run(objective, w0, FlowSpec(integrator="paper"), until=3.0)
    worst = max(
        (s.outputs - exact(s.flow_time)).norm() / exact(s.flow_time).norm() for s in states[1:]
    )
    assert worst < 5e-3
    margins = max((s.outputs * objective.y).max().item() for s in states)
    assert margins < 1.0  # precondition of the closed form: no margin satisfied


def test_linear_flow_error_shrinks_with_the_turn_tolerance():
    """Euler's error ∝ dt ∝ √turn: each decade of tolerance gains ~√10 (measured 2.7-3.2)."""
    objective, w0, exact = linear_problem(1.0)
    errors = []
    for turn in (1e-3, 1e-4, 1e-5):
        states = run(objective, w0, FlowSpec(integrator="paper", max_gradient_turn=turn), until=3.0)
        errors.append(
            max(
                ((s.outputs - exact(s.flow_time)).norm() / exact(s.flow_time).norm()).item()
                for s in states[1:]
            )
        )
    assert errors[2] < 1.5e-3
    assert errors[0] > 2 * errors[1] > 4 * errors[2]


def test_huge_initial_dt_is_rejected_and_divided_by_ten():
    objective, w0, _ = linear_problem(1.0)
    spec = FlowSpec(integrator="paper", dt_initial=1e6)
    state = start_flow(w0, objective, spec)
    tried = []
    while True:
        tried.append(state.dt)
        state, accepted = attempt_step(state, objective, spec)
        if accepted:
            break
    assert len(tried) >= 4  # 1e6, 1e5, 1e4, ... all rejected
    assert all(b == pytest.approx(a / 10, rel=1e-15) for a, b in zip(tried, tried[1:]))
    assert state.rejections == len(tried) - 1 and state.evaluations == len(tried) + 1
    assert state.flow_time == tried[-1] and state.step == 1


def test_easy_steps_grow_dt_by_ten_percent_and_reuse_the_gradient():
    objective, w0, _ = linear_problem(1.0)
    spec = FlowSpec(integrator="paper", dt_initial=1e-6)
    state = start_flow(w0, objective, spec)
    dts = [state.dt]
    for _ in range(20):
        state = advance(state, objective, spec)
        dts.append(state.dt)
    assert all(b == pytest.approx(1.1 * a, rel=1e-15) for a, b in zip(dts, dts[1:]))
    assert state.evaluations == 21 and state.rejections == 0  # one evaluation per step
    assert state.flow_time == pytest.approx(sum(dts[:-1]), rel=1e-14)
    torch.testing.assert_close(state.gradient, objective(state.theta)[0], rtol=0, atol=0)


def test_control_is_elementwise_and_matches_the_scalar_rule():
    spec = FlowSpec(integrator="paper")
    cases = [
        (1.0, 1e-5, 0.01),
        (1.0, 6e-5, 0.01),
        (1.0, 1e-5, 0.07),
        (2.0, 2e-4, 0.01),
        (2.0, 1e-5, 0.2),
        (3.0, float("nan"), 0.0),
        (3.0, 0.0, float("inf")),
    ]
    scalar = [control(*case, spec) for case in cases]
    assert [a for a, _ in scalar] == [True, True, True, False, False, False, False]
    assert [dt for _, dt in scalar] == [1.1, 1.0, 1.0, 0.2, 0.2, 0.3, 0.3]
    dt, turn, change = (torch.tensor(c, dtype=F64) for c in zip(*cases))
    accept, new_dt = control(dt, turn, change, spec)
    assert accept.tolist() == [a for a, _ in scalar]
    assert new_dt.tolist() == [d for _, d in scalar]


class TinyNet(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.nn.Parameter(torch.randn(8, 3, generator=g, dtype=F64))
        self.w2 = torch.nn.Parameter(torch.randn(8, generator=g, dtype=F64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w1.T / math.sqrt(3)) @ self.w2 / math.sqrt(8)


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_nonlinear_flow_matches_tiny_dt_euler(alpha):
    """Adaptive flow vs plain Euler with dt ≈ 1e-3 up to the same flow time t ≈ 1
    (Euler converged: dt = 1e-4 changes its outputs by < 1e-4 relative)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(40, 3, generator=g, dtype=F64)
    y = torch.sign(x[:, 0] * x[:, 1])
    net = TinyNet(seed=2)
    theta0 = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    with torch.no_grad():
        initial = net(x)
    objective = AlphaObjective(
        net, alpha, loss_derivative(LossSpec("softhinge", 20.0)), x, y, initial
    )
    final = run(objective, theta0, FlowSpec(integrator="paper"), until=1.0)[-1]
    steps = math.ceil(final.flow_time / 1e-3)
    theta, dt = theta0, final.flow_time / steps  # plain Euler, dt ≈ 1e-3
    for _ in range(steps):
        theta = theta - dt * objective(theta)[0]
    euler_outputs = objective(theta)[1]
    error = (final.outputs - euler_outputs).norm() / euler_outputs.norm()
    assert error < 1e-2  # measured 1.6e-3 at α = 0.1
    assert final.evaluations < steps / 10  # with far fewer evaluations


def test_stop_reasons_in_order():
    spec = FlowSpec(integrator="paper", max_steps=10, max_time=5.0, max_wall_seconds=60.0)
    vec = torch.ones(2, dtype=F64)
    state = FlowState(vec, vec, vec, gradient_norm=1.0, dt=0.1, flow_time=1.0, step=3)
    assert stop_reason(state, 5, spec) is None
    assert stop_reason(state, 0, spec) == "fitted"
    assert stop_reason(FlowState(vec, vec, vec, float("nan"), 0.1), 0, spec) == "nan"
    assert stop_reason(FlowState(vec, vec, vec, 1.0, 0.0), 5, spec) == "stalled"  # dt underflow
    assert stop_reason(FlowState(vec, vec, vec, 0.0, 0.1), 5, spec) == "zero_gradient"
    assert stop_reason(FlowState(vec, vec, vec, 1.0, 0.1, 1.0, 10), 5, spec) == "max_steps"
    assert stop_reason(FlowState(vec, vec, vec, 1.0, 0.1, 5.0, 3), 5, spec) == "max_time"
    assert stop_reason(state, 5, spec, wall_seconds=61.0) == "max_wall"


def test_a_point_where_every_step_fails_stalls_once_dt_is_below_1e_12():
    def evaluate(theta: torch.Tensor):
        if torch.equal(theta, torch.zeros(2, dtype=F64)):
            return torch.ones(2, dtype=F64), torch.zeros(3, dtype=F64)
        return torch.full((2,), float("nan"), dtype=F64), torch.zeros(3, dtype=F64)

    spec = FlowSpec(integrator="paper")
    state = advance(start_flow(torch.zeros(2, dtype=F64), evaluate, spec), evaluate, spec)
    assert state.dt < 1e-12 <= state.dt * spec.dt_shrink and state.step == 0
    assert stop_reason(state, 3, FlowSpec(integrator="paper")) == "stalled"


def test_rebatch_reevaluates_at_the_same_point():
    objective, w0, _ = linear_problem(1.0)
    spec = FlowSpec(integrator="paper")
    state = advance(start_flow(w0, objective, spec), objective, spec)
    batch = torch.arange(10)
    again = rebatch(state, lambda t: objective(t, batch))
    assert torch.equal(again.theta, state.theta) and again.evaluations == state.evaluations + 1
    torch.testing.assert_close(again.outputs, state.outputs[batch])


def hinge_problem(alpha: float):
    """TinyNet on 20 separable points with the hinge: margins start crossing 1 at t ≈ 1.1."""
    g = torch.Generator().manual_seed(5)
    x = 2 * torch.randn(20, 3, generator=g, dtype=F64)
    y = torch.sign(x[:, 0])
    net = TinyNet(seed=2)
    theta0 = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    with torch.no_grad():
        initial = net(x)
    objective = AlphaObjective(
        net, alpha, loss_derivative(LossSpec("hinge")), x, y, initial, kinked=True
    )
    return objective, theta0


@pytest.mark.parametrize("alpha, tolerance", [(0.3, 1e-2), (3.0, 3e-2)])
def test_hinge_flow_crosses_kinks_and_matches_tiny_dt_euler(alpha, tolerance):
    """With the kink continuation the flow follows Euler dt ≈ 1e-3 (itself within 1e-4 of
    dt = 1e-4) through ~15 crossings of margin 1 up to t = 2.5 (measured 0.27 % / 1.3 %)."""
    objective, theta0 = hinge_problem(alpha)
    spec = FlowSpec(integrator="paper")
    state = start_flow(theta0, objective, spec)
    while state.flow_time < 2.5:
        state = advance(state, objective, spec, objective.across_kink)
    steps = math.ceil(state.flow_time / 1e-3)
    theta, dt = theta0, state.flow_time / steps
    for _ in range(steps):
        theta = theta - dt * objective(theta)[0]
    euler_outputs = objective(theta)[1]
    assert unsatisfied_margins(objective.y * euler_outputs) <= 10  # kinks were crossed
    assert unsatisfied_margins(objective.y * state.outputs) == unsatisfied_margins(
        objective.y * euler_outputs
    )
    error = (state.outputs - euler_outputs).norm() / euler_outputs.norm()
    assert error < tolerance


def test_without_the_kink_continuation_the_hinge_flow_stalls():
    """The controller exactly as designed (no continuation) shrinks dt without end at the
    first crossing (t ≈ 1.1), never satisfying a margin: why the continuation exists."""
    objective, theta0 = hinge_problem(3.0)
    spec = FlowSpec(integrator="paper")
    state = start_flow(theta0, objective, spec)
    while state.flow_time < 2.5 and state.dt > 1e-12:
        state = advance(state, objective, spec)
    assert state.dt <= 1e-12 and state.flow_time < 1.2
    assert unsatisfied_margins(objective.y * state.outputs) == 20
