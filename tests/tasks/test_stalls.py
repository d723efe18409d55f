"""A stall is never a result: the stall rules of every integrator (tasks/flow.py) and the
paper controller stalling on a relu cell in both engines (the campaign side: stalled cells
left out of ensembles, jamming lines and figures, in tests/drivers/test_stalled_campaign.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from support.spec_examples import relu_paper_cells
from tasks.flow import MIN_DT, STALL_WINDOW, FlowState, Trial, conclude, stop_reason
from tasks.records import CellResult
from tasks.specs import FlowSpec
from tasks.train_bundle import train_bundle
from tasks.train_cell import train_cell

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VEC = torch.ones(2, dtype=torch.float64)


def accepted(state: FlowState, spec: FlowSpec, moved: bool = True) -> FlowState:
    """The state after an accepted trial whose error is exactly the tolerance (dt × 0.9)."""
    trial = Trial(1.0, math.nan, 0.0, spec.max_local_error, moved)
    state, ok = conclude(state, trial, spec, VEC, VEC, VEC)
    assert ok
    return state


def test_an_accepted_step_that_leaves_theta_unchanged_stalls_at_once():
    spec = FlowSpec()
    state = accepted(FlowState(VEC, VEC, VEC, 1.0, 0.1), spec, moved=False)
    assert state.step == 1 and stop_reason(state, 5, spec) == "stalled"
    assert stop_reason(state, 0, spec) == "fitted"  # N_Δ = 0 is a fact about θ


def test_flow_time_frozen_over_a_window_of_steps_stalls_above_the_dt_floor():
    """dt = 1e-9 shrinking ×0.9 per step at t = 1e5: 50 steps add ~1e-8 < 1e-12·t, while
    dt stays above 1e-12; the same steps at t = 1 are a healthy flow."""
    spec = FlowSpec()
    for flow_time, stalls in ((1e5, True), (1.0, False)):
        state = FlowState(VEC, VEC, VEC, 1.0, 1e-9, flow_time, window_time=flow_time)
        for _ in range(STALL_WINDOW - 1):
            state = accepted(state, spec)
            assert stop_reason(state, 5, spec) is None
        state = accepted(state, spec)
        assert state.dt > MIN_DT
        assert (stop_reason(state, 5, spec) == "stalled") == stalls


def test_the_paper_controller_on_a_relu_cell_stalls_within_100_steps_in_both_engines():
    cell = next(c for c in relu_paper_cells() if c.alpha_tilde == 1.0)
    *_, alone = train_cell(cell)
    bundled = next(r for _, r in train_bundle([cell]) if isinstance(r, CellResult))
    for result in (alone, bundled):
        assert result.stop_reason == "stalled" and result.steps < 100 and not result.fitted
    *_, healthy = train_cell(
        dataclasses.replace(cell, flow=dataclasses.replace(cell.flow, integrator="euler-heun"))
    )
    assert healthy.stop_reason != "stalled" and healthy.steps > 100
