"""A stalled cell is never jammed: the jamming claims that read raw cells leave it out
(the stalled cell of support.jamming_frames would put N_Δ/N = 5/4 at jamming)."""

from __future__ import annotations

from reproduction import claims_jamming
from reproduction.claims import PARTLY, REPRODUCED
from support.jamming_frames import jamming_line


def test_a_stalled_cell_is_not_counted_among_the_jammed_cells_at_jamming():
    at_jamming = claims_jamming.unsatisfied_at_jamming(jamming_line("stalled"))
    assert len(at_jamming) == 2 and (at_jamming["width"] == 8).all()
    assert (at_jamming["ratio"] == 0.5).all()
    unfitted = claims_jamming.unsatisfied_at_jamming(jamming_line("max_steps"))  # the oracle
    assert len(unfitted) == 3 and unfitted["ratio"].max() > 1


def test_hypostatic_claim_is_not_spoilt_by_a_stalled_cell():
    assert claims_jamming.hypostatic({"x": jamming_line("stalled")}).verdict == REPRODUCED
    assert claims_jamming.hypostatic({"x": jamming_line("max_steps")}).verdict == PARTLY


def test_the_fitted_fraction_line_skips_a_grid_point_whose_seeds_all_stalled():
    data = jamming_line("stalled")
    ensembles = data.ensembles.copy()
    at_4 = ensembles["width"] == 4
    ensembles.loc[at_4, ["n_seeds", "fitted_fraction"]] = (0, float("nan"))  # all stalled
    line = claims_jamming.fitted_fraction_lines(
        type(data)(data.cells, ensembles, data.boundaries)
    ).iloc[0]
    assert line["first"] == 0.0 and line["last"] == 1.0 and line["monotone"]
