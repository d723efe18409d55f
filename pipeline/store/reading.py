"""Reading a table file by file, skipping (and naming) the files that cannot be read.

The fallback of every whole-table read of the store: a corrupt file is warned about with
its path and left out, never crashes the reader and never vanishes silently.
"""

from __future__ import annotations

import warnings

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

import results_schema as rs
from pipeline.store.location import Location

VERIFIED_PARQUET = pads.ParquetFileFormat(  # page CRCs checked (Location writes them)
    default_fragment_scan_options=pads.ParquetFragmentScanOptions(page_checksum_verification=True)
)


class CorruptFileWarning(UserWarning):
    """A store file could not be read and was skipped by a reader."""


def visible_parquet(name: str) -> bool:
    """A data file of a table: readers skip `_quarantine`-style and dot-prefixed temp names."""
    return name.endswith(".parquet") and not name.startswith(("_", "."))


def read_readable_files(
    location: Location,
    table: str,
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,
) -> pa.Table:
    """The table read file by file, skipping (with a CorruptFileWarning naming each) the
    files that cannot be read: what a reader does when the whole-table read failed."""
    schema = rs.schema_of(table)
    parts = [schema.empty_table().select(columns or schema.names)]
    for entry in sorted(location.listdir(table), key=lambda e: e.name):
        if entry.is_dir or not visible_parquet(entry.name):
            continue
        rel = f"{table}/{entry.name}"
        try:
            part = conform(location.read_parquet(rel), schema)
            part = part.filter(filter) if filter is not None else part
            parts.append(part.select(columns or schema.names))
        except (pa.ArrowException, OSError, ValueError) as error:
            warnings.warn(
                CorruptFileWarning(
                    f"{location.uri}/{rel} is unreadable and was skipped ({type(error).__name__}: "
                    f"{error}); `phasegrid resume {location.uri}` quarantines it and re-runs its "
                    "cell"
                ),
                stacklevel=3,
            )
    return pa.concat_tables(parts)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns, in order: absent ones null (files written before a
    column was added), types cast exactly as a dataset read would."""
    columns = [
        table[f.name].cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
