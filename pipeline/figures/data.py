"""What every figure receives: a campaign's done cells and aggregates, in memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.analysis.boundaries import without_stalled
from pipeline.figures.style import SkipFigure, Slice, main_slice


@dataclass(frozen=True)
class CampaignData:
    """Done cells, `ensembles`, `boundaries` and (optionally) `kernels` and the
    `measurements` columns the figures use (cell_id, flow_time, weight_alignment), and the
    `weights` table."""

    cells: pd.DataFrame
    ensembles: pd.DataFrame
    boundaries: pd.DataFrame
    kernels: pd.DataFrame | None = None
    measurements: pd.DataFrame | None = None
    weights: pd.DataFrame | None = None

    @property
    def unstalled_cells(self) -> pd.DataFrame:
        """The done cells whose flow did not stall: the only ones a fitted / jammed count
        may read (a stalled cell is neither; the ensembles already leave it out)."""
        return without_stalled(self.cells)

    def of_settings(self, settings: Mapping[str, Any]) -> CampaignData:
        """Only the rows with these values of settings columns (None matches a null): one
        settings group of a campaign that holds several. Tables keyed by cell (kernels,
        measurements, weights) keep the group's cells. Raises ValueError when a table
        lacks one of the columns (it could not be told apart, so it would mix groups)."""
        cells = _with_values(self.cells, settings, "cells")
        ids = set(cells["cell_id"])

        def of_cells(frame: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if frame is None else frame.loc[frame["cell_id"].isin(ids)]

        return CampaignData(
            cells,
            _with_values(self.ensembles, settings, "ensembles"),
            _with_values(self.boundaries, settings, "boundaries"),
            of_cells(self.kernels),
            of_cells(self.measurements),
            of_cells(self.weights),
        )

    def slice(self) -> Slice:
        if self.ensembles.empty:
            raise SkipFigure("no done cells yet")
        return main_slice(self.ensembles)

    def boundary(self, kind: str, where: Slice) -> pd.DataFrame:
        """Rows of one boundary kind at the slice (all budgets / levels)."""
        rows = self.boundaries
        if rows.empty:
            return rows
        return where.select(rows.loc[rows["boundary"] == kind])

    def jamming_as_run(self, where: Slice) -> pd.DataFrame:
        """Jamming rows (one per α̃) of the campaign's own budget: the line "as run"
        when there is one, else the largest step budget."""
        rows = self.boundary("jamming", where)
        if rows.empty or rows["budget_steps"].isna().any():
            return rows.loc[rows["budget_steps"].isna()] if not rows.empty else rows
        return rows.loc[np.isclose(rows["budget_steps"], rows["budget_steps"].max())]


def _with_values(frame: pd.DataFrame, settings: Mapping[str, Any], table: str) -> pd.DataFrame:
    """Rows of `frame` whose columns equal `settings` (None: null); an empty frame as is."""
    if frame.empty:
        return frame
    keep = np.ones(len(frame), bool)
    for column, value in settings.items():
        if column not in frame:
            raise ValueError(f"{table} has no {column} column to tell settings groups apart")
        values = frame[column]
        keep &= (values.isna() if value is None else values == value).to_numpy(bool)
    return frame.loc[keep]
