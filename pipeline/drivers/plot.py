"""`plot_campaign`: the paper's figures of a campaign into <campaign>/figures/.

Figures read the stored `ensembles` / `boundaries` tables when they cover every done
cell, and recompute them in memory otherwise (the campaign moved on since the last
`aggregate`). A figure whose data is missing is skipped with a reason, never drawn
empty. The figure functions themselves live in pipeline/figures/.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure

from pipeline.analysis.ensembles import done_cells
from pipeline.drivers.aggregate import campaign_aggregates
from pipeline.figures import FIGURES, CampaignData, SkipFigure
from pipeline.figures.style import RC
from pipeline.store.frames import read_table, require_campaign, write_file


@dataclass(frozen=True)
class PlotOutcome:
    """One figure: the files written, or why it was skipped."""

    name: str
    paths: tuple[str, ...] = ()
    skipped: str | None = None

    def summary(self) -> str:
        return f"{self.name}: " + (
            f"skipped ({self.skipped})" if self.skipped else ", ".join(self.paths)
        )


KPCA_FIGURE_COLUMNS = tuple(
    f"kpca_{q}_{w}"
    for q in ("label_projection", "mutual_information")
    for w in ("initial", "final")
)


def load_campaign_data(campaign: str) -> CampaignData | None:
    """Done cells, aggregates and H0 spectra of a campaign; None without done cells."""
    cells = read_table(campaign, "cells")
    done = done_cells(cells) if cells is not None else None
    if done is None or done.empty:
        return None
    ensembles = read_table(campaign, "ensembles")
    boundaries = read_table(campaign, "boundaries")
    stale = ensembles is None or boundaries is None or ensembles["n_seeds"].sum() != len(done)
    if stale:  # never aggregated, or cells finished since: recompute
        ensembles, boundaries = campaign_aggregates(campaign, done)
    kernels = read_table(campaign, "kernels", ["cell_id", "h0_eigenvalues", *KPCA_FIGURE_COLUMNS])
    measurements = read_table(
        campaign, "measurements", ["cell_id", "flow_time", "weight_alignment"]
    )
    weights = read_table(campaign, "weights")
    return CampaignData(done, ensembles, boundaries, kernels, measurements, weights)


def save_figure(fig: Figure, campaign: str, name: str, formats: Sequence[str]) -> tuple[str, ...]:
    """Write <campaign>/figures/NAME.<fmt> for each format, each atomically."""
    paths = []
    for fmt in formats:
        image = io.BytesIO()
        fig.savefig(image, format=fmt, dpi=150)
        paths.append(write_file(campaign, f"figures/{name}.{fmt}", image.getvalue()))
    return tuple(paths)


def plot_campaign(
    campaign: str, formats: Sequence[str] = ("png", "pdf"), names: Sequence[str] | None = None
) -> list[PlotOutcome]:
    """Draw the figures `names` (default: all of FIGURES) of a campaign. Raises
    ValueError for an unknown name, CampaignNotFoundError if `campaign` is not one."""
    unknown = set(names or ()) - set(FIGURES)
    if unknown:
        raise ValueError(f"unknown figure(s) {sorted(unknown)}; choose from {sorted(FIGURES)}")
    require_campaign(campaign)
    data = load_campaign_data(campaign)
    outcomes = []
    for name in names or FIGURES:
        if data is None:
            outcomes.append(PlotOutcome(name, skipped="no done cells yet"))
            continue
        with matplotlib.rc_context(RC):
            try:
                fig = FIGURES[name](data)
            except SkipFigure as reason:
                outcomes.append(PlotOutcome(name, skipped=str(reason)))
                continue
            outcomes.append(PlotOutcome(name, save_figure(fig, campaign, name, formats)))
    return outcomes
