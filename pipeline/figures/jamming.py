"""Fig. 7: jamming. A: fitted / not fitted in the (P, N) plane with N*(P);
B: N_Δ/N vs final loss; C: H₀ spectrum at the cells nearest jamming;
D: output fluctuations ‖f − ⟨f⟩‖ vs N with the fitted slope (expected −1/4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from pipeline.analysis.ensembles import fit_log_log
from pipeline.figures.data import CampaignData
from pipeline.figures.style import (
    LABELS,
    SkipFigure,
    budget_lines,
    fmt,
    line_colours,
    log_axes,
    main_slice,
    new_figure,
    outside_legend,
    spread,
)

MAX_LINES = 5


def _n_star_panel(ax, data: CampaignData, n_star: pd.DataFrame) -> None:
    """Ensemble grid points in (P, N) coloured by fitted fraction, and N*(P) per budget
    at the α̃ with the most located points."""
    counts = n_star.dropna(subset=["value"]).groupby("alpha_tilde").size()
    alpha = counts.idxmax()
    grid = main_slice(data.ensembles, free=("width", "train_size")).select(data.ensembles)
    grid = grid.loc[grid["alpha_tilde"] == alpha]
    points = ax.scatter(
        grid["train_size"],
        grid["n_params"],
        c=grid["fitted_fraction"],
        cmap="Blues",
        vmin=0,
        vmax=1,
        edgecolors="grey",
        s=25,
        zorder=2,
    )
    ax.figure.colorbar(points, ax=ax, label="fraction of seeds fitted")
    rows = n_star.loc[n_star["alpha_tilde"] == alpha]
    for budget, colour, line in budget_lines(rows):
        line = line.dropna(subset=["value"]).sort_values("train_size")
        if line.empty:  # no N* located at this budget: no line, so no legend entry
            continue
        ax.plot(
            line["train_size"], line["value"], "-", color=colour, lw=2, label=f"$N^*(P)$, {budget}"
        )
    p = np.geomspace(grid["train_size"].min(), grid["train_size"].max(), 10)
    ax.plot(p, p, ":", color="grey", label="$N = P$")
    log_axes(ax, x=True, y=True)
    ax.set(
        xlabel=LABELS["train_size"],
        ylabel=LABELS["n_params"],
        title=rf"A: jamming in the $(P, N)$ plane, $\tilde\alpha = {fmt(alpha)}$",
    )
    ax.legend(loc="lower right")


def _unsatisfied_panel(ax, cells: pd.DataFrame, letter: str) -> None:
    """N_Δ/N against the final train loss of every done cell (stalled ones left out by
    the caller), coloured by N; `letter` ("B: " beside panel A, else "") heads the title."""
    points = ax.scatter(
        cells["train_loss"],
        cells["n_unsatisfied"] / cells["n_params"],
        c=cells["n_params"],
        norm=LogNorm(),
        cmap="viridis",
        s=12,
    )
    ax.figure.colorbar(points, ax=ax, label=LABELS["n_params"])
    log_axes(ax)
    ax.set(
        xlabel=LABELS["train_loss"],
        ylabel=LABELS["unsatisfied_per_param"],
        title=letter + r"$N_\Delta/N$ jumps at jamming",
    )


def jamming(data: CampaignData) -> Figure:
    """Fig. 7A (when N*(P) was located) and 7B; panel letters only when both are drawn."""
    cells = data.unstalled_cells  # a stalled cell's N_Δ is not a jammed one's
    cells = cells.loc[(cells["train_loss"] > 0) & (cells["n_params"] > 0)]
    if cells.empty:
        raise SkipFigure("jamming needs done cells with a positive final train loss")
    n_star = (
        data.boundaries.loc[data.boundaries["boundary"] == "n_star"]
        if not data.boundaries.empty
        else data.boundaries
    )
    with_a = not n_star.empty and np.isfinite(n_star["value"]).any()
    fig, axes = new_figure(ncols=2 if with_a else 1)
    if with_a:
        _n_star_panel(axes[0], data, n_star)
    _unsatisfied_panel(axes[-1], cells, "B: " if with_a else "")
    return fig


def fluctuations(data: CampaignData) -> Figure:
    """Fig. 7D: ‖f − ⟨f⟩‖ vs N per α̃; slope fitted past jamming (fitted fraction ≥ 1/2)."""
    where = data.slice()
    ens = where.select(data.ensembles)
    ens = ens.loc[np.isfinite(ens["fluctuation"]) & (ens["fluctuation"] > 0)]
    if ens.empty:
        raise SkipFigure("fluctuations need at least two seeds with predictions per grid point")
    alphas = spread(ens["alpha_tilde"], MAX_LINES)
    fig, (ax,) = new_figure(width=6.4)
    for alpha, colour in zip(alphas, line_colours(len(alphas))):
        line = ens.loc[ens["alpha_tilde"] == alpha].sort_values("n_params")
        past = line.loc[line["fitted_fraction"] >= 0.5]
        fit = fit_log_log(past["n_params"], past["fluctuation"])
        label = rf"$\tilde\alpha = {fmt(alpha)}$"
        if np.isfinite(fit.slope):
            label += f": slope {fit.slope:.2f}"
            ax.plot(
                past["n_params"],
                np.exp(fit.intercept) * past["n_params"] ** fit.slope,
                "-",
                color=colour,
                lw=1,
            )
        ax.plot(line["n_params"], line["fluctuation"], "o", color=colour, ms=4, label=label)
    n = np.geomspace(ens["n_params"].min(), ens["n_params"].max(), 10)
    anchor = (
        np.exp(np.log(ens["fluctuation"]).mean()) * np.exp(np.log(ens["n_params"]).mean()) ** 0.25
    )
    ax.plot(n, anchor * n**-0.25, "--", color="grey", label=r"$N^{-1/4}$")
    outside_legend(ax)
    log_axes(ax, x=True, y=True)
    ax.set(
        xlabel=LABELS["n_params"],
        ylabel=LABELS["fluctuation"],
        title="output fluctuations over seeds" + (f"\n{where.title}" if where.title else ""),
    )
    return fig


def nearest_jamming_spectra(data: CampaignData) -> list[tuple[str, np.ndarray]]:
    """For each α̃ (≤ 3): the pooled non-zero H₀ eigenvalues of the seeds at the
    widest grid width that is not fitted (fitted fraction < 1/2), i.e. just on the
    jammed side of h*, where N_Δ > 0 so H₀ is not empty. Stalled cells are left out:
    their H₀ is not that of a jammed net."""
    if data.kernels is None or "h0_eigenvalues" not in data.kernels:
        return []
    where = data.slice()
    ens = where.select(data.ensembles)
    cells = where.select(data.unstalled_cells).merge(
        data.kernels[["cell_id", "h0_eigenvalues"]], on="cell_id"
    )
    spectra = []
    for alpha in spread(ens["alpha_tilde"], 3):
        jammed = ens.loc[(ens["alpha_tilde"] == alpha) & (ens["fitted_fraction"] < 0.5)]
        if jammed.empty:
            continue
        width = jammed["width"].max()
        at = cells.loc[(cells["alpha_tilde"] == alpha) & (cells["width"] == width)]
        values = np.concatenate(
            [np.asarray(v, float) for v in at["h0_eigenvalues"]] or [np.empty(0)]
        )
        values = values[np.isfinite(values) & (values > 0)]
        if len(values):
            spectra.append((rf"$\tilde\alpha = {fmt(alpha)}$, $h = {fmt(width)}$", values))
    return spectra


def h0_spectrum(data: CampaignData) -> Figure:
    """Fig. 7C: eigenvalue density of H₀ near jamming, log-spaced bins, log-log."""
    spectra = nearest_jamming_spectra(data)
    if not spectra:
        raise SkipFigure(
            "h0_spectrum needs H0 eigenvalues (kernels table) of an unfitted grid point"
        )
    fig, (ax,) = new_figure(width=6.4)
    for (label, values), colour in zip(spectra, line_colours(len(spectra))):
        low, high = values.min(), values.max()
        bins = np.geomspace(low, high * (1 + 1e-9) if high > low else low * 10, 30)
        counts, _ = np.histogram(values, bins)
        density = counts / (len(values) * np.diff(bins))
        ax.stairs(np.where(density > 0, density, np.nan), bins, color=colour, lw=1.5, label=label)
    outside_legend(ax)
    log_axes(ax, x=True, y=True)
    ax.set(
        xlabel=LABELS["eigenvalue"],
        ylabel=r"density $D(\lambda)$",
        title=r"spectrum of $\mathcal{H}_0$ at the widest unfitted $h$",
    )
    return fig
