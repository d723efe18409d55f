"""A stalled cell is never jammed: Fig. 7B (N_Δ/N against the loss) and Fig. 7C (H₀ at the
widest jammed width) leave it out (support.jamming_frames: its N_Δ/N is 5/4, its H₀
eigenvalue 10⁶; with stop_reason max_steps, the oracle, both would show it)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from pipeline.figures.jamming import jamming, nearest_jamming_spectra
from support.jamming_frames import STALLED_H0, jamming_line

matplotlib.use("Agg")


@pytest.mark.parametrize("reason, points", [("stalled", 5), ("max_steps", 6)])
def test_the_unsatisfied_panel_draws_no_stalled_cell(reason, points):
    fig = jamming(jamming_line(reason))
    panel = next(ax for ax in fig.axes if "jumps at jamming" in ax.get_title())
    offsets = panel.collections[0].get_offsets()
    assert len(offsets) == points  # the cells with a positive loss
    assert (np.asarray(offsets)[:, 1] <= 1).all() == (reason == "stalled")


@pytest.mark.parametrize("reason", ["stalled", "max_steps"])
def test_the_spectrum_near_jamming_pools_no_stalled_cell(reason):
    ((label, values),) = nearest_jamming_spectra(jamming_line(reason))
    assert "h = 8" in label
    assert (STALLED_H0 in values) == (reason == "max_steps")
    assert len(values) == (4 if reason == "stalled" else 5)
