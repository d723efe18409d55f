"""A stalled cell is never a result: in a stored campaign it is not fitted, is left out of
ensembles and jamming lines, is drawn hatched grey (not black) in the phase diagram and is
listed by `status` with the fix (the stall rules themselves: tests/tasks/test_stalls.py)."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.drivers.aggregate import aggregate_campaign
from pipeline.drivers.plot import load_campaign_data
from pipeline.drivers.status import campaign_status
from pipeline.figures.phase import STALLED, phase_diagram
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.rows import Provenance, done_tables, manifest_table, utc_now
from support.spec_examples import RELU_PAPER, relu_paper_cells
from tasks.train_cell import train_cell

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_stalled_cells_are_left_out_of_ensembles_and_jamming_and_shown_apart(tmp_path):
    campaign = str(tmp_path / "relu-paper")
    store = ParquetStore.open(campaign, create=True)
    store.write_spec(tomllib.loads(RELU_PAPER), RELU_PAPER)  # as `phasegrid run` does
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
