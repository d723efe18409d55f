"""What a stored campaign holds for its refinement, read back from the store: its spec,
manifest and cells, the rows with the spec's settings, and the target to refine. Used by
`phasegrid refine` (pipeline.drivers.refine) and by `status` (refine_status) alike."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

import results_schema as rs
from pipeline.analysis.ensembles import done_cells, ensemble_table
from pipeline.analysis.refine_plan import AXES, matching_rows
from pipeline.spec.campaign import CampaignSpec, parse_campaign
from pipeline.spec.schema import REFINE_LEVELS, Refinement
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.rows import cell_parameters
from results_schema.tables import SETTINGS

TARGET_FILE = "refine.json"
POINT_AXES = ("width", "alpha_tilde", "train_size", "depth")


class RefineTargetError(ValueError):
    """The boundary, level or tolerance asked for cannot be refined; says what to pass."""


def default_target(
    boundary: str | None,
    level: float | None = None,
    tolerance: float | None = None,
    max_cells: int | None = None,
    base: Refinement | None = None,
) -> Refinement:
    """The Refinement asked for: the values given, else those of `base` (the spec's
    [refine]) when it is for the same boundary, else the boundary's defaults. With no
    boundary, `base`'s. Raises RefineTargetError saying what to pass."""
    boundary = boundary or (base.boundary if base else None)
    if boundary not in AXES:
        raise RefineTargetError(
            f"boundary must be one of {', '.join(AXES)}, got {boundary!r}: pass --boundary "
            "crossover or --boundary jamming (or add a [refine] section to the spec)"
        )
    base = base if base is not None and base.boundary == boundary else None
    level = level if level is not None else base.level if base else REFINE_LEVELS[boundary]
    tolerance = tolerance or (base.tolerance if base else Refinement.tolerance)
    max_cells = max_cells or (base.max_cells if base else None)
    if tolerance <= 1:
        raise RefineTargetError(f"tolerance must be a factor > 1, got {tolerance}: e.g. 1.25")
    if boundary == "jamming" and not 0 < level < 1:
        raise RefineTargetError(
            f"the jamming level is a fraction of seeds fitted, got {level}: use 0.5"
        )
    return Refinement(boundary, float(level), float(tolerance), max_cells)


# --- the spec's own rows of the store ------------------------------------------------------


def spec_settings(spec: CampaignSpec) -> dict:
    """The fixed settings columns (results_schema SETTINGS) shared by the spec's cells. A
    perpendicular_scale taken from another campaign varies with P: it is not among them
    (and the stored spec need not be resolved to read its rows)."""
    borrowed = spec.perpendicular_source is not None
    first = replace(spec, perpendicular_source=None) if borrowed else spec
    params = cell_parameters(first.cell(*(values[0] for values in first.axes.values())))
    return {
        f.name: params[f.name]
        for f in SETTINGS
        if not (borrowed and f.name == "perpendicular_scale")
    }


def spec_rows(frame: pd.DataFrame, spec: CampaignSpec) -> pd.DataFrame:
    """Rows of a cells / manifest table that have the spec's settings."""
    return frame.loc[matching_rows(frame, spec_settings(spec))]


def spec_ensembles(cells: pd.DataFrame, spec: CampaignSpec) -> pd.DataFrame:
    """Ensembles (per grid point over seeds) of the done cells with the spec's settings;
    no predictions are read, so ensemble_test_error and fluctuation are NaN."""
    done = spec_rows(done_cells(cells), spec)
    return ensemble_table(done, None)


def stored_spec(store: ParquetStore) -> CampaignSpec:
    """The campaign's resolved spec, as `run` stored it (spec.json)."""
    return parse_campaign(store.read_spec(), f"{store.uri}/spec.json")


def planned_points(manifest: pd.DataFrame, spec: CampaignSpec) -> pd.DataFrame:
    """Grid points of the manifest with the spec's settings (queued, run or failed)."""
    return spec_rows(manifest, spec)[[a for a in POINT_AXES if a in manifest]]


def store_tables(store: ParquetStore, configs: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, cells) of the store as DataFrames; the manifest's `config` JSON (most of
    its bytes: 10⁵ cells' configs are ~100 MB in memory) only with `configs`."""
    columns = [name for name in rs.MANIFEST.names if configs or name != "config"]
    manifest = store.manifest_columns(columns).to_pandas()
    return manifest, store.read_table("cells").to_pandas()
