"""Readable log axes: at least two labelled ticks on every log axis of a figure, written as
plain numbers where they can be.

Matplotlib labels only decades on a log axis, so an axis over less than a decade (widths
8…64, α̃ 0.3…3) shows one label or none. `label_log_axes` adds labelled ticks at 1-2-5
steps when the decades alone give fewer than two, and at three geometric steps across
the view when even those are too few. Labels read as plain numbers (8, 16, 0.3, 90,
2,000; pipeline/figures/numbers.py), not 10¹, 9×10¹ or 2e+03, on every axis whose view
lies inside numbers.PLAIN.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogFormatterSciNotation,
    LogLocator,
    NullFormatter,
)

from pipeline.figures.numbers import PlainLogFormatter, number


def _plain(value: float, _position: object = None) -> str:
    return number(value)


def ticks_in_view(axis: Axis) -> list[float]:
    """The major tick positions inside the axis' view limits."""
    low, high = sorted(axis.get_view_interval())
    return [t for t in axis.get_major_locator()() if low <= t <= high]


def _plain_where_default(axis: Axis) -> None:
    """Swap matplotlib's default log formatters (major and minor) for PlainLogFormatter
    with the same choice of labelled ticks; formatters a figure chose are kept."""
    for formatter, use in (
        (axis.get_major_formatter(), axis.set_major_formatter),
        (axis.get_minor_formatter(), axis.set_minor_formatter),
    ):
        if type(formatter) is LogFormatterSciNotation:
            use(
                PlainLogFormatter(
                    labelOnlyBase=formatter.labelOnlyBase,
                    minor_thresholds=formatter.minor_thresholds,
                )
            )


def label_log_axis(axis: Axis) -> None:
    """Give a log `axis` at least two labelled major ticks (see the module docstring)."""
    if len(ticks_in_view(axis)) >= 2:
        _plain_where_default(axis)
        return
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    if len(ticks_in_view(axis)) < 2:
        low, high = sorted(axis.get_view_interval())
        axis.set_major_locator(FixedLocator(np.geomspace(low, high, 5)[1:4].tolist()))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(NullFormatter())


def label_log_axes(fig: Figure) -> Figure:
    """`label_log_axis` on every log axis of `fig`; returns `fig`."""
    for ax in fig.axes:
        if ax.get_xscale() == "log":
            label_log_axis(ax.xaxis)
        if ax.get_yscale() == "log":
            label_log_axis(ax.yaxis)
    return fig
