"""The docs figures of reproduction/report.py carry `phasegrid plot`'s caption (campaign,
budget, integrator, loss), in the figure and in the PNG's Description, read back from the
file. The campaigns are tests/figures' synthetic one written to disk (no training): one at a
step budget only, one whose cells also stop at a flow-time budget ([flow] max_time)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from figures import test_plots
from PIL import Image

from pipeline.drivers.plot import load_campaign_data
from pipeline.figures import CampaignData
from reproduction.report import draw_figures, n_star_figure

STEPS = "budget 10,000 steps"
SETTINGS = "integrator euler-heun · loss softhinge (β = 20)"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> CampaignData:
    """test_plots' synthetic campaign on a smaller grid (test_stray_labels' widths and α̃,
    two P, two seeds), written and read back once."""
    root = tmp_path_factory.mktemp("campaign")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_plots, "WIDTHS", (8, 16, 32, 64, 128))  # jamming at N = 2P inside
        patch.setattr(test_plots, "ALPHAS", (0.01, 1.0, 100.0))
        test_plots.synthetic_campaign(root, train_sizes=(128, 512), seeds=2)
    data = load_campaign_data(str(root))
    assert data is not None
    return data


def with_cells(data: CampaignData, **columns) -> CampaignData:
    """`data` with its cells' `columns` set (a budget of another campaign)."""
    return dataclasses.replace(data, cells=data.cells.assign(**columns))


@pytest.fixture(scope="module")
def report_figures(tmp_path_factory, campaign) -> Path:
    """draw_figures on stripe_curves (step budget) and jamming_random (also flow time
    1,000), named as the report names them (stem -> campaign name); jamming_mnist absent."""
    data = {"stripe_curves": campaign, "jamming_random": with_cells(campaign, max_time=1000.0)}
    folder = tmp_path_factory.mktemp("figures")
    names = {"stripe_curves": "stripe-curves", "jamming_random": "jamming-random"}
    drawn = draw_figures(data, folder, names)
    assert set(drawn) == {"stripe_learning_curves", "jamming_random", "n_star"}, drawn
    return folder


def description(path: Path) -> str:
    with Image.open(path) as png:
        return png.text["Description"]


def test_a_report_figure_carries_its_campaign_budget_and_settings(report_figures):
    expected = f"campaign stripe-curves · {STEPS} · {SETTINGS}"
    assert description(report_figures / "stripe_learning_curves.png") == expected


def test_a_flow_time_budget_is_in_the_caption(report_figures):
    expected = f"campaign jamming-random · {STEPS} or flow time 1,000 · {SETTINGS}"
    assert description(report_figures / "jamming_random.png") == expected
    # N*(P) of the jamming campaigns present (jamming_mnist is not): that one's caption
    assert description(report_figures / "n_star.png") == expected


def test_a_figure_of_two_campaigns_names_both_and_both_budgets(tmp_path, campaign):
    data = {
        "jamming_random": with_cells(campaign, max_time=1000.0),
        "jamming_mnist": with_cells(campaign, max_steps=20_000),
        "stripe_curves": None,  # absent: drawn nowhere
    }
    names = {"jamming_random": "jr", "jamming_mnist": "jm"}
    assert draw_figures(data, tmp_path, names) == {
        "jamming_random": "jamming_random.png",
        "jamming_mnist": "jamming_mnist.png",
        "n_star": "n_star.png",
    }
    assert description(tmp_path / "n_star.png") == (
        f"campaign jr + jm · budget 10,000 steps / 20,000 steps or flow time 1,000 · {SETTINGS}"
    )
    assert description(tmp_path / "jamming_mnist.png").startswith("campaign jm · budget 20,000")


def test_the_n_star_figure_draws_every_line_its_legend_names(tmp_path):
    """The N = P reference spans the located P, here over more than a decade (it was all
    NaN: drawn from the still-linear axes' limits, which go negative on such a range — a
    legend entry for nothing)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test_plots, "WIDTHS", (2, 4, 8, 16, 32, 64, 128))
        patch.setattr(test_plots, "ALPHAS", (1.0,))
        test_plots.synthetic_campaign(tmp_path, train_sizes=(8, 512), seeds=2)
    data = load_campaign_data(str(tmp_path))
    ax = n_star_figure(data, None).axes[0]
    labelled = [line for line in ax.lines if not line.get_label().startswith("_")]
    assert [line.get_label() for line in labelled][-1] == "$N = P$"
    for line in labelled:
        assert np.isfinite(np.asarray(line.get_ydata(), float)).all(), line.get_label()
