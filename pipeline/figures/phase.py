"""Fig. 4: the (h, α̃) phase diagram — colour = ensemble test error, black = not
fitted, hatched grey = stalled (the integrator failed there: not a result), crossover
iso-lines ‖ΔΘ‖/‖Θ₀‖ = c, jamming lines per step budget."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from pipeline.figures.data import CampaignData
from pipeline.figures.numbers import number
from pipeline.figures.style import (
    ERROR_CMAP,
    HALO,
    LABELS,
    SkipFigure,
    budget_lines,
    log_axes,
    new_figure,
)

UNFITTED = (0.0, 0.0, 0.0, 1.0)  # black, as in the paper
MISSING = (1.0, 1.0, 1.0, 0.0)  # grid points with no done cell: transparent
STALLED = (0.62, 0.62, 0.62, 1.0)  # grey, hatched: at least half the cells stalled


def stalled_points(ensembles: pd.DataFrame) -> pd.DataFrame:
    """Grid points where at least half of the done cells stalled (n_stalled ≥ n_seeds)."""
    if "n_stalled" not in ensembles:
        return ensembles.iloc[:0]
    stalled = ensembles["n_stalled"].fillna(0)
    return ensembles.loc[(stalled > 0) & (stalled >= ensembles["n_seeds"])]


def log_edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted positive grid values: geometric midpoints, and half
    a log-step beyond the ends (a factor 2 when there is a single value)."""
    logs = np.log(values)
    half = np.diff(logs) / 2 if len(logs) > 1 else np.array([np.log(2.0)])
    inner = logs[:-1] + half
    return np.exp(np.concatenate([[logs[0] - half[0]], inner, [logs[-1] + half[-1]]]))


def phase_colours(
    ensembles: pd.DataFrame, norm: Normalize, cmap: str = ERROR_CMAP
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(widths [W], alphas [A], rgba [A, W, 4]) of a single-slice ensembles frame:
    cmap(norm(ensemble_test_error)), black where fitted_fraction < 1/2, grey where most
    cells stalled (`stalled_points`), transparent where the grid point has no row."""
    widths = np.sort(ensembles["width"].unique().astype(float))
    alphas = np.sort(ensembles["alpha_tilde"].unique().astype(float))
    rgba = np.tile(np.array(MISSING), (len(alphas), len(widths), 1))
    colour = matplotlib.colormaps[cmap]
    stalled = set(stalled_points(ensembles).index)
    for row in ensembles.itertuples():
        i, j = np.searchsorted(alphas, row.alpha_tilde), np.searchsorted(widths, row.width)
        fitted = row.fitted_fraction >= 0.5
        rgba[i, j] = (
            STALLED
            if row.Index in stalled
            else colour(norm(row.ensemble_test_error))
            if fitted
            else UNFITTED
        )
    return widths, alphas, fill_between_points(rgba, alphas, widths)


def fill_between_points(rgba: np.ndarray, alphas: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Refined campaigns (pipeline/drivers/refine.py) place different α̃ at each width, or different
    h at each α̃: a grid point without a row that lies between measured points of its
    width takes the colour of the nearest of them in log α̃; then likewise along h at
    fixed α̃. Points beyond a width's (or α̃'s) measured range stay transparent."""
    rgba = rgba.copy()
    for axis, values in ((0, alphas), (1, widths)):
        logs = np.log(values)
        for k in range(rgba.shape[1 - axis]):
            line = rgba[:, k] if axis == 0 else rgba[k, :]  # a view: [len(values), 4]
            have = np.flatnonzero(line[:, 3] > 0)
            for i in range(have[0] + 1, have[-1]) if len(have) > 1 else ():
                if line[i, 3] == 0:
                    line[i] = line[have[np.argmin(np.abs(logs[have] - logs[i]))]]
    return rgba


def _fitted_side(rows: pd.DataFrame, ensembles: pd.DataFrame) -> pd.DataFrame:
    """Crossover rows whose bracketing grid points are not both unfitted: the
    crossover is drawn in the fitted region only, as in the paper."""
    fitted = ensembles.loc[ensembles["fitted_fraction"] >= 0.5]
    points = set(zip(fitted["width"], fitted["alpha_tilde"]))
    keep = [
        (w, lo) in points or (w, hi) in points
        for w, lo, hi in zip(rows["width"], rows["lower"], rows["upper"])
    ]
    return rows.loc[np.asarray(keep, bool)]


def _draw_crossover(ax, rows: pd.DataFrame) -> None:
    """Iso-lines of ‖ΔΘ‖/‖Θ₀‖: c = 1 solid, other levels dashed, each labelled at its
    right end."""
    dashed_labelled = False
    if rows.empty:
        return
    for level, line in rows.groupby("level"):
        line = line.loc[np.isfinite(line["value"])].sort_values("width")
        if line.empty:
            continue
        solid = bool(np.isclose(level, 1.0))
        label = None
        if solid:
            label = r"$\|\Delta\Theta\|/\|\Theta_0\| = 1$"
        elif not dashed_labelled:
            label, dashed_labelled = r"$\|\Delta\Theta\|/\|\Theta_0\| = c$ (other levels)", True
        ax.plot(
            line["width"],
            line["value"],
            "-" if solid else "--",
            color="k",
            lw=1.6,
            path_effects=HALO,
            marker="." if len(line) == 1 else None,
            label=label,
        )
        ax.annotate(
            number(level),
            (line["width"].iloc[-1], line["value"].iloc[-1]),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            path_effects=HALO,
        )


def _draw_jamming(ax, rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    for budget, colour, line in budget_lines(rows):
        line = line.loc[np.isfinite(line["value"])]
        line = line.sort_values("alpha_tilde")
        if line.empty:
            continue
        ax.plot(
            line["value"],
            line["alpha_tilde"],
            "-",
            color=colour,
            lw=2,
            marker="o",
            ms=3,
            label=f"jamming, {budget}",
        )


def _hatch_stalled(ax, stalled: pd.DataFrame, widths: np.ndarray, alphas: np.ndarray) -> None:
    """Hatch the stalled grid points' cells, so they read as failures, not as jammed."""
    w_edges, a_edges = log_edges(widths), log_edges(alphas)
    for row in stalled.itertuples():
        i, j = np.searchsorted(alphas, row.alpha_tilde), np.searchsorted(widths, row.width)
        ax.add_patch(
            Rectangle(
                (w_edges[j], a_edges[i]),
                w_edges[j + 1] - w_edges[j],
                a_edges[i + 1] - a_edges[i],
                fill=False,
                hatch="///",
                edgecolor="0.3",
                lw=0,
                label=None,
            )
        )


def phase_diagram(data: CampaignData) -> Figure:
    """Fig. 4 for the campaign's main slice (largest P)."""
    where = data.slice()
    ens = where.select(data.ensembles)
    errors = ens["ensemble_test_error"].to_numpy(float)
    stalled = stalled_points(ens)
    if not np.isfinite(errors).any() and stalled.empty:
        raise SkipFigure("no ensemble test error (predictions table missing or empty)")
    low = np.nanmin(errors) if np.isfinite(errors).any() else 0.0
    norm = Normalize(
        vmin=low, vmax=max(np.nanmax(errors) if np.isfinite(errors).any() else low, low + 1e-3)
    )
    widths, alphas, rgba = phase_colours(ens, norm)
    fig, (ax,) = new_figure(width=5.6, height=5.0)
    ax.pcolormesh(log_edges(widths), log_edges(alphas), rgba, shading="flat")
    _hatch_stalled(ax, stalled, widths, alphas)
    log_axes(ax, x=True, y=True)
    ax.set(
        xlabel=LABELS["width"],
        ylabel=LABELS["alpha_tilde"],
        title="ensemble test error (black: not fitted"
        + (", hatched grey: stalled)" if len(stalled) else ")")
        + (f"\n{where.title}" if where.title else ""),
    )
    crossover = data.boundary("crossover", where)
    _draw_crossover(ax, _fitted_side(crossover, ens) if not crossover.empty else crossover)
    _draw_jamming(ax, data.boundary("jamming", where))
    # sampled grid points: hollow rings, so a cell's own colour stays visible at its centre
    ax.scatter(
        ens["width"],
        ens["alpha_tilde"],
        s=12,
        facecolors="none",
        edgecolors="0.6",
        linewidths=0.5,
        zorder=3,
    )
    if (ens["fitted_fraction"].fillna(0) >= 0.5).any():
        label = LABELS["ensemble_test_error"]
        fig.colorbar(ScalarMappable(norm, ERROR_CMAP), ax=ax, label=label)
    else:  # an all-black diagram: say so instead of a colour bar that maps nothing
        ax.text(
            0.5,
            0.5,
            "no cell fitted\n(raise the budget, [flow] max_steps)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="white",
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)
    ax.set_xlim(log_edges(widths)[[0, -1]])
    ax.set_ylim(log_edges(alphas)[[0, -1]])
    grid_ticks(ax.xaxis, widths)
    grid_ticks(ax.yaxis, alphas)
    return fig


def grid_ticks(axis, values, most: int = 10) -> None:
    """Ticks at the sampled grid values (at most `most`, spread evenly), labelled plainly."""
    values = sorted({float(v) for v in values})
    if len(values) > most:
        values = [values[round(i)] for i in np.linspace(0, len(values) - 1, most)]
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(lambda v, _: number(v)))
    axis.set_minor_locator(NullLocator())
