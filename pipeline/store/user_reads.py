"""Tables read for a user (`load_results`): only the asked tables, columns and rows
(pyarrow.dataset pushdown: row groups whose statistics exclude the filter are skipped),
every unreadable file named once in a CorruptFileWarning and left out.

Filters are pyarrow's: a list of (column, op, value) tuples (all must hold), a list of such
lists (any of them), or a `pyarrow.compute.Expression`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import results_schema as rs
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.names import MANIFEST_FILE, PER_CELL
from pipeline.store.quarantine import CorruptFile, find_corrupt
from pipeline.store.reading import CorruptFileWarning

Columns = Sequence[str] | Mapping[str, Sequence[str]] | None
Filters: TypeAlias = Any  # [(column, op, value), ...], a list of such lists, an Expression


def filter_columns(filters: Filters) -> set[str]:
    """The column names a DNF filter list names (none known for an Expression)."""
    if filters is None or isinstance(filters, pc.Expression):
        return set()
    groups = filters if filters and isinstance(filters[0], list) else [filters]
    return {term[0] for group in groups for term in group}


def as_expression(filters: Filters) -> pc.Expression | None:
    if filters is None or isinstance(filters, pc.Expression):
        return filters
    return pq.filters_to_expression(list(filters)) if filters else None


def plan_columns(tables: Sequence[str], columns: Columns, filters: Filters) -> dict:
    """table -> the columns to read (None: all), for the tables worth reading. Raises
    ValueError naming the fix for an unknown table or column, or a filter on a column
    that a requested table lacks."""
    unknown = [t for t in tables if t not in rs.TABLES]
    if unknown:
        raise ValueError(f"unknown tables {unknown}: choose from {sorted(rs.TABLES)}")
    lacking = {t: filter_columns(filters) - set(rs.schema_of(t).names) for t in tables}
    lacking = {t: sorted(c) for t, c in lacking.items() if c}
    if lacking:
        raise ValueError(
            f"the filter's columns are not in every table asked for: {lacking}; "
            f"restrict tables=[...] to tables that have them"
        )
    if columns is None:
        return dict.fromkeys(tables)
    if isinstance(columns, Mapping):
        wrong = {
            t: [c for c in cs if t not in tables or c not in rs.schema_of(t).names]
            for t, cs in columns.items()
        }
        if any(wrong.values()):
            raise ValueError(
                f"columns not in their tables (or the table not asked for): "
                f"{ {t: cs for t, cs in wrong.items() if cs} }; results_schema/README.md "
                "lists each table's columns"
            )
        return {t: list(columns.get(t, rs.schema_of(t).names)) for t in tables}
    known = {c for t in tables for c in rs.schema_of(t).names}
    if set(columns) - known:
        raise ValueError(
            f"columns {sorted(set(columns) - known)} are in none of the tables {list(tables)}; "
            "results_schema/README.md lists each table's columns"
        )
    wanted = {t: [c for c in columns if c in rs.schema_of(t).names] for t in tables}
    return {t: cs for t, cs in wanted.items() if cs}  # tables with none of them: not read


def warn_corrupt(corrupt: list[CorruptFile], campaign: str) -> None:
    for bad in corrupt:
        warnings.warn(
            CorruptFileWarning(
                f"{bad.describe(campaign)}; it is left out. `phasegrid resume {campaign}` "
                "quarantines it and re-runs its cell"
            ),
            stacklevel=4,
        )


def read_for_user(
    store: ParquetStore, tables: Sequence[str], columns: Columns = None, filters: Filters = None
) -> dict[str, pa.Table]:
    """Read `tables` ("manifest" among them) for a user, with `columns` (one list for
    every table, or table -> list) and `filters` pushed down. Per-cell rows of cells
    without a readable `done` record are left out: they belong to a commit still in
    progress (or cut short by a kill, until the next driver cleans it up; on an object
    store a commit writes its data objects at their final keys before the record,
    pipeline/store/commits.py)."""
    plan = plan_columns(tables, columns, filters)
    expression = as_expression(filters)
    per_cell = set(plan) & set(PER_CELL[1:])
    corrupt = find_corrupt(store, tables={*plan, *(("cells",) if per_cell else ())})
    warn_corrupt(corrupt, store.uri)
    named = {bad.path for bad in corrupt}
    out: dict[str, pa.Table] = {}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", CorruptFileWarning)
        done_ids = _readable_cells(store) if per_cell else None
        for table, wanted in plan.items():
            if table == "manifest":
                out[table] = _manifest(store, MANIFEST_FILE in named, wanted, expression)
                continue
            dropped = {cell for bad in corrupt if bad.table == table for cell in bad.cells}
            out[table] = _read(store, table, wanted, expression, dropped, done_ids)
    for warning in seen:  # the read's own warnings, for files not named above
        if not any(f"{store.uri}/{path} " in str(warning.message) for path in named):
            warnings.warn(warning.message, stacklevel=3)
    return out


def _readable_cells(store: ParquetStore) -> pa.Array:
    """The ids of the cells whose record reads and says done: the only cells whose
    per-cell rows count (a failed record has none; a commit's data written before its
    record, on an object store, is not yet the cell's)."""
    done = store.read_table("cells", ["cell_id"], pc.field("status") == "done")
    return done["cell_id"].combine_chunks()


def _read(
    store: ParquetStore,
    table: str,
    wanted: list[str] | None,
    expression: pc.Expression | None,
    dropped: set[str],
    done_ids: pa.Array | None,
) -> pa.Table:
    """One table: `wanted` columns of the rows matching `expression`, less the rows of
    `dropped` cells and (per-cell tables) of cells without a done record."""
    columns = wanted if wanted is None or "cell_id" in wanted else ["cell_id", *wanted]
    has_cells = "cell_id" in rs.schema_of(table).names
    read = store.read_table(table, columns if has_cells else wanted, expression)
    if dropped and has_cells:
        read = read.filter(pc.invert(pc.is_in(read["cell_id"], pa.array(sorted(dropped)))))
    if done_ids is not None and table in PER_CELL[1:]:
        read = read.filter(pc.is_in(read["cell_id"], done_ids))
    return read.select(wanted) if wanted is not None else read


def _manifest(
    store: ParquetStore, unreadable: bool, wanted: list[str] | None, expression
) -> pa.Table:
    if unreadable:
        return rs.MANIFEST.empty_table().select(wanted or rs.MANIFEST.names)
    return store.manifest_columns(wanted or rs.MANIFEST.names, expression)
