"""A stalled cell is never jammed: the jamming claims that read raw cells leave it out
(the stalled cell of support.jamming_frames would put N_Δ/N = 5/4 at jamming)."""

from __future__ import annotations

import dataclasses

import pandas as pd

from reproduction import claims_jamming
from support.jamming_frames import jamming_line


def test_a_stalled_cell_is_not_counted_among_the_jammed_cells_at_jamming():
    at_jamming = claims_jamming.unsatisfied_at_jamming(jamming_line("stalled"))
    assert len(at_jamming) == 2 and (at_jamming["width"] == 8).all()
    assert (at_jamming["ratio"] == 0.5).all()
    unfitted = claims_jamming.unsatisfied_at_jamming(jamming_line("max_steps"))  # the oracle
    assert len(unfitted) == 3 and unfitted["ratio"].max() > 1


def test_hypostatic_claim_is_not_spoilt_by_a_stalled_cell():
    """Flat loss traces (every cell converged): the stalled cell is not a candidate, the
    ordinary unfitted cell with N_Δ/N = 5/4 is."""
    stalled = claims_jamming.hypostatic({"x": with_flat_traces(jamming_line("stalled"))})
    assert stalled.numbers["x"]["candidates"] == 2 and stalled.numbers["x"]["qualified"] == 2
    assert stalled.numbers["x"]["share_mean"] == 0.5
    oracle = claims_jamming.hypostatic({"x": with_flat_traces(jamming_line("max_steps"))})
    assert oracle.numbers["x"]["qualified"] == 3 and oracle.numbers["x"]["share_mean"] == 0.75


def with_flat_traces(data):
    """`data` with a measurements trace per cell whose loss and N_Δ stay at their final values
    from flow time 1 to 10."""
    cells = data.cells
    trace = pd.concat([cells.assign(flow_time=t) for t in (1.0, 5.0, 10.0)], ignore_index=True)[
        ["cell_id", "flow_time", "train_loss", "n_unsatisfied"]
    ]
    return dataclasses.replace(data, cells=cells.assign(flow_time=10.0), measurements=trace)


def test_the_fitted_fraction_line_skips_a_grid_point_whose_seeds_all_stalled():
    data = jamming_line("stalled")
    ensembles = data.ensembles.copy()
    at_4 = ensembles["width"] == 4
    ensembles.loc[at_4, ["n_seeds", "fitted_fraction"]] = (0, float("nan"))  # all stalled
    line = claims_jamming.fitted_fraction_lines(
        type(data)(data.cells, ensembles, data.boundaries)
    ).iloc[0]
    assert line["first"] == 0.0 and line["last"] == 1.0 and line["monotone"]
