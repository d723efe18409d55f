"""Every axis of every figure shows at least two tick labels, also when the grid spans
less than a decade (issue 13, case 10: widths 8…64 showed only "10¹")."""

from __future__ import annotations

import pytest
from figures import test_plots
from matplotlib.backends.backend_agg import FigureCanvasAgg

from pipeline.drivers.aggregate import aggregate_campaign
from pipeline.drivers.plot import load_campaign_data
from pipeline.figures import FIGURES, SkipFigure


def tick_labels(axis) -> list[str]:
    """The non-empty labels, major and minor, that the drawn `axis` shows inside its view
    limits (matplotlib keeps labels of ticks just outside them)."""
    low, high = sorted(axis.get_view_interval())
    shown = []
    for locs, ticks in (
        (axis.get_majorticklocs(), axis.get_major_ticks()),
        (axis.get_minorticklocs(), axis.get_minor_ticks()),
    ):
        for loc, tick in zip(locs, ticks, strict=False):
            text = tick.label1.get_text().strip()
            if low * (1 - 1e-9) <= loc <= high * (1 + 1e-9) and tick.label1.get_visible() and text:
                shown.append(text)
    return shown


@pytest.fixture(scope="module")
def narrow_campaign(tmp_path_factory):
    """The synthetic campaign of test_plots over less than a decade in h and in α̃."""
    root = tmp_path_factory.mktemp("narrow")
    patch = pytest.MonkeyPatch()
    patch.setattr(test_plots, "WIDTHS", (8, 16, 32, 64))
    patch.setattr(test_plots, "ALPHAS", (0.3, 1.0, 3.0))
    try:
        test_plots.synthetic_campaign(root, train_sizes=(128, 512), seeds=2)
    finally:
        patch.undo()
    aggregate_campaign(str(root))
    return load_campaign_data(str(root))


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_axis_has_at_least_two_tick_labels(narrow_campaign, name):
    try:
        fig = FIGURES[name](narrow_campaign)
    except SkipFigure as reason:
        pytest.skip(f"{name}: {reason}")
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = tick_labels(axis)
            assert len(labels) >= 2, (name, axis.axis_name, labels, axis.get_view_interval())


def test_the_phase_diagram_ticks_are_the_grid_values(narrow_campaign):
    fig = FIGURES["phase_diagram"](narrow_campaign)
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    assert tick_labels(ax.xaxis) == ["8", "16", "32", "64"]
    assert tick_labels(ax.yaxis) == ["0.3", "1", "3"]


@pytest.mark.parametrize("low, high", [(20.0, 60.0), (0.3, 0.9), (8.0, 9.0)])
def test_a_log_axis_within_one_decade_gets_two_labels(low, high):
    """The oracle: matplotlib alone labels none of these ranges; label_log_axes does."""
    from pipeline.figures.style import log_axes, new_figure
    from pipeline.figures.ticks import label_log_axes

    def labels_of(fix: bool) -> tuple[list[str], list[str]]:
        fig, (ax,) = new_figure()
        log_axes(ax, x=True, y=True)
        ax.plot([low, high], [low, high])
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        if fix:
            label_log_axes(fig)
        FigureCanvasAgg(fig).draw()
        return tick_labels(ax.xaxis), tick_labels(ax.yaxis)

    plain_x, _ = labels_of(fix=False)
    assert len(plain_x) < 2  # the bug, reproduced
    fixed_x, fixed_y = labels_of(fix=True)
    assert len(fixed_x) >= 2 and len(fixed_y) >= 2, (fixed_x, fixed_y)
    assert all("10^" not in label and "×" not in label for label in fixed_x + fixed_y)
