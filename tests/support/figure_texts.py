"""What a reader sees in a drawn matplotlib figure: tick labels, titles, legend entries and
whether each entry stands for something drawn, every text."""

from __future__ import annotations

import re

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

PANEL_LETTER = re.compile(r"^\s*([A-Z])[:)]\s")


def drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()
    return fig


def shown_ticks(axis) -> list[tuple[float, str]]:
    """(position, label) of the non-empty tick labels, major and minor, inside the view."""
    low, high = sorted(axis.get_view_interval())
    shown = []
    for locs, ticks in (
        (axis.get_majorticklocs(), axis.get_major_ticks()),
        (axis.get_minorticklocs(), axis.get_minor_ticks()),
    ):
        for loc, tick in zip(locs, ticks, strict=False):
            text = tick.label1.get_text().strip()
            inside = low - 1e-9 * abs(low) <= loc <= high + 1e-9 * abs(high)
            if inside and tick.label1.get_visible() and text:
                shown.append((float(loc), text))
    return shown


def data_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def panel_letters(fig: Figure) -> list[str]:
    """The letters heading the axes' titles ("A: ..."), in axes order."""
    return [m.group(1) for ax in fig.axes if (m := PANEL_LETTER.match(ax.get_title()))]


def all_texts(fig: Figure) -> list[str]:
    """Every text of the figure: titles, axis labels, legend entries, annotations, figure
    texts (captions), tick labels."""
    texts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.texts]
        if ax.get_legend():
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
        texts += [label for axis in (ax.xaxis, ax.yaxis) for _, label in shown_ticks(axis)]
    return [t for t in texts if t]


def _has_data(artist) -> bool:
    if isinstance(artist, Line2D):
        x, y = (np.asarray(v, float) for v in artist.get_data())
        return bool(len(x) and np.isfinite(x).any() and np.isfinite(y).any())
    if isinstance(artist, Collection):
        return len(artist.get_offsets()) > 0 or len(artist.get_paths()) > 0
    return isinstance(artist, Patch)


def legend_entries_not_drawn(fig: Figure) -> list[str]:
    """Legend texts that stand for nothing drawn: no drawn artist of the axes has that label
    and (for a style key, e.g. a grey dashed line) no drawn line has that line style."""
    missing = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        artists = [a for a in [*ax.lines, *ax.collections, *ax.patches] if _has_data(a)]
        for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True):
            label = text.get_text()
            if any(a.get_label() == label for a in artists):
                continue
            styled = isinstance(handle, Line2D) and any(
                isinstance(a, Line2D)
                and a.get_linestyle() == handle.get_linestyle()
                and a.get_marker() == handle.get_marker()
                for a in artists
            )
            if not styled:
                missing.append(label)
    return missing
