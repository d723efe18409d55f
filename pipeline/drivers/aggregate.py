"""`phasegrid aggregate`: recompute a campaign's ensembles and boundaries tables from its
done cells, read and written through the store (pipeline.store.frames)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipeline.analysis.ensembles import (
    aggregate_tables,
    done_cells,
    grid_axes,
    streamed_output_statistics,
)
from pipeline.store.frames import (
    pending_cells,
    read_rows_of_cells,
    read_table,
    require_campaign,
    write_table,
)


@dataclass(frozen=True)
class AggregateReport:
    """What `aggregate_campaign` did: cells used (done), skipped (failed), pending
    (in the manifest, not finished yet), rows and paths written."""

    campaign: str
    cells_used: int
    cells_failed: int
    cells_pending: int
    ensemble_rows: int
    boundary_rows: int
    tables_written: tuple[str, ...]

    def summary(self) -> str:
        return (
            f"{self.campaign}: used {self.cells_used} done cells "
            f"(skipped {self.cells_failed} failed, {self.cells_pending} pending); "
            f"wrote ensembles ({self.ensemble_rows} rows), "
            f"boundaries ({self.boundary_rows} rows)"
        )


PREDICTION_ROWS_PER_READ = 1_000_000  # predictions held at once (or one grid point, if more)


def campaign_aggregates(campaign: str, done: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ensembles, boundaries) of the done cells `done`, reading only the columns of
    predictions and measurements that aggregation needs; predictions are read grid point
    by grid point (a pushdown filter each), so memory does not grow with the campaign."""
    ids = set(done["cell_id"])
    columns = ["cell_id", "test_index", "test_output", "test_label"]
    outputs = streamed_output_statistics(
        done,
        grid_axes(done),
        lambda cells: read_rows_of_cells(campaign, "predictions", columns, cells),
        PREDICTION_ROWS_PER_READ,
    )
    measurements = read_table(campaign, "measurements", ["cell_id", "step", "n_unsatisfied"])
    if measurements is not None:
        measurements = measurements.loc[measurements["cell_id"].isin(ids)]
    return aggregate_tables(done, None, measurements, outputs)


def aggregate_campaign(campaign: str) -> AggregateReport:
    """Recompute and write <campaign>/ensembles and <campaign>/boundaries from the
    cells done so far (works while a campaign runs or after some cells failed).
    Raises CampaignNotFoundError when `campaign` is not a campaign directory."""
    require_campaign(campaign)
    cells = read_table(campaign, "cells")
    if cells is None:
        cells = pd.DataFrame({"cell_id": pd.Series(dtype=str), "status": pd.Series(dtype=str)})
    pending = pending_cells(campaign, cells)
    done = done_cells(cells)
    failed = int((cells.drop_duplicates("cell_id", keep="last")["status"] == "failed").sum())
    if done.empty:
        return AggregateReport(campaign, 0, failed, pending, 0, 0, ())
    ensembles, boundaries = campaign_aggregates(campaign, done)
    written = (
        write_table(campaign, "ensembles", ensembles),
        write_table(campaign, "boundaries", boundaries),
    )
    return AggregateReport(
        campaign, len(done), failed, pending, len(ensembles), len(boundaries), written
    )
