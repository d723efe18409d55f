"""`plot_campaign`: the paper's figures of a campaign into <campaign>/figures/.

Figures read the stored `ensembles` / `boundaries` tables when they cover every done
cell, and recompute them in memory otherwise (the campaign moved on since the last
`aggregate`). A figure whose data is missing is skipped with a reason, never drawn
empty. Every figure carries a caption (campaign, budget, integrator, loss). A campaign of
several settings groups (`run --add-settings-group`) gets each figure once per group,
drawn from that group's rows only and named by it: figures/NAME.<group suffix>.png, e.g.
phase_diagram.max_steps-150.png. The figure functions themselves live in pipeline/figures/.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure

from pipeline.analysis.ensembles import done_cells
from pipeline.drivers.aggregate import campaign_aggregates
from pipeline.drivers.settings_groups import settings_groups
from pipeline.figures import FIGURES, CampaignData, SkipFigure
from pipeline.figures.caption import CAPTION_GID, add_caption, caption_of, caption_text
from pipeline.figures.style import RC
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.frames import read_table, require_campaign, write_file
from pipeline.store.location import Location


@dataclass(frozen=True)
class PlotOutcome:
    """One figure (of one settings group, when the campaign holds several): the files
    written, or why it was skipped."""

    name: str
    paths: tuple[str, ...] = ()
    skipped: str | None = None
    group: str = ""  # "max_steps = 150"; "" in a campaign of one settings group
    removed: tuple[str, ...] = ()  # NAME.<fmt> drawn before the campaign had several groups

    def summary(self) -> str:
        removed = f" (removed {', '.join(self.removed)}: drawn before the second settings group)"
        return f"{self.name}{f' [{self.group}]' if self.group else ''}: " + (
            f"skipped ({self.skipped})"
            if self.skipped
            else ", ".join(self.paths) + (removed if self.removed else "")
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


# where each format keeps a text: the caption, readable from the file alone
CAPTION_METADATA = {"png": "Description", "pdf": "Subject", "svg": "Description"}


def save_figure(fig: Figure, campaign: str, name: str, formats: Sequence[str]) -> tuple[str, ...]:
    """Write <campaign>/figures/NAME.<fmt> for each format, each atomically; the caption
    also goes into the file's metadata (CAPTION_METADATA)."""
    paths = []
    caption = caption_of(fig)
    for fmt in formats:
        image = io.BytesIO()
        key = CAPTION_METADATA.get(fmt)
        metadata = {key: caption} if key and caption else None
        fig.savefig(image, format=fmt, dpi=150, metadata=metadata)
        paths.append(write_file(campaign, f"figures/{name}.{fmt}", image.getvalue()))
    return tuple(paths)


@dataclass(frozen=True)
class DrawnFigure:
    """Figure `name` of one settings group, captioned, or why it was skipped; `stem` is
    its file name without the format (NAME, or NAME.<group suffix>)."""

    name: str
    stem: str
    group: str
    figure: Figure | None = None
    skipped: str | None = None


def draw_campaign(campaign: str, names: Sequence[str] | None = None) -> Iterator[DrawnFigure]:
    """The figures `names` (default: all of FIGURES) of a campaign, one at a time, once
    per settings group, each drawn from its group's rows only and captioned (campaign,
    budget, integrator, loss, and the group when there are several). Raises ValueError
    for an unknown name, CampaignNotFoundError if `campaign` is not one."""
    unknown = set(names or ()) - set(FIGURES)
    if unknown:
        raise ValueError(f"unknown figure(s) {sorted(unknown)}; choose from {sorted(FIGURES)}")
    require_campaign(campaign)
    data = load_campaign_data(campaign)
    if data is None:
        for name in names or FIGURES:
            yield DrawnFigure(name, name, "", skipped="no done cells yet")
        return
    title = campaign_name(campaign)
    groups = settings_groups(data.cells)
    of_groups = [data.of_settings(g.settings) if g.settings else data for g in groups]
    for name in names or FIGURES:
        for k, (group, of_group) in enumerate(zip(groups, of_groups), 1):
            stem = f"{name}.{group.suffix}" if group.suffix else name
            with matplotlib.rc_context(RC):
                try:
                    fig = FIGURES[name](of_group)
                except SkipFigure as reason:
                    yield DrawnFigure(name, stem, group.label, skipped=str(reason))
                    continue
            label = f"{group.label} ({k} of {len(groups)})" if group.label else ""
            add_caption(fig, caption_text(title, of_group.cells, label))
            yield DrawnFigure(name, stem, group.label, fig)


def plot_campaign(
    campaign: str, formats: Sequence[str] = ("png", "pdf"), names: Sequence[str] | None = None
) -> list[PlotOutcome]:
    """Draw the figures `names` (default: all of FIGURES) of a campaign (`draw_campaign`)
    into <campaign>/figures/. Once a figure is written per settings group, its file of
    the campaign's single-group days (figures/NAME.<fmt>, which named no group) is
    removed, so no figure in the folder reads as the whole campaign. Raises ValueError
    for an unknown name, CampaignNotFoundError if `campaign` is not one."""
    outcomes = []
    for drawn in draw_campaign(campaign, names):
        if drawn.figure is None:
            outcomes.append(PlotOutcome(drawn.name, skipped=drawn.skipped, group=drawn.group))
            continue
        with matplotlib.rc_context(RC):
            paths = save_figure(drawn.figure, campaign, drawn.stem, formats)
        removed = _remove_ungrouped(campaign, drawn.name, formats) if drawn.group else ()
        outcomes.append(PlotOutcome(drawn.name, paths, group=drawn.group, removed=removed))
    return outcomes


def _remove_ungrouped(campaign: str, name: str, formats: Sequence[str]) -> tuple[str, ...]:
    """Delete figures/NAME.<fmt> (a figure of before the campaign had several groups)."""
    location, removed = Location.open(campaign), []
    for fmt in formats:
        rel = f"figures/{name}.{fmt}"
        if location.exists(rel):
            location.delete_file(rel)
            removed.append(rel)
    return tuple(removed)


def campaign_name(campaign: str) -> str:
    """The stored spec's `name`; the campaign folder's name when spec.json is missing or
    unreadable (a figure still says which campaign it shows)."""
    try:
        spec = ParquetStore(Location.open(campaign)).stored_spec_or_none()
    except (OSError, ValueError):
        spec = None
    name = spec.get("name") if isinstance(spec, dict) else None
    return str(name) if name else campaign.rstrip("/").rsplit("/", 1)[-1]


__all__ = [
    "CAPTION_GID",
    "DrawnFigure",
    "PlotOutcome",
    "campaign_name",
    "draw_campaign",
    "load_campaign_data",
    "plot_campaign",
]
