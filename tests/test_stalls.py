"""A stall is never a result: the stall rules of every integrator (tasks/flow.py), and a
stalled cell is not fitted, is left out of ensembles and jamming lines, is drawn hatched
grey (not black) in the phase diagram and is listed by `status` with the fix."""

from __future__ import annotations

import dataclasses
import math
import tomllib

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from typer.testing import CliRunner

from pipeline.aggregate import aggregate_campaign
from pipeline.cli import app
from pipeline.figures.phase import STALLED, phase_diagram
from pipeline.plots import load_campaign_data
from pipeline.rows import Provenance, done_tables, manifest_table, utc_now
from pipeline.spec import parse_campaign
from pipeline.status import campaign_status
from pipeline.store import ParquetStore
from tasks.flow import MIN_DT, STALL_WINDOW, FlowState, Trial, conclude, stop_reason
from tasks.records import CellResult
from tasks.specs import FlowSpec
from tasks.train_bundle import train_bundle
from tasks.train_cell import train_cell

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VEC = torch.ones(2, dtype=torch.float64)
SPEC = """
name = "relu-paper"
[data]
dataset = "stripe"
dimension = 3
train_size = 32
test_size = 100
kernel_size = 16
[model]
arch = "one-hidden"
activation = "relu"
[loss]
kind = "softhinge"
[flow]
integrator = "paper"
max_steps = 1300
[grid]
width = [8, 32]
alpha_tilde = [1.0, 1e4]
seed = [0, 1]
"""


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


def relu_paper_cells():
    return parse_campaign(tomllib.loads(SPEC)).cells()


def test_the_paper_controller_on_a_relu_cell_stalls_within_100_steps_in_both_engines():
    cell = next(c for c in relu_paper_cells() if c.alpha_tilde == 1.0)
    *_, alone = train_cell(cell)
    bundled = [r for _, r in train_bundle([cell]) if isinstance(r, CellResult)][0]
    for result in (alone, bundled):
        assert result.stop_reason == "stalled" and result.steps < 100 and not result.fitted
    *_, healthy = train_cell(
        dataclasses.replace(cell, flow=dataclasses.replace(cell.flow, integrator="euler-heun"))
    )
    assert healthy.stop_reason != "stalled" and healthy.steps > 100


def test_stalled_cells_are_left_out_of_ensembles_and_jamming_and_shown_apart(tmp_path):
    campaign = str(tmp_path / "relu-paper")
    store = ParquetStore.open(campaign, create=True)
    store.write_spec(tomllib.loads(SPEC), SPEC)  # as `phasegrid run` does
    cells = relu_paper_cells()
    store.extend_manifest(manifest_table(cells))
    for cell in cells:
        *measurements, result = train_cell(cell)
        run = Provenance("test", 1, "localhost", "cpu", "test", utc_now(), utc_now())
        store.commit(cell.cell_id, done_tables(cell, result, measurements, run))
    aggregate_campaign(campaign)
    stored = pd.read_parquet(f"{campaign}/cells")
    stalled = stored.loc[stored["stop_reason"] == "stalled"]
    assert set(stalled["alpha_tilde"]) == {1.0} and len(stalled) == 4
    assert not stalled["fitted"].any() and (stalled["steps"] < 100).all()

    ensembles = pd.read_parquet(f"{campaign}/ensembles").set_index("alpha_tilde")
    assert (ensembles.loc[1.0, "n_stalled"] == 2).all() and (
        ensembles.loc[1.0, "n_seeds"] == 0
    ).all()
    assert ensembles.loc[1.0, "fitted_fraction"].isna().all()  # not 0: not jammed
    assert (ensembles.loc[1e4, "n_stalled"] == 0).all()
    boundaries = pd.read_parquet(f"{campaign}/boundaries")
    jamming = boundaries.loc[boundaries["boundary"] == "jamming"]
    assert jamming.loc[jamming["alpha_tilde"] == 1.0, "status"].eq("no_data").all()
    assert not jamming.loc[jamming["alpha_tilde"] == 1e4, "status"].eq("no_data").any()

    fig = phase_diagram(load_campaign_data(campaign))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    ax = fig.axes[0]
    for width in (8, 32):
        x, y = ax.transData.transform((width * 1.15, 1.0 * 1.3))  # off the hatch lines
        pixel = image[int(round(image.shape[0] - y)), int(round(x))]
        assert np.abs(pixel - 255 * np.array(STALLED[:3])).max() < 12, (width, pixel)

    status = campaign_status(campaign)
    assert sorted(status.stalled["cell_id"]) == sorted(stalled["cell_id"])
    shown = CliRunner().invoke(app, ["status", campaign])
    assert shown.exit_code == 0
    assert "stalled cells (4)" in shown.output and 'integrator = "euler-heun"' in shown.output
