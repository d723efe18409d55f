"""Figures per settings group (issue 13, case 5): a campaign holding two budgets gets each
figure once per group, drawn from that group's cells only, named and captioned by it.
The campaign is test_plots' synthetic one (max_steps 10,000) plus a second group at
max_steps 20,000 on other widths and α̃, so a figure that mixed them would show it."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from figures import test_plots

from pipeline.drivers.aggregate import aggregate_campaign
from pipeline.drivers.plot import draw_campaign, plot_campaign
from pipeline.figures.caption import caption_of
from support.figure_texts import drawn, shown_ticks

FIRST = dict(WIDTHS=(8, 16, 32, 64, 128), ALPHAS=(0.01, 1.0, 100.0))
SECOND = dict(WIDTHS=(8, 16, 32), ALPHAS=(0.1, 10.0))
TABLES = ("cells", "measurements", "predictions", "kernels")


def synthetic_group(root: Path, grid: dict, max_steps: int) -> None:
    """test_plots' synthetic campaign on `grid`, its cells at budget `max_steps`."""
    patch = pytest.MonkeyPatch()
    for name, values in grid.items():
        patch.setattr(test_plots, name, values)
    try:
        test_plots.synthetic_campaign(root, train_sizes=(128, 512), seeds=2)
    finally:
        patch.undo()
    cells = pd.read_parquet(root / "cells")
    test_plots.write_table(root, "cells", cells.assign(max_steps=max_steps))


@pytest.fixture(scope="module")
def two_groups(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two-groups")
    synthetic_group(root, FIRST, 10_000)
    second = tmp_path_factory.mktemp("second")
    synthetic_group(second, SECOND, 20_000)
    for table in TABLES:  # the second group's rows as further files of the same tables
        frame = pd.read_parquet(second / table)
        frame["cell_id"] = "g2-" + frame["cell_id"]
        part = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(part, root / table / "part-g2.parquet")
    aggregate_campaign(str(root))
    return root


@pytest.fixture(scope="module")
def by_group(two_groups) -> dict:
    """(figure name, group label) -> the drawn figure (None where skipped)."""
    names = ["phase_diagram", "jamming", "double_descent"]
    return {(d.name, d.group): d.figure for d in draw_campaign(str(two_groups), names)}


GROUPS = {"max_steps = 10,000": FIRST, "max_steps = 20,000": SECOND}


def test_each_figure_is_drawn_once_per_group(by_group):
    assert sorted(by_group) == sorted(
        (name, group) for name in ("phase_diagram", "jamming", "double_descent") for group in GROUPS
    )
    assert all(fig is not None for fig in by_group.values())


def test_the_phase_diagram_of_a_group_shows_only_its_grid(by_group):
    for group, grid in GROUPS.items():
        ax = drawn(by_group["phase_diagram", group]).axes[0]
        assert [float(t.replace(",", "")) for _, t in shown_ticks(ax.xaxis)] == list(grid["WIDTHS"])
        assert [float(t) for _, t in shown_ticks(ax.yaxis)] == list(grid["ALPHAS"])


def test_the_jamming_scatter_of_a_group_holds_only_its_cells(two_groups, by_group):
    cells = pd.read_parquet(two_groups / "cells")
    cells = cells.loc[(cells["status"] == "done") & (cells["train_loss"] > 0)]
    for group, budget in zip(GROUPS, (10_000, 20_000)):
        fig = by_group["jamming", group]
        panel = next(ax for ax in fig.axes if "jumps at jamming" in ax.get_title())
        points = len(panel.collections[0].get_offsets())
        assert points == (cells["max_steps"] == budget).sum(), group
    assert len(cells) > (cells["max_steps"] == 10_000).sum()  # the other group has cells


def test_each_figure_is_captioned_with_its_group_and_budget(by_group):
    for (name, group), fig in by_group.items():
        caption = caption_of(fig)
        budget = group.removeprefix("max_steps = ")
        k = list(GROUPS).index(group) + 1
        assert caption == (
            f"campaign two-groups0 · budget {budget} steps · integrator euler-heun · "
            f"loss softhinge (β = 20) · settings group {group} ({k} of 2)"
        ), name


def test_plot_writes_one_file_per_group_named_by_it(two_groups):
    outcomes = plot_campaign(str(two_groups), formats=("png",), names=["phase_diagram"])
    assert [o.summary().split(":")[0] for o in outcomes] == [
        "phase_diagram [max_steps = 10,000]",
        "phase_diagram [max_steps = 20,000]",
    ]
    assert sorted(os.listdir(two_groups / "figures")) == [
        "phase_diagram.max_steps-10000.png",
        "phase_diagram.max_steps-20000.png",
    ]
