"""Batched ensembles and the fast FC step: the hand-written pass against autograd, a bundle
against each of its cells trained alone by train_cell (the reference engine), the bundle
plan and cost model, and the scheduler's batched attempts with their per-cell retry."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from pipeline.execute import stream as scheduler
from tasks import bundling as ensemble
from tasks.activations import ACTIVATIONS, activation
from tasks.batched_fc import BatchedFC, stack_parameters
from tasks.bundling import bundle_pays, can_batch, plan_bundles, training_plan
from tasks.models import FullyConnected
from tasks.records import CellResult, Measurement
from tasks.specs import CellSpec, DataSpec, FlowSpec, LossSpec, ModelSpec, ObservableSpec
from tasks.train_bundle import train_bundle
from tasks.train_cell import train_cell

RTOL = 1e-8  # per-cell numbers, bundle vs alone (float64; rounding differs, decisions not)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cell(
    alpha_tilde: float = 1.0, seed: int = 0, loss: str = "softhinge", width: int = 16, **flow
) -> CellSpec:
    return CellSpec(
        alpha_tilde=alpha_tilde,
        seed=seed,
        data=DataSpec("stripe", dimension=5, train_size=32, test_size=64, kernel_size=16),
        model=ModelSpec(width=width, depth=2),
        loss=LossSpec(loss),
        flow=FlowSpec(**({"max_steps": 300, "max_time": 1.0} | flow)),
    )


def by_member(specs: list[CellSpec]) -> list[list[Measurement | CellResult]]:
    records: list[list] = [[] for _ in specs]
    for i, record in train_bundle(specs):
        records[i].append(record)
    return records


def assert_same_records(alone: list, bundled: list) -> None:
    """Every field of every record equal up to RTOL (wall seconds aside)."""
    assert [type(r) for r in bundled] == [type(r) for r in alone]
    for a, b in zip(alone, bundled):
        for f in dataclasses.fields(a):
            if f.name == "wall_seconds":
                continue
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(x, np.ndarray):
                np.testing.assert_allclose(y, x, rtol=RTOL, atol=1e-12, err_msg=f.name)
            elif isinstance(x, float):
                assert (math.isnan(x) and math.isnan(y)) or y == pytest.approx(
                    x, rel=RTOL, abs=1e-12
                ), (f.name, a.step if hasattr(a, "step") else "", x, y)
            else:
                assert x == y, (f.name, x, y)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_derivative_is_autograds(name):
    act = activation(name, 10.0 if name != "relu" else 1.0)
    x = torch.cat(
        [
            torch.linspace(-4, 4, 401, dtype=torch.float64),
            torch.tensor([0.0, 5.0, -7.0], dtype=torch.float64),
        ]
    ).requires_grad_(True)
    (expected,) = torch.autograd.grad(act(x).sum(), x)
    torch.testing.assert_close(act.derivative(x.detach()), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("depth", [1, 3])
def test_hand_written_pass_equals_autograd_for_each_member(name, bias, depth):
    generator = torch.Generator().manual_seed(depth)
    models = [FullyConnected(4, 6, depth, name, 3.0, bias, generator) for _ in range(3)]
    x = torch.randn(9, 4, generator=generator, dtype=torch.float64)
    net, theta = BatchedFC.of(models[0]), stack_parameters(models)
    workspace = net.workspace(3, 9, x)
    net.forward(theta.flip(0), x, workspace)  # a stale pass in the reused workspace
    raw, saved = net.forward(theta, x, workspace)
    cotangent = torch.randn(3, 9, generator=generator, dtype=torch.float64)
    gradient = net.backward(saved, cotangent)
    assert theta.shape[1] == net.n_params == sum(p.numel() for p in models[0].parameters())
    for i, model in enumerate(models):
        f = model(x)
        expected = torch.autograd.grad(f, list(model.parameters()), cotangent[i])
        torch.testing.assert_close(raw[i], f.detach(), rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(
            gradient[i], torch.cat([g.reshape(-1) for g in expected]), rtol=1e-12, atol=1e-13
        )


@pytest.mark.parametrize("integrator, max_steps", [("paper", 300), ("euler-heun", 60)])
def test_bundle_of_four_gives_each_cell_the_records_it_has_alone(integrator, max_steps):
    specs = [
        cell(alpha_tilde, seed, integrator=integrator, max_steps=max_steps)
        for alpha_tilde in (0.3, 10.0)
        for seed in (0, 1)
    ]
    bundled = by_member(specs)
    results = [records[-1] for records in bundled]
    # the members really went their own ways: stopped at different steps, with rejections
    assert len({r.steps for r in results}) >= 3
    assert {r.stop_reason for r in results} == {"max_time", "max_steps"}
    assert all(r.gradient_evaluations > r.steps + 1 for r in results)
    # euler-heun: one forward per trial at the Heun point, none at the start
    assert all(
        r.forward_evaluations == (r.gradient_evaluations - 1 if integrator == "euler-heun" else 0)
        for r in results
    )
    for spec, records in zip(specs, bundled):
        assert_same_records(list(train_cell(spec)), records)


@pytest.mark.parametrize("integrator", ["paper", "euler-heun"])
def test_single_cell_fast_path_and_relu_match_train_cell(integrator):
    specs = [
        dataclasses.replace(
            cell(0.3, 0, integrator=integrator, max_time=None, max_steps=120),
            model=ModelSpec(width=16, depth=2, activation="relu"),
        )
    ]
    for spec in specs + [cell(3.0, 1, integrator=integrator, max_steps=60)]:
        assert_same_records(list(train_cell(spec)), by_member([spec])[0])
    bundled = by_member([cell(1.0, 0, integrator=integrator), cell(1.0, 1, integrator=integrator)])
    assert all(records[-1].steps > 10 for records in bundled)


def test_single_cell_fast_path_and_kink_continuation_match_train_cell():
    specs = [
        cell(0.3, 0, loss="hinge", max_time=None, max_steps=150, integrator="paper"),
        cell(3.0, 1, loss="hinge", max_time=None, max_steps=150, integrator="paper"),
    ]
    bundled = by_member(specs)
    alone = [list(train_cell(spec)) for spec in specs]
    for records, reference in zip(bundled, alone):
        assert_same_records(reference, records)
    assert_same_records(alone[0], by_member(specs[:1])[0])
    # the hinge's kink made the flow evaluate continued gradients (evaluations > trials)
    assert any(r[-1].gradient_evaluations > r[-1].steps + r[-1].steps // 10 for r in alone)


def test_float32_objective_matches_autograd_at_single_precision():
    from tasks.bundling import EnsembleObjective
    from tasks.losses import soft_hinge_derivative
    from tasks.train_cell import prepare_cell

    reference = prepare_cell(
        dataclasses.replace(
            cell(), observables=ObservableSpec(dtype="float32", ntk=False, h0_spectrum=False)
        )
    )
    net = BatchedFC.of(reference.model)
    theta = reference.theta0 + 0.01
    objective = EnsembleObjective(
        net,
        reference.task.x_train,
        reference.task.y_train,
        torch.tensor([reference.spec.alpha]),
        reference.objective.initial_outputs[None],
        lambda z: soft_hinge_derivative(z, 20.0),
    )
    gradient, outputs, _ = objective(theta[None])
    expected_gradient, expected_outputs = reference.objective(theta)
    assert gradient.dtype == torch.float32
    torch.testing.assert_close(gradient[0], expected_gradient, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(outputs[0], expected_outputs, rtol=1e-4, atol=1e-6)


def test_incompatible_cells_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="train_cell"):
        list(train_bundle([cell(width=8), cell(width=16)]))
    minibatch = cell(batch_size=8)
    assert not can_batch([minibatch]) and can_batch([cell(1.0, 0), cell(2.0, 5)])
    cnn = dataclasses.replace(cell(), model=ModelSpec(arch="cnn", width=4, depth=1))
    assert not can_batch([cnn])


def test_plan_puts_same_shape_cells_together_in_grid_order():
    grid = [cell(a, s, width=w) for w in (8, 16) for a in (0.1, 1.0, 10.0) for s in range(4)]
    odd = [cell(batch_size=8), cell(batch_size=4)]
    bundles = plan_bundles(grid + odd, 8)
    assert sorted(c.cell_id for b in bundles for c in b) == sorted(c.cell_id for c in grid + odd)
    assert all(len(b) <= 8 and can_batch(b) for b in bundles if b[0] in grid)
    points = [[(c.width, c.alpha_tilde, c.seed) for c in b] for b in bundles]
    assert points[:2] == [
        [(8, a, s) for a in (0.1, 1.0) for s in range(4)],
        [(8, 10.0, s) for s in range(4)],
    ]
    assert [len(b) for b in bundles] == [8, 4, 8, 4, 2] and bundles[-1] == odd
    assert [len(b) for b in plan_bundles(grid, 1)] == [1] * len(grid)
    with pytest.raises(ValueError, match="bundle_size"):
        plan_bundles(grid, 0)


def test_cost_model_bundles_small_nets_on_cpu_and_everything_on_gpu():
    assert bundle_pays("cpu", 256, 32, 2, 16, 5)  # stripe peer size: measured 2.0x
    assert not bundle_pays("cpu", 512, 64, 2, 16, 10)  # measured 0.93x
    assert not bundle_pays("cpu", 1000, 128, 2, 16, 10)  # measured 0.8x
    assert not bundle_pays("cpu", 5000, 256, 2, 16, 10)  # the paper's size
    assert bundle_pays("cuda", 5000, 256, 2, 16, 10)
    assert not bundle_pays("cuda", 256, 32, 2, 1, 5)  # one member: nothing to bundle
    small = [cell(a, s) for a in (0.3, 3.0) for s in (0, 1)]
    assert training_plan(small, "cpu") == ([small], [])
    big = [
        dataclasses.replace(
            c,
            data=dataclasses.replace(c.data, train_size=5000),
            model=dataclasses.replace(c.model, width=256),
        )
        for c in small
    ]
    assert training_plan(big, "cpu") == ([[c] for c in big], [])
    assert training_plan(big, "cuda") == ([big], [])
    snapshots = [dataclasses.replace(c, checkpoint_every_seconds=60.0) for c in small]
    assert training_plan(snapshots, "cpu") == ([], snapshots)


def events_by_cell(events: list) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for event in events:
        grouped.setdefault(event.cell_id, []).append(event)
    return grouped


def test_bundle_task_streams_each_cell_as_its_own_attempt():
    specs = [cell(0.3, 0, max_steps=40), cell(10.0, 1, max_steps=40)]
    events = events_by_cell(list(scheduler.bundle_task(specs, flush_seconds=0.0)))
    for spec in specs:
        started, *batches, finished = events[spec.cell_id]
        assert isinstance(started, scheduler.AttemptStarted)
        assert isinstance(finished, scheduler.AttemptFinished) and finished.error is None
        assert {e.attempt_id for e in batches} == {started.attempt_id} == {finished.attempt_id}
        streamed = [m for batch in batches for m in batch.measurements]
        assert streamed == list(finished.measurements)[: len(streamed)] and streamed
        assert_same_records(list(train_cell(spec)), list(finished.measurements) + [finished.result])


def test_failed_batched_run_is_retried_cell_by_cell_with_train_cell(monkeypatch):
    specs = [cell(0.3, 0, max_steps=30, max_time=None), cell(10.0, 1, max_steps=30, max_time=None)]
    calls = {"n": 0}
    real = ensemble.EnsembleObjective.__call__

    def fails_after_ten(self, *args, **kwargs):  # a fault of the batched engine only
        calls["n"] += 1
        if calls["n"] > 10:
            raise FloatingPointError("injected batched failure")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ensemble.EnsembleObjective, "__call__", fails_after_ten)
    events = events_by_cell(list(scheduler.bundle_task(specs, flush_seconds=0.0)))
    for spec in specs:
        starts = [e for e in events[spec.cell_id] if isinstance(e, scheduler.AttemptStarted)]
        (finished,) = [e for e in events[spec.cell_id] if isinstance(e, scheduler.AttemptFinished)]
        assert len(starts) == 2 and finished.attempt_id == starts[1].attempt_id
        assert finished.error is None and finished.result.steps == 30
        assert_same_records(list(train_cell(spec)), list(finished.measurements) + [finished.result])
