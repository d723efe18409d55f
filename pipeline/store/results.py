"""`load_results(campaign)`: every table of a campaign as pandas DataFrames.

    from pipeline import load_results
    results = load_results("results/stripe-small")
    results.cells.groupby(["width", "alpha_tilde"]).test_error.mean()

Each table is read with its results_schema schema, so files written before a column was
added read it as null, and an absent table is an empty DataFrame with the right columns.
An unreadable file is left out with a CorruptFileWarning naming it (pipeline/store/quarantine.py);
aggregates computed from other done cells than the store holds give a StaleAggregatesWarning
naming `phasegrid aggregate` (pipeline/store/staleness.py).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import pandas as pd

import results_schema as rs
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.names import STORED_TABLES
from pipeline.store.quarantine import read_reporting_corrupt
from pipeline.store.staleness import StaleAggregatesWarning, stale_aggregates


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


def load_results(campaign: str, live: bool = False) -> Results:
    """Read every table of the campaign at `campaign` (a local path or a filesystem URI).
    With `live`, also the measurements streamed so far by cells still running."""
    store = ParquetStore.open(campaign)
    read = read_reporting_corrupt(store, tuple(t for t in STORED_TABLES if t in rs.TABLES))
    tables = {name: table.to_pandas() for name, table in read.items()}
    if live:
        tables["live_measurements"] = store.read_live().to_pandas()
    stale = stale_aggregates(campaign, tables["cells"], tables["ensembles"])
    if stale:
        warnings.warn(stale, StaleAggregatesWarning, stacklevel=2)
    return Results(campaign, **tables)
