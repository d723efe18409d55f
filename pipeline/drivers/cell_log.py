"""`phasegrid logs CAMPAIGN CELL`: one cell's record, its full error and its last
measurements (the committed ones, else the live rows of its running attempt)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipeline.store.campaign_store import ParquetStore

LOG_COLUMNS = ["step", "flow_time", "train_loss", "n_unsatisfied", "test_error", "wall_seconds"]


class UnknownCellError(ValueError):
    """No cell (or more than one) of the campaign has the given id prefix."""


@dataclass(frozen=True)
class CellLog:
    cell_id: str
    status: str  # done | failed | running or pending (no cells record yet)
    record: dict  # the cells row (empty without one)
    measurements: pd.DataFrame = field(repr=False)  # the last rows, LOG_COLUMNS


def cell_log(campaign: str, prefix: str, last: int = 10) -> CellLog:
    """The cell of `campaign` whose id starts with `prefix`. Reads only."""
    store = ParquetStore.open(campaign)
    ids = sorted(set(store.manifest()["cell_id"].to_pylist()))
    matches = [c for c in ids if c.startswith(prefix)]
    if len(matches) != 1:
        found = "no cell" if not matches else f"{len(matches)} cells ({', '.join(matches[:4])})"
        raise UnknownCellError(
            f"{found} of {campaign} has an id starting with {prefix!r}: give more of the "
            f"cell_id (`phasegrid status {campaign} --json` lists them)"
        )
    (cell_id,) = matches
    cells = store.read_table("cells").to_pandas()
    rows = cells.loc[cells["cell_id"] == cell_id]
    record = rows.iloc[-1].to_dict() if len(rows) else {}
    measured = store.read_table("measurements").to_pandas()
    measured = measured.loc[measured["cell_id"] == cell_id]
    if measured.empty:
        measured = store.read_live(cell_id).to_pandas()
    status = str(record.get("status") or ("running" if len(measured) else "pending"))
    tail = measured.sort_values("step")[LOG_COLUMNS].tail(last).reset_index(drop=True)
    return CellLog(cell_id, status, record, tail)
