"""Done cells written straight into compacted parts, without a per-cell file each.

`write_compacted` takes the rows of many done cells, chunk by chunk, and stores them
exactly as `compact` (pipeline/store/compaction.py) would have after one commit per cell:
`<table>/part-<run>-<k>.parquet` sorted by the grid columns, `_compacted/<run>.json`
naming each chunk's cells, the parts recorded as verified. It goes through compaction's
own protocol (parts staged under `_compact/<run>/`, the plan as commit point, the swap),
so a crash leaves the campaign as before or with every chunk in place. What it is for:
importing many finished cells at once (the store-scale benchmark synthesises 10⁵ cells
with it in minutes, where 10⁵ commits take hours).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

import results_schema as rs
from pipeline.store import verified
from pipeline.store.compaction import (
    COMPACT,
    INDEX,
    PLAN,
    ROW_GROUP_ROWS,
    SORT_KEYS,
    finish,
    part_name,
    table_files,
)
from pipeline.store.kill_points import kill_point
from pipeline.store.location import Location
from pipeline.store.names import PER_CELL

Chunk = dict[str, pa.Table]  # table name -> the rows of some done cells ("cells" required)


def stored_cells(location: Location) -> set[str]:
    """Ids of every cell with a cells record: per-cell files and compacted chunks."""
    files, _ = table_files(location, "cells")
    ids = {name.removesuffix(".parquet") for name in files}
    for entry in location.listdir(INDEX):
        if entry.name.endswith(".json"):
            chunks = json.loads(location.read_bytes(f"{INDEX}/{entry.name}"))["chunks"]
            ids.update(cell for chunk in chunks for cell in chunk)
    return ids


def _checked(chunk: Chunk, known: set[str]) -> tuple[list[str], Chunk]:
    """(the chunk's cell ids in grid order, its tables validated and sorted); refuses
    cells that are not done or are stored already (their rows would be twice)."""
    if "cells" not in chunk or set(chunk) - set(PER_CELL):
        raise ValueError(f"a chunk needs a 'cells' table and only {PER_CELL}, got {sorted(chunk)}")
    cells = chunk["cells"]
    if pc.any(pc.not_equal(cells["status"], "done")).as_py():
        raise ValueError("write_compacted stores done cells only; commit failed cells one by one")
    order = [(k, "ascending") for k in SORT_KEYS]
    ids = cells.sort_by(order)["cell_id"].to_pylist()
    again = known.intersection(ids)
    if again or len(set(ids)) != len(ids):
        raise ValueError(
            f"{len(again) or len(ids) - len(set(ids))} cells are stored already or twice "
            f"(e.g. {sorted(again)[:3]}): write_compacted adds new cells only"
        )
    tables = {}
    for name, table in chunk.items():
        rs.validate(name, table)
        rank = pc.index_in(table["cell_id"], pa.array(ids, pa.string()))
        if rank.null_count:
            raise ValueError(f"the chunk's {name} table has rows of cells not in its cells table")
        tables[name] = table.take(pc.sort_indices(rank))  # stable: each cell's own order kept
    return ids, tables


def _write(location: Location, rel: str, name: str, table: pa.Table) -> None:
    schema = rs.schema_of(name)
    with location.parquet_writer(rel, schema) as writer:
        writer.write_table(table.select(schema.names).cast(schema), row_group_size=ROW_GROUP_ROWS)


def write_compacted(location: Location, chunks: Iterable[Chunk]) -> tuple[str, int]:
    """Store the done cells of `chunks` (each: table name -> rows of the same cells, at
    most compaction.CELLS_PER_PART of them) as compacted parts, one per chunk and table.
    Call only while holding the campaign, with the cells already in the manifest. Returns
    (the run id, cells written). Raises ValueError, writing nothing visible, for a chunk
    with a cell that is not done or already stored."""
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    known = stored_cells(location)
    index: list[list[str]] = []
    plan: dict[str, dict] = {table: {"parts": [], "absorbed": []} for table in PER_CELL}
    try:
        for k, (ids, tables) in enumerate(_each_checked(chunks, known)):
            index.append(ids)
            for name, table in tables.items():
                if table.num_rows:
                    _write(location, f"{COMPACT}/{run}/{name}/{part_name(run, k)}", name, table)
                    plan[name]["parts"].append(part_name(run, k))
    except BaseException:
        location.delete_dir(f"{COMPACT}/{run}")
        raise
    if not index:
        return run, 0
    location.write_bytes(f"{INDEX}/{run}.json", json.dumps({"chunks": index}).encode())
    kill_point("compact_staged")
    location.write_bytes(f"{COMPACT}/{run}/{PLAN}", json.dumps(plan).encode())
    kill_point("compact_planned")
    finish(location, run)
    written = {f"{t}/{name}" for t, entry in plan.items() for name in entry["parts"]}
    verified.record(location, PER_CELL, written)
    return run, sum(map(len, index))


def _each_checked(chunks: Iterable[Chunk], known: set[str]) -> Iterator[tuple[list[str], Chunk]]:
    for chunk in chunks:
        ids, tables = _checked(chunk, known)
        known.update(ids)
        yield ids, tables
