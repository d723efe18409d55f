"""A cell's commit: every stored row of one cell replaced at once, as readers see it.

Two protocols, one per kind of store, with the same guarantee: a crash at any point leaves
the cell either as it was (its old record, or none) or complete.

Local disk (rename is atomic, and cheap):
1. every table of the cell is written into `_pending/<cell_id>/<table>.parquet`
   (each file through a temp name, then renamed),
2. a `COMMIT` marker listing those tables is written,
3. each file is moved to `<table>/<cell_id>.parquet`, `cells` last: the cells file is
   the cell's "done" record, and tables the attempt lacks are deleted before it,
4. the pending directory is deleted.
`recover_pending` finishes pending directories that have a COMMIT and deletes those that
do not.

Object stores (no rename: a copy and a delete per file cost ~77 requests a commit):
1. each data table is written once, at its final key `<table>/<cell_id>.parquet`, and
   the data tables the attempt lacks are deleted,
2. the cells record `cells/<cell_id>.parquet` is written last: the commit point.
A done commit is 5 requests (3 or 4 PUTs, a HEAD for an absent table, the record's PUT).
Until its record says `done`, a cell's data objects do not count: readers keep only the
rows of cells whose record is done (pipeline/store/user_reads.py), and the next driver's
`recover_objects` deletes the data objects of every cell that was in flight (it had an
attempt in `_live/`, deleted only after its commit) and is not done. A done cell is never
committed again (`run` skips it; quarantine removes its record first), so its rows are
never rewritten under a done record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pyarrow as pa

import results_schema as rs
from pipeline.store.kill_points import kill_point
from pipeline.store.location import Location
from pipeline.store.names import CELL_TABLES

PENDING, COMMIT = "_pending", "COMMIT"
DATA_TABLES = tuple(t for t in CELL_TABLES if t != "cells")  # in commit order, cells last


def check_tables(tables: dict[str, pa.Table]) -> None:
    """Refuse a commit without a `cells` table or with an unknown table, and validate
    every table against its schema, before anything is written."""
    if "cells" not in tables or set(tables) - set(CELL_TABLES):
        raise ValueError(
            f"commit needs a 'cells' table and only {CELL_TABLES}, got {sorted(tables)}"
        )
    for name, table in tables.items():
        rs.validate(name, table)


# local disk ---------------------------------------------------------------------------
def commit_local(location: Location, cell_id: str, tables: dict[str, pa.Table]) -> None:
    """Steps 1-4 of the local protocol (see the module docstring); `tables` checked."""
    _stage(location, cell_id, tables)
    kill_point("pending")
    location.write_bytes(f"{PENDING}/{cell_id}/{COMMIT}", json.dumps(sorted(tables)).encode())
    kill_point("commit")
    finish_pending(location, cell_id)


def write_pending(location: Location, cell_id: str, tables: dict[str, pa.Table]) -> None:
    """Step 1 of a local commit: the cell's files under _pending/<cell_id>/, no marker yet."""
    for name, table in tables.items():
        rs.validate(name, table)
    _stage(location, cell_id, tables)


def _stage(location: Location, cell_id: str, tables: dict[str, pa.Table]) -> None:
    pending = f"{PENDING}/{cell_id}"
    location.delete_dir(pending)
    for name, table in tables.items():
        location.write_parquet(f"{pending}/{name}.parquet", table)


def finish_pending(location: Location, cell_id: str) -> None:
    """Steps 3-4 of a local commit whose COMMIT marker exists; idempotent, so recovery
    can rerun it after a crash part-way through."""
    pending = f"{PENDING}/{cell_id}"
    names = json.loads(location.read_bytes(f"{pending}/{COMMIT}"))
    present = {e.name for e in location.listdir(pending)}
    for table in CELL_TABLES:
        target = f"{table}/{cell_id}.parquet"
        if table not in names:
            location.delete_file(target)
        elif f"{table}.parquet" in present:
            location.move(f"{pending}/{table}.parquet", target)
            kill_point("move")
    location.delete_dir(pending)


def recover_pending(location: Location) -> tuple[int, int]:
    """Finish the pending commits that have a COMMIT marker, discard the others; returns
    (finished, discarded)."""
    finished = discarded = 0
    for entry in location.listdir(PENDING):
        if location.exists(f"{PENDING}/{entry.name}/{COMMIT}"):
            finish_pending(location, entry.name)
            finished += 1
        else:
            location.delete_dir(f"{PENDING}/{entry.name}")
            discarded += 1
        kill_point("recover")
    return finished, discarded


# object stores ------------------------------------------------------------------------
def commit_objects(location: Location, cell_id: str, tables: dict[str, pa.Table]) -> None:
    """Steps 1-2 of the object-store protocol: data objects at their final keys (absent
    tables deleted), then the cells record, the commit point."""
    for name in DATA_TABLES:
        if name in tables:
            location.write_parquet(f"{name}/{cell_id}.parquet", tables[name])
            kill_point("put")
        else:
            location.delete_file(f"{name}/{cell_id}.parquet")
    kill_point("pending")
    location.write_parquet(f"cells/{cell_id}.parquet", tables["cells"])
    kill_point("commit")


def is_done(location: Location, cell_id: str) -> bool:
    """Whether the cell's record exists, reads, and says `done`."""
    rel = f"cells/{cell_id}.parquet"
    if not location.exists(rel):
        return False
    try:
        status = location.read_parquet(rel).column("status").to_pylist()
    except (pa.ArrowException, OSError, KeyError):
        return False  # unreadable: quarantine moves the record, the cell runs again
    return status == ["done"]


def recover_objects(location: Location, in_flight: Iterable[str]) -> int:
    """Delete the data objects of each cell of `in_flight` (cells that had an attempt in
    `_live/`) that is not done: what a commit cut short left. Returns how many cells had
    such objects."""
    cleaned = 0
    for cell_id in sorted(set(in_flight)):
        if is_done(location, cell_id):
            continue
        deleted = [location.delete_file(f"{name}/{cell_id}.parquet") for name in DATA_TABLES]
        cleaned += any(deleted)
        kill_point("recover")
    return cleaned
