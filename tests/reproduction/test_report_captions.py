"""The docs figures of reproduction/report.py carry `phasegrid plot`'s caption (campaign,
budget, integrator, loss), in the figure and in the PNG's Description, read back from the
file. The campaigns are tests/figures' synthetic one written to disk (no training): one at a
step budget only, one whose cells also stop at a flow-time budget ([flow] max_time)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from figures import test_plots
from PIL import Image

from pipeline.drivers.plot import load_campaign_data
from pipeline.figures import CampaignData
from reproduction.report import draw_figures

STEPS = "budget 10,000 steps"
SETTINGS = "integrator euler-heun · loss softhinge (β = 20)"


def synthetic(root: Path, max_time: float | None) -> CampaignData:
    """test_plots' synthetic campaign (2 seeds) under `root`, its cells at `max_time`."""
    test_plots.synthetic_campaign(root, seeds=2)
    if max_time is not None:
        cells = pd.read_parquet(root / "cells")
        test_plots.write_table(root, "cells", cells.assign(max_time=max_time))
    data = load_campaign_data(str(root))
    assert data is not None
    return data


@pytest.fixture(scope="module")
def report_figures(tmp_path_factory) -> Path:
    """draw_figures on mnist_phase (step budget) and jamming_random (also flow time 1,000),
    named as the report names them (stem -> campaign name); jamming_mnist absent."""
    store = tmp_path_factory.mktemp("store")
    data = {
        "mnist_phase": synthetic(store / "mnist-phase", None),
        "jamming_random": synthetic(store / "jamming-random", 1000.0),
    }
    folder = store / "figures"
    names = {"mnist_phase": "mnist-phase", "jamming_random": "jamming-random"}
    drawn = draw_figures(data, folder, names)
    assert {"mnist_phase_diagram", "jamming_random", "n_star"} <= set(drawn), drawn
    return folder


def description(path: Path) -> str:
    with Image.open(path) as png:
        return png.text["Description"]


def test_a_report_figure_carries_its_campaign_budget_and_settings(report_figures):
    expected = f"campaign mnist-phase · {STEPS} · {SETTINGS}"
    for name in ("mnist_phase_diagram", "mnist_double_descent", "mnist_regimes"):
        assert description(report_figures / f"{name}.png") == expected, name


def test_a_flow_time_budget_is_in_the_caption(report_figures):
    expected = f"campaign jamming-random · {STEPS} or flow time 1,000 · {SETTINGS}"
    assert description(report_figures / "jamming_random.png") == expected
    # N*(P) of the jamming campaigns present (jamming_mnist is not): that one's caption
    assert description(report_figures / "n_star.png") == expected


def test_a_figure_of_two_campaigns_names_both_and_both_budgets(tmp_path, report_figures):
    random = synthetic(tmp_path / "random", 1000.0)
    mnist = synthetic(tmp_path / "mnist", None)
    mnist = CampaignData(
        mnist.cells.assign(max_steps=20_000), mnist.ensembles, mnist.boundaries, mnist.kernels
    )
    names = {"jamming_random": "jr", "jamming_mnist": "jm"}
    draw_figures({"jamming_random": random, "jamming_mnist": mnist}, tmp_path / "f", names)
    assert description(tmp_path / "f" / "n_star.png") == (
        f"campaign jr + jm · budget 10,000 steps / 20,000 steps or flow time 1,000 · {SETTINGS}"
    )
