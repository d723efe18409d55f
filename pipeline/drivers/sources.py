"""Spec values taken from other campaigns, resolved when a campaign is run: today the
compressed-data control's `perpendicular_scale = {from_campaign = …}` (Λ(P), see
pipeline.spec.from_campaign). The other campaign is read through the store's DataFrame
door (`pipeline.store.frames`); nothing is written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipeline.analysis.alignment import measured_alignment
from pipeline.spec.campaign import CampaignSpec, load_campaign_text
from pipeline.spec.from_campaign import measured_scales, unreadable_source
from pipeline.store.frames import read_table, require_campaign

CELL_COLUMNS = ["cell_id", "status", "fitted", "alpha_tilde", "width", "train_size"]
MEASUREMENT_COLUMNS = ["cell_id", "step", "weight_alignment"]


def resolve_sources(spec: CampaignSpec) -> CampaignSpec:
    """``spec`` with `perpendicular_scales` {P: Λ(P)} read from its source campaign;
    ``spec`` itself when its perpendicular_scale is a number. Raises SpecError if the
    source is absent or unreadable, or lacks a P of this campaign."""
    source, where = spec.perpendicular_source, spec.source_path or "<spec>"
    if source is None:
        return spec
    try:
        require_campaign(source.from_campaign)
        cells = read_table(source.from_campaign, "cells", CELL_COLUMNS)
        measurements = read_table(source.from_campaign, "measurements", MEASUREMENT_COLUMNS)
    except (FileNotFoundError, OSError, ValueError) as err:
        raise unreadable_source(source, err, where) from None
    measured = measured_alignment(cells, measurements, source)
    scales = measured_scales(source, measured, spec.axes["train_size"], where)
    return replace(spec, perpendicular_scales=scales)


def load_resolved_campaign_text(
    path: str | Path, *, check_data: bool = True
) -> tuple[CampaignSpec, str]:
    """`pipeline.spec.campaign.load_campaign_text` with its sources resolved."""
    spec, text = load_campaign_text(path, check_data=check_data)
    return resolve_sources(spec), text


def load_resolved_campaign(path: str | Path, *, check_data: bool = True) -> CampaignSpec:
    """`pipeline.spec.campaign.load_campaign` with its sources resolved: what `run` trains."""
    return load_resolved_campaign_text(path, check_data=check_data)[0]
