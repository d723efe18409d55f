"""Λ(P) measured by a campaign: what a compressed-data control takes as its
perpendicular_scale (pipeline.spec.from_campaign). Pure: DataFrames in, {P: Λ} out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.spec.from_campaign import PerpendicularSource


def measured_alignment(
    cells: pd.DataFrame | None, measurements: pd.DataFrame | None, source: PerpendicularSource
) -> dict[int, float]:
    """{P: geometric mean of the final Λ over the selected seeds} of the source campaign's
    `cells` and `measurements` (None: a table it does not have yet): its done cells (only
    the fitted ones for ``at = "fitted"``) at ``source.alpha_tilde`` (default its smallest
    α̃) and at its widest width there; cells without a finite positive Λ are left out."""
    if cells is None or measurements is None or cells.empty or measurements.empty:
        return {}
    if "weight_alignment" not in measurements:
        return {}
    cells = cells.loc[cells["status"] == "done"]
    if source.at == "fitted":
        cells = cells.loc[cells["fitted"].fillna(False).astype(bool)]
    if cells.empty:
        return {}
    alpha = source.alpha_tilde if source.alpha_tilde is not None else cells["alpha_tilde"].min()
    cells = cells.loc[np.isclose(cells["alpha_tilde"], alpha, rtol=1e-9)]
    cells = cells.loc[cells["width"] == cells["width"].max()] if not cells.empty else cells
    final = measurements.sort_values("step").groupby("cell_id")["weight_alignment"].last()
    values = cells.join(final, on="cell_id")
    values = values.loc[np.isfinite(values["weight_alignment"]) & (values["weight_alignment"] > 0)]
    return {
        int(p): float(np.exp(np.log(group).mean()))
        for p, group in values.groupby("train_size")["weight_alignment"]
    }
