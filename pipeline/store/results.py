"""`load_results(campaign)`: every table of a campaign as pandas DataFrames.

    from pipeline import load_results
    results = load_results("results/stripe-small")
    results.cells.groupby(["width", "alpha_tilde"]).test_error.mean()

Each table is read with its results_schema schema, so files written before a column was
added read it as null, and an absent table is an empty DataFrame with the right columns.
An unreadable file is left out with a CorruptFileWarning naming it (pipeline/store/quarantine.py);
aggregates computed from other done cells than the store holds give a StaleAggregatesWarning
naming `phasegrid aggregate` (pipeline/store/staleness.py; checked on unfiltered reads).
Only what is asked is read (pipeline/store/user_reads.py):

    load_results(campaign, tables=["measurements"], columns=["cell_id", "step", "train_loss"],
                 filters=[("width", "=", 64), ("alpha_tilde", ">", 1.0)])
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from pipeline.store.campaign_store import ParquetStore
from pipeline.store.names import STORED_TABLES
from pipeline.store.staleness import StaleAggregatesWarning, stale_aggregates
from pipeline.store.user_reads import Columns, Filters, read_for_user


def _empty() -> pd.DataFrame:
    return pd.DataFrame()


@dataclass(frozen=True)
class Results:
    """The tables of one campaign (results_schema/README.md documents every column).
    `live_measurements`: rows of cells still running (only with live=True), with an
    `attempt_id` column; they are not in `measurements` until the cell finishes."""

    campaign: str
    cells: pd.DataFrame = field(default_factory=_empty, repr=False)
    measurements: pd.DataFrame = field(default_factory=_empty, repr=False)
    predictions: pd.DataFrame = field(default_factory=_empty, repr=False)
    kernels: pd.DataFrame = field(default_factory=_empty, repr=False)
    weights: pd.DataFrame = field(default_factory=_empty, repr=False)
    ensembles: pd.DataFrame = field(default_factory=_empty, repr=False)
    boundaries: pd.DataFrame = field(default_factory=_empty, repr=False)
    manifest: pd.DataFrame = field(default_factory=_empty, repr=False)
    live_measurements: pd.DataFrame = field(default_factory=_empty, repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "campaign"
        }


def load_results(
    campaign: str,
    live: bool = False,
    *,
    tables: Sequence[str] | None = None,
    columns: Columns = None,
    filters: Filters = None,
) -> Results:
    """Read the tables of the campaign at `campaign` (a local path or a filesystem URI):
    `tables` (default: every table and the manifest; the others are empty), `columns`
    (one list for every table, each table taking those it has, a table with none of them
    not read; or table -> list), rows matching `filters` (pyarrow's filter lists or an
    Expression, pushed down to the files). With `live`, also the measurements streamed so
    far by cells still running. Raises ValueError naming the fix for an unknown table or
    column, or a filter on a column that an asked table lacks."""
    store = ParquetStore.open(campaign)
    wanted = tuple(tables) if tables is not None else (*STORED_TABLES, "manifest")
    read = read_for_user(store, wanted, columns, filters)
    tables_read = {name: table.to_pandas() for name, table in read.items()}
    if live:
        tables_read["live_measurements"] = store.read_live().to_pandas()
    if filters is None and "cells" in tables_read and "ensembles" in tables_read:
        stale = stale_aggregates(campaign, tables_read["cells"], tables_read["ensembles"])
        if stale:
            warnings.warn(stale, StaleAggregatesWarning, stacklevel=2)
    return Results(campaign, **tables_read)
