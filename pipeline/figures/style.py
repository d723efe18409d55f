"""The paper's look: notation for axis labels, log axes, colour maps, and the
slice of a multi-axis campaign that a two-dimensional figure shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from matplotlib.typing import RcKeyType

from pipeline.analysis.ensembles import ENSEMBLE_VALUES
from pipeline.figures.numbers import number

LABELS = {
    "width": r"width $h$",
    "alpha_tilde": r"$\tilde\alpha = \sqrt{h}\,\alpha$",
    "train_size": r"training set size $P$",
    "n_params": r"number of parameters $N$",
    "ensemble_test_error": r"$\epsilon(\langle f\rangle)$",
    "mean_test_error": r"$\langle\epsilon(f)\rangle$",
    "test_error": r"test error $\epsilon$",
    "ntk_change": r"$\|\Delta\Theta\|/\|\Theta_0\|$",
    "unsatisfied_per_param": r"$N_\Delta/N$",
    "train_loss": r"final train loss $\mathcal{L}$",
    "fluctuation": r"$\|f-\langle f\rangle\|$",
    "eigenvalue": r"eigenvalue $\lambda$ of $\mathcal{H}_0$",
}
ERROR_CMAP = "viridis"  # perceptually uniform; unfitted cells are drawn black
LINE_CMAP = "plasma"  # one colour per α̃ / width in line plots
RC: dict[RcKeyType, Any] = {
    "font.size": 10,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
LARGEST = ("train_size", "width")  # slices show the largest P and h of the grid
SYMBOLS = {"train_size": "P", "width": "h", "alpha_tilde": "α̃"}
HALO = [patheffects.withStroke(linewidth=3.5, foreground="white")]  # lines over any colour


class SkipFigure(Exception):
    """The campaign lacks the data a figure needs; the message says what is missing."""


def new_figure(ncols: int = 1, width: float = 4.6, height: float = 3.6) -> tuple[Figure, list]:
    """A pyplot-free Figure (no global state) with `ncols` axes side by side."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width * ncols, height), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def log_axes(ax, x: bool = True, y: bool = False) -> None:
    """Log scales; no minor tick labels on x, where they collide on short decades
    (y keeps matplotlib's default, which labels minor ticks on sub-decade ranges)."""
    if x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if y:
        ax.set_yscale("log")


def outside_legend(ax, **kwargs) -> None:
    """The axes' legend to its right, outside the data (constrained layout makes room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, **kwargs)


def line_colours(n: int) -> list:
    """n distinguishable colours from LINE_CMAP, avoiding its pale yellow end."""
    return [matplotlib.colormaps[LINE_CMAP](v) for v in np.linspace(0.0, 0.8, max(n, 1))]


def budget_lines(rows: pd.DataFrame) -> list[tuple[str, tuple, pd.DataFrame]]:
    """(label, colour, rows) per step budget of jamming / n_star rows, smallest budget
    first; budget_steps NaN is the line "as run" (flow-time or wall-clock budgets)."""
    budgets = sorted(rows["budget_steps"].dropna().unique())
    groups = [(f"{number(b)} steps", rows.loc[rows["budget_steps"] == b]) for b in budgets]
    if rows["budget_steps"].isna().any():
        groups.append(("as run", rows.loc[rows["budget_steps"].isna()]))
    colours = matplotlib.colormaps["autumn"](np.linspace(0.0, 0.75, max(len(groups), 1)))
    return [(label, tuple(colour), sub) for (label, sub), colour in zip(groups, colours)]


def spread(values: Sequence[float], k: int) -> list[float]:
    """At most k of the sorted unique values, evenly spaced in rank (ends kept)."""
    values = sorted({float(v) for v in values})
    if len(values) <= k:
        return values
    return [values[int(round(i))] for i in np.linspace(0, len(values) - 1, k)]


def fmt(value: float) -> str:
    """A grid value inside a mathtext label ($h = {fmt(h)}$): 0.01, 0.3, 2, 1{,}000."""
    return number(value, math_mode=True)


@dataclass(frozen=True)
class Slice:
    """The grid point of the non-plotted axes a figure shows (largest P, first
    value of every other swept axis) and a title suffix naming it."""

    coords: dict
    title: str

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of `frame` at this slice; a NaN coordinate (not fixed) matches."""
        keep = np.ones(len(frame), bool)
        for axis, value in self.coords.items():
            if axis in frame:
                keep &= (frame[axis] == value).to_numpy() | frame[axis].isna().to_numpy()
        return frame.loc[keep]


def main_slice(ensembles: pd.DataFrame, free: Sequence[str] = ("width", "alpha_tilde")) -> Slice:
    """Fix every ensembles axis except `free`: P and h at their largest, others at
    their first value."""
    axes = [c for c in ensembles.columns if c not in ENSEMBLE_VALUES and c not in free]
    coords, parts = {}, []
    for axis in axes:
        values = ensembles[axis].dropna()
        if values.empty:
            continue
        coords[axis] = values.max() if axis in LARGEST else sorted(values.unique())[0]
        if ensembles[axis].nunique() > 1 or axis in LARGEST:
            parts.append(
                f"{SYMBOLS.get(axis, axis)} = {number(coords[axis])}"
                if axis in SYMBOLS
                else f"{axis} = {coords[axis]}"
            )
    return Slice(coords, ", ".join(parts))
