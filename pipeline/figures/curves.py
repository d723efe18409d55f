"""Error curves: double descent vs h (Fig. 5), regimes vs α̃ (Fig. 8) and
learning curves ε(P) with fitted β (Fig. 9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.analysis.ensembles import fit_log_log
from pipeline.figures.data import CampaignData
from pipeline.figures.style import (
    LABELS,
    SkipFigure,
    fmt,
    line_colours,
    log_axes,
    main_slice,
    new_figure,
    outside_legend,
    spread,
)

MAX_LINES = 5


def _need(frame: pd.DataFrame, axis: str, what: str) -> None:
    if frame.empty or frame[axis].nunique() < 2:
        raise SkipFigure(f"{what} needs at least two values of {axis} in the grid")


def double_descent(data: CampaignData) -> Figure:
    """Fig. 5: ⟨ε(f)⟩ (solid) and ε(⟨f⟩) (dashed) vs h, one colour per α̃, with
    the jamming width h* (largest budget) as a dotted vertical line."""
    where = data.slice()
    ens = where.select(data.ensembles)
    _need(ens, "width", "double_descent")
    jamming = data.jamming_as_run(where)
    alphas = spread(ens["alpha_tilde"], MAX_LINES)
    fig, (ax,) = new_figure(width=6.4)
    drawn_jamming = False
    for alpha, colour in zip(alphas, line_colours(len(alphas))):
        line = ens.loc[ens["alpha_tilde"] == alpha].sort_values("width")
        ax.plot(
            line["width"],
            line["mean_test_error"],
            "-o",
            color=colour,
            ms=3,
            label=rf"$\tilde\alpha = {fmt(alpha)}$",
        )
        ax.plot(line["width"], line["ensemble_test_error"], "--s", color=colour, ms=3)
        for h_star in jamming.loc[jamming["alpha_tilde"] == alpha, "value"].dropna():
            ax.axvline(h_star, color=colour, ls=":", lw=1)
            drawn_jamming = True
    # the line styles' key: only for the kinds of line drawn
    styles = [
        Line2D([], [], color="grey", ls="-", marker="o", ms=3, label=LABELS["mean_test_error"])
    ]
    if np.isfinite(ens["ensemble_test_error"].to_numpy(float)).any():
        styles.append(
            Line2D(
                [], [], color="grey", ls="--", marker="s", ms=3, label=LABELS["ensemble_test_error"]
            )
        )
    if drawn_jamming:
        styles.append(Line2D([], [], color="grey", ls=":", label=r"jamming $h^*$"))
    outside_legend(ax, handles=ax.get_legend_handles_labels()[0] + styles)
    log_axes(ax)
    ax.set(
        xlabel=LABELS["width"],
        ylabel=LABELS["test_error"],
        title="double descent and its removal by ensembling"
        + (f"\n{where.title}" if where.title else ""),
    )
    return fig


def regimes(data: CampaignData) -> Figure:
    """Fig. 8: ε(⟨f⟩) vs α̃ at fixed h (fitted widths first), with the c = 1
    crossover α̃* of each width as a dotted vertical line."""
    where = data.slice()
    ens = where.select(data.ensembles)
    _need(ens, "alpha_tilde", "regimes")
    if not np.isfinite(ens["ensemble_test_error"].to_numpy(float)).any():
        raise SkipFigure("regimes needs the ensemble test error (predictions table missing)")
    fitted = ens.groupby("width")["fitted_fraction"].min() >= 0.5
    widths = spread(fitted.index[fitted] if fitted.any() else fitted.index, MAX_LINES)
    crossover = data.boundary("crossover", where)
    fig, (ax,) = new_figure(width=6.4)
    drawn_crossover = False
    for width, colour in zip(widths, line_colours(len(widths))):
        line = ens.loc[ens["width"] == width].sort_values("alpha_tilde")
        ax.plot(
            line["alpha_tilde"],
            line["ensemble_test_error"],
            "-o",
            color=colour,
            ms=3,
            label=f"$h = {fmt(width)}$",
        )
        if not crossover.empty:
            star = crossover.loc[
                (crossover["width"] == width) & np.isclose(crossover["level"], 1.0)
            ]
            for alpha_star in star["value"].dropna():
                ax.axvline(alpha_star, color=colour, ls=":", lw=1)
                drawn_crossover = True
    handles = ax.get_legend_handles_labels()[0]
    if drawn_crossover:  # the key of the dotted lines, only when one is drawn
        key = r"$\|\Delta\Theta\|/\|\Theta_0\| = 1$"
        handles.append(Line2D([], [], ls=":", color="grey", label=key))
    outside_legend(ax, handles=handles)
    log_axes(ax)
    ax.set(
        xlabel=LABELS["alpha_tilde"],
        ylabel=LABELS["ensemble_test_error"],
        title="feature learning (small α̃) vs lazy (large α̃)"
        + (f"\n{where.title}" if where.title else ""),
    )
    return fig


def learning_curves(data: CampaignData) -> Figure:
    """Fig. 9: ε(⟨f⟩) vs P on log-log at the largest width, one line per α̃, with
    the least-squares power law ε ~ P^{-β} and β ± its standard error."""
    if data.ensembles.empty or data.ensembles["train_size"].nunique() < 2:
        raise SkipFigure("learning_curves needs train_size swept (at least two values of P)")
    where = main_slice(data.ensembles, free=("alpha_tilde", "train_size"))
    ens = where.select(data.ensembles)
    widest = ens  # the slice fixes h at its largest value
    alphas = spread(widest["alpha_tilde"], MAX_LINES)
    fig, (ax,) = new_figure(width=6.4)
    for alpha, colour in zip(alphas, line_colours(len(alphas))):
        line = widest.loc[widest["alpha_tilde"] == alpha].sort_values("train_size")
        fit = fit_log_log(line["train_size"], line["ensemble_test_error"])
        label = rf"$\tilde\alpha = {fmt(alpha)}$"
        if np.isfinite(fit.slope):
            error = f" ± {fit.slope_error:.2f}" if np.isfinite(fit.slope_error) else ""
            label += rf": $\beta = {-fit.slope:.2f}${error}"
            p = np.geomspace(line["train_size"].min(), line["train_size"].max(), 20)
            ax.plot(p, np.exp(fit.intercept) * p**fit.slope, "-", color=colour, lw=1)
        ax.plot(line["train_size"], line["ensemble_test_error"], "o", color=colour, label=label)
    outside_legend(ax)
    log_axes(ax, x=True, y=True)
    ax.set(
        xlabel=LABELS["train_size"],
        ylabel=LABELS["ensemble_test_error"],
        title=r"learning curves $\epsilon \sim P^{-\beta}$"
        + (f"\n{where.title}" if where.title else ""),
    )
    return fig
