"""No stray labels (issue 13, case 10): panel letters come in partners ("B:" never alone),
every legend entry stands for something drawn, tick labels read as plain numbers (90, not
9×10¹; 2,000, not 2e+03), and budgets read "10,000 steps", not "1e+04 steps". Each check
runs on every figure of a synthetic campaign, with and without boundaries and predictions."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from figures import test_plots

from pipeline.drivers.aggregate import aggregate_campaign
from pipeline.drivers.plot import load_campaign_data
from pipeline.figures import FIGURES, SkipFigure
from pipeline.figures.numbers import PLAIN, number
from support.figure_texts import (
    all_texts,
    data_axes,
    drawn,
    legend_entries_not_drawn,
    panel_letters,
    shown_ticks,
)

PYTHON_EXPONENT = re.compile(r"\de[+-]\d")  # 2e+03, 1.5e-05


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory) -> dict:
    """CampaignData of a synthetic campaign (test_plots' on a smaller grid: two P, two
    seeds), the same without its boundaries, and one without predictions or kernels."""
    full, bare = tmp_path_factory.mktemp("full"), tmp_path_factory.mktemp("bare")
    patch = pytest.MonkeyPatch()
    patch.setattr(test_plots, "WIDTHS", (8, 16, 32, 64, 128))  # jamming at N = 2P inside
    patch.setattr(test_plots, "ALPHAS", (0.01, 1.0, 100.0))  # crossover near α̃ = 1 inside
    try:
        test_plots.synthetic_campaign(full, train_sizes=(128, 512), seeds=2)
        test_plots.synthetic_campaign(bare, train_sizes=(512,), seeds=1, with_outputs=False)
    finally:
        patch.undo()
    aggregate_campaign(str(full))
    aggregate_campaign(str(bare))
    data = load_campaign_data(str(full))
    return {
        "full": data,
        "no boundaries": dataclasses.replace(data, boundaries=data.boundaries.iloc[:0]),
        "no predictions": load_campaign_data(str(bare)),
    }


# the figures each variant draws: all of the full campaign's, and those whose labels
# depend on the missing boundaries / predictions (drawing takes ~0.3 s a figure)
VARIANT_FIGURES = {
    "full": tuple(FIGURES),
    "no boundaries": ("phase_diagram", "double_descent", "jamming", "regimes"),
    "no predictions": ("double_descent", "jamming", "feature_alignment"),
}


@pytest.fixture(scope="module")
def figures(campaigns) -> dict:
    """(variant, figure name) -> the drawn Figure, for every figure a variant can draw."""
    drawn_figures = {}
    for variant, data in campaigns.items():
        for name in VARIANT_FIGURES[variant]:
            draw = FIGURES[name]
            try:
                drawn_figures[variant, name] = drawn(draw(data))
            except SkipFigure:
                pass
    return drawn_figures


def test_every_variant_draws_figures(figures):
    """Guards the fixture: each variant reaches the figures the checks are about."""
    assert {("no boundaries", n) for n in ("jamming", "regimes", "double_descent")} <= set(figures)
    assert ("no predictions", "double_descent") in figures
    assert len(figures) >= 15


def test_panel_letters_come_in_partners(figures):
    for key, fig in figures.items():
        letters = panel_letters(fig)
        assert letters == [] or (
            len(letters) >= 2 and letters == [chr(ord("A") + i) for i in range(len(letters))]
        ), (key, letters)


def test_the_jamming_panels_are_lettered_only_side_by_side(figures):
    assert panel_letters(figures["full", "jamming"]) == ["A", "B"]
    assert panel_letters(figures["no boundaries", "jamming"]) == []


def test_every_legend_entry_stands_for_something_drawn(figures):
    for key, fig in figures.items():
        assert legend_entries_not_drawn(fig) == [], key


def _reads_as(label: str, value: float) -> bool:
    """`label` is `value` written as plain digits (unicode minus, thousands separators)."""
    text = label.replace("\N{MINUS SIGN}", "-").replace(",", "")
    try:
        read = float(text)
    except ValueError:
        return False
    return math.isclose(read, value, rel_tol=5e-3, abs_tol=1e-12)


def test_tick_labels_read_as_plain_numbers(figures):
    for key, fig in figures.items():
        for ax in data_axes(fig):
            for axis in (ax.xaxis, ax.yaxis):
                low, high = sorted(abs(v) for v in axis.get_view_interval())
                ticks = shown_ticks(axis)
                assert not [t for _, t in ticks if PYTHON_EXPONENT.search(t)], (key, ticks)
                if axis.get_scale() == "log" and PLAIN[0] <= low and high < PLAIN[1]:
                    wrong = [(v, t) for v, t in ticks if not _reads_as(t, v)]
                    assert wrong == [], (key, axis.axis_name, wrong)


def test_budgets_read_with_thousands_separators(figures):
    legend = figures["full", "phase_diagram"].axes[0].get_legend()
    entries = [t.get_text() for t in legend.get_texts()]
    assert "jamming, 10,000 steps" in entries and "jamming, 1,000 steps" in entries
    for key, fig in figures.items():
        assert not [t for t in all_texts(fig) if PYTHON_EXPONENT.search(t)], key


def test_a_log_axis_over_one_decade_reads_0_2_not_2_times_10_to_the_minus_1():
    """The oracle: matplotlib labels the minor ticks of [0.1, 1] as 2×10⁻¹, 3×10⁻¹, …"""
    from pipeline.figures.style import log_axes, new_figure
    from pipeline.figures.ticks import label_log_axes

    def y_labels(fix: bool) -> list[str]:
        fig, (ax,) = new_figure()
        log_axes(ax, x=False, y=True)
        ax.plot([0, 1], [0.1, 1.0])
        ax.set_ylim(0.1, 1.0)
        return [t for _, t in shown_ticks(drawn(label_log_axes(fig) if fix else fig).axes[0].yaxis)]

    assert any("times" in label for label in y_labels(fix=False))  # the bug, reproduced
    assert y_labels(fix=True) == ["0.1", "1", "0.2", "0.3", "0.4", "0.6"]


@pytest.mark.parametrize(
    "value, text",
    [
        (90, "90"),
        (0.3, "0.3"),
        (2000, "2,000"),
        (2048, "2,048"),
        (1.25, "1.25"),
        (0.30000000004, "0.3"),
        (1e-9, "$10^{-9}$"),
        (2.5e6, r"$2.5\times10^{6}$"),
        (-3e7, r"$-3\times10^{7}$"),
    ],
)
def test_numbers_are_written_in_digits_inside_the_plain_range(value, text):
    assert number(value) == text


def test_numbers_inside_mathtext_keep_the_separator_braced():
    assert number(10_000, math_mode=True) == "10{,}000"
    assert number(1e-9, math_mode=True) == "10^{-9}"
