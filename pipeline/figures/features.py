"""How feature learning compresses invariants (paper Sec. 5): the weight alignment Λ along
training (Fig. 9 left, as a curve) and the kernel PCA of the NTK against the labels at
initialisation and at the end (Fig. 10)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline.figures.data import CampaignData
from pipeline.figures.style import (
    SkipFigure,
    fmt,
    line_colours,
    log_axes,
    new_figure,
    outside_legend,
    spread,
)

MAX_LINES = 4
KPCA_RANKS = 30  # ranks drawn (of the stored top kernel_pca_rank)


def feature_alignment(data: CampaignData) -> Figure:
    """Λ = W∥/W⊥ against flow time, one colour per α̃ (one line per seed), at the main
    slice's width and P: grows with feature learning, flat in the lazy regime."""
    measured = data.measurements
    if (
        measured is None
        or "weight_alignment" not in measured
        or not np.isfinite(measured["weight_alignment"].to_numpy(float)).any()
    ):
        raise SkipFigure("feature_alignment needs weight_alignment (stripe or cylinder data)")
    where = data.slice()
    cells = where.select(data.cells)
    width = cells["width"].max()
    cells = cells.loc[cells["width"] == width]
    rows = measured.merge(cells[["cell_id", "alpha_tilde", "seed"]], on="cell_id")
    rows = rows.loc[np.isfinite(rows["weight_alignment"]) & (rows["flow_time"] > 0)]
    alphas = spread(rows["alpha_tilde"], MAX_LINES)
    fig, (ax,) = new_figure(width=6.4)
    for alpha, colour in zip(alphas, line_colours(len(alphas))):
        for k, (_, line) in enumerate(rows.loc[rows["alpha_tilde"] == alpha].groupby("seed")):
            line = line.sort_values("flow_time")
            ax.plot(
                line["flow_time"],
                line["weight_alignment"],
                "-",
                color=colour,
                lw=1,
                label=rf"$\tilde\alpha = {fmt(alpha)}$" if k == 0 else None,
            )
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    outside_legend(ax)
    log_axes(ax, x=True, y=True)
    ax.set(
        xlabel="flow time $t$",
        ylabel=r"$\Lambda = W_\parallel / W_\perp$",
        title=rf"feature alignment, $h = {fmt(width)}$"
        + (f"\n{where.title}" if where.title else ""),
    )
    return fig


def _seed_mean(column: pd.Series) -> np.ndarray:
    """Element-wise mean of the list column over rows, cut to the shortest list."""
    arrays = [np.asarray(v, float) for v in column if v is not None and len(v)]
    if not arrays:
        return np.zeros(0)
    n = min(KPCA_RANKS, *(len(a) for a in arrays))
    return np.mean([a[:n] for a in arrays], axis=0)


def kernel_pca(data: CampaignData) -> Figure:
    """Fig. 10: label projection ω_λ (left) and mutual information with the labels
    (right) against the rank of the NTK eigenvector, at init (dashed) and at the end
    (solid), seed-averaged, for the smallest and largest α̃ of the main slice."""
    kernels = data.kernels
    if (
        kernels is None
        or "kpca_label_projection_final" not in kernels
        or not len(_seed_mean(kernels["kpca_label_projection_final"]))
    ):
        raise SkipFigure("kernel_pca needs kpca_* columns (NTK measured, kernel_pca_rank > 0)")
    where = data.slice()
    cells = where.select(data.cells)
    cells = cells.loc[cells["width"] == cells["width"].max()].merge(kernels, on="cell_id")
    alphas = sorted({cells["alpha_tilde"].min(), cells["alpha_tilde"].max()})
    fig, axes = new_figure(ncols=2, width=4.2)
    panels = (
        ("label_projection", r"$\omega_\lambda = (\phi_\lambda\cdot y)^2/\|y\|^2$"),
        ("mutual_information", r"MI$(\phi_\lambda; y)$ [bits]"),
    )
    for ax, (quantity, label) in zip(axes, panels):
        for alpha, colour in zip(alphas, line_colours(len(alphas))):
            at = cells.loc[cells["alpha_tilde"] == alpha]
            for when, style in (("initial", "--"), ("final", "-")):
                values = _seed_mean(at[f"kpca_{quantity}_{when}"])
                if not len(values):  # nothing measured here: no line, no legend entry
                    continue
                ax.plot(
                    np.arange(1, len(values) + 1),
                    values,
                    style,
                    color=colour,
                    lw=1.2,
                    label=rf"$\tilde\alpha = {fmt(alpha)}$, {when}",
                )
        log_axes(ax, x=True)
        ax.set(xlabel=r"rank of the NTK eigenvalue $\lambda$", ylabel=label)
    outside_legend(axes[-1])
    axes[0].set_title("kernel PCA of the NTK" + (f"\n{where.title}" if where.title else ""))
    return fig


def weight_scatter(data: CampaignData) -> Figure:
    """Fig. 9 left: first-layer weight vectors W₁[i] scaled by the norm of their output
    weights, in the plane (x∥ = first coordinate, x⊥ = second), at init (grey) and at the end
    (colour), each checkpoint scaled to unit rms (feature-regime weights grow by orders of
    magnitude), for the smallest α̃ with a weights table (one seed)."""
    weights = data.weights
    if weights is None or weights.empty:
        raise SkipFigure("weight_scatter needs the weights table ([observables] weights = true)")
    rows = weights.merge(data.cells[["cell_id", "dataset"]], on="cell_id")
    rows = rows.loc[rows["first_layer_weights"].map(lambda v: v is not None and len(v) >= 2)]
    if rows.empty:
        raise SkipFigure("weight_scatter needs weights of inputs with at least two coordinates")
    alpha = rows["alpha_tilde"].min()
    cell = rows.loc[rows["alpha_tilde"] == alpha, "cell_id"].iloc[0]
    fig, (ax,) = new_figure(width=4.8, height=4.4)
    for checkpoint, colour in (("initial", "lightgrey"), ("final", line_colours(1)[0])):
        at = rows.loc[(rows["cell_id"] == cell) & (rows["checkpoint"] == checkpoint)]
        first = np.stack(at["first_layer_weights"].to_numpy())  # [h, d]
        scale = np.array([np.linalg.norm(v) for v in at["output_weights"]])  # [h]
        points = scale[:, None] * first[:, :2]
        points /= np.sqrt(np.mean(points**2)) or 1.0  # shapes compare across the growth
        ax.scatter(points[:, 0], points[:, 1], s=8, color=colour, label=checkpoint)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.legend(loc="best")
    ax.set(
        xlabel=r"$|W_2|\,W_{1,\parallel}$ (first coordinate)",
        ylabel=r"$|W_2|\,W_{1,\perp}$ (second coordinate)",
        title=rf"first-layer weights (unit rms), $\tilde\alpha = {fmt(alpha)}$",
    )
    return fig
