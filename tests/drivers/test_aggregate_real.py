"""A tiny real stripe campaign (the real engine and store): its crossover lies inside the
grid at every width, ntk_change falls with α̃, unfitted cells are black in the phase
diagram.

The fast test trains the cells in this process and commits them with the store's own
commit (no Ray); the slow one runs the same spec through `run_campaign` on embedded Ray.
Measured here (2 shared cores, budget 2,000 steps, test/kernel sets 200/32): a cell takes
0.5-1.8 s; α̃ = 0.1 never fits (ntk_change ≈ 55-65), α̃ = 10 and 10³ fit in 860-1,160 steps
(ntk_change ≈ 0.4 and 0.003) except one h = 4 seed each; the budget here is 1,300. The
whole test costs ≈ 30 s of CPU (≈ 5 s of it imports).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from pipeline.drivers.aggregate import aggregate_campaign
from pipeline.drivers.plot import load_campaign_data, plot_campaign
from pipeline.drivers.run import run_spec
from pipeline.execute.local import LocalExecutor
from pipeline.figures.phase import phase_diagram
from pipeline.spec.campaign import parse_campaign

SPEC = """
name = "stripe-phase"
[data]
dataset = "stripe"
dimension = 3
train_size = 32
test_size = 100
kernel_size = 16
[model]
arch = "one-hidden"
activation = "swish"
activation_beta = 10.0
bias = false
[loss]
kind = "softhinge"
beta = 20.0
[flow]
max_steps = 1300
[observables]
ntk = true
h0_spectrum = true
[grid]
width = [4, 16, 64]
alpha_tilde = [0.1, 10.0, 1000.0]
seed = [0, 1]
[resources]
cpus_per_task = 1
gpus_per_task = 0
bundle_size = 2
"""
WIDTHS, ALPHAS = (4, 16, 64), (0.1, 10.0, 1000.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_in_process(campaign: str) -> None:
    """Run every cell of SPEC in this process: the run driver on the LocalExecutor."""
    spec = parse_campaign(tomllib.loads(SPEC))
    summary = run_spec(spec, SPEC, str(Path(campaign).parent), LocalExecutor())
    assert (summary.campaign, summary.done, summary.failed) == (campaign, len(spec.cells()), 0)


def check_stripe_phase_diagram(campaign: str) -> None:
    report = aggregate_campaign(campaign)
    assert (report.cells_used, report.cells_failed, report.cells_pending) == (18, 0, 0)
    ensembles = pd.read_parquet(f"{campaign}/ensembles")
    boundaries = pd.read_parquet(f"{campaign}/boundaries")
    crossover = boundaries.loc[(boundaries["boundary"] == "crossover") & (boundaries["level"] == 1)]
    assert sorted(crossover["width"]) == list(WIDTHS)
    assert (crossover["status"] == "bracketed").all(), crossover
    assert ((crossover["value"] > min(ALPHAS)) & (crossover["value"] < max(ALPHAS))).all()
    for width, line in ensembles.groupby("width"):
        change = line.sort_values("alpha_tilde")["ntk_change"].to_numpy()
        assert (np.diff(change) < 0).all(), (width, change)

    unfitted = ensembles.loc[ensembles["fitted_fraction"] < 0.5]
    fitted = ensembles.loc[ensembles["fitted_fraction"] >= 0.5]
    assert len(unfitted) and len(fitted), "the grid must show both phases"
    fig = phase_diagram(load_campaign_data(campaign))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]
    ax = fig.axes[0]
    for frame, black in ((unfitted, True), (fitted, False)):
        for width, alpha in zip(frame["width"], frame["alpha_tilde"]):
            x, y = ax.transData.transform((width, alpha * 0.8))  # off the lines' centres
            pixel = image[int(round(image.shape[0] - y)), int(round(x))]
            assert (pixel.max() < 30) == black, (width, alpha, pixel)

    outcomes = plot_campaign(campaign, formats=("png",), names=["phase_diagram", "regimes"])
    assert all(o.paths and not o.skipped for o in outcomes), outcomes


def test_stripe_campaign_trained_here_has_the_lazy_feature_crossover(tmp_path):
    campaign = str(tmp_path / "stripe-phase")
    run_in_process(campaign)
    check_stripe_phase_diagram(campaign)


@pytest.mark.slow
def test_stripe_campaign_run_on_ray_has_the_lazy_feature_crossover(tmp_path):
    from pipeline.drivers.run import run_campaign

    spec_file = tmp_path / "stripe.toml"
    spec_file.write_text(SPEC)
    summary = run_campaign(str(spec_file), str(tmp_path / "results"))
    assert (summary.done, summary.failed) == (18, 0)
    check_stripe_phase_diagram(str(tmp_path / "results" / "stripe-phase"))
