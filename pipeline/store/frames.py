"""Campaign tables as pandas DataFrames, for the drivers that aggregate, plot and refine.

The same door as `ParquetStore`: reads verify page CRCs and skip (naming) unreadable
files, writes go through `Location.write_parquet` (page CRCs, temp name then rename).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import results_schema as rs
from pipeline.store.campaign_store import CampaignNotFoundError, ParquetStore
from pipeline.store.location import Location, join_uri
from pipeline.store.names import MANIFEST_FILE
from pipeline.store.reading import conform

AGGREGATE_FILE = "part-0.parquet"  # an aggregate table is one file, rewritten whole


def read_table(
    campaign: str, table: str, columns: Sequence[str] | None = None
) -> pd.DataFrame | None:
    """A campaign table (a directory of Parquet files, or the manifest file) as a DataFrame
    read with its results_schema schema (files written before a column existed read it
    as null), or None if the table does not exist yet."""
    location = Location.open(campaign)
    if not location.exists(table):
        return None
    wanted = list(columns) if columns else None
    if table == MANIFEST_FILE:
        manifest = conform(location.read_parquet(MANIFEST_FILE), rs.MANIFEST)
        return (manifest.select(wanted) if wanted else manifest).to_pandas()
    return ParquetStore(location).read_table(table, wanted).to_pandas()


SELECTING = ("width", "alpha_tilde", "train_size", "depth", "seed")  # sorted in compacted parts


def read_rows_of_cells(
    campaign: str, table: str, columns: Sequence[str], cells: pd.DataFrame
) -> pd.DataFrame:
    """`columns` of the rows of `table` that belong to `cells` (a frame with cell_id and
    the grid columns): a pushdown filter on their cell ids and the range of each grid
    column, so row groups of other grid points are skipped (compacted parts are sorted
    by these columns); the cell ids alone decide which rows come back. An absent table
    reads as an empty frame."""
    schema = rs.schema_of(table)
    wanted = pc.field("cell_id").isin(pa.array(sorted(set(cells["cell_id"])), pa.string()))
    for name in SELECTING:
        if name in cells and name in schema.names and len(cells):
            low, high = cells[name].min(), cells[name].max()
            inside = (pc.field(name) >= low) & (pc.field(name) <= high)
            wanted = wanted & (inside | pc.field(name).is_null())  # null: an older file
    location = Location.open(campaign)
    return ParquetStore(location).read_table(table, list(columns), wanted).to_pandas()


def read_cell_records(
    store: ParquetStore, columns: Sequence[str], ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """`columns` (cell_id among them) of the cells table, only the rows of the cells `ids`
    if given (a pushdown filter: the other files' row groups are skipped by statistics)."""
    wanted = None if ids is None else pc.field("cell_id").isin(pa.array(list(ids), pa.string()))
    return store.read_table("cells", list(columns), wanted).to_pandas()


def write_table(campaign: str, table: str, frame: pd.DataFrame) -> str:
    """Write `frame` as <campaign>/<table>/part-0.parquet, cast to the table's schema
    (missing columns null), atomically and with page CRCs. Returns the file's path or URI."""
    schema = rs.schema_of(table)
    arrow = pa.Table.from_pandas(
        frame.reindex(columns=schema.names), schema=schema, preserve_index=False
    )
    Location.open(campaign).write_parquet(f"{table}/{AGGREGATE_FILE}", arrow)
    return join_uri(campaign, f"{table}/{AGGREGATE_FILE}")


def write_file(campaign: str, rel: str, data: bytes) -> str:
    """Write `data` (a figure, a report) to <campaign>/<rel> atomically (temp name, then
    rename). Returns its path or URI as the user names the campaign."""
    Location.open(campaign).write_bytes(rel, data)
    return join_uri(campaign, rel)


def require_campaign(campaign: str) -> None:
    """Raise CampaignNotFoundError unless `campaign` holds a manifest or a cells table."""
    location = Location.open(campaign)
    if not (location.exists(MANIFEST_FILE) or location.exists("cells")):
        raise CampaignNotFoundError(
            f"no campaign at {campaign} (no {MANIFEST_FILE} or cells/); "
            f"start one with `phasegrid run SPEC.toml --store DIR`"
        )


def pending_cells(campaign: str, cells: pd.DataFrame) -> int:
    """Cells of the manifest without a cells record yet (queued or running)."""
    manifest = read_table(campaign, MANIFEST_FILE, ["cell_id"])
    if manifest is None:
        return 0
    return int((~manifest["cell_id"].isin(cells["cell_id"])).sum())
