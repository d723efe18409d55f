"""Compaction: the per-cell files of done cells rewritten into a few large sorted files.

A campaign of 10⁵ cells holds 4·10⁵ small files; every reader pays per file. `compact`
rewrites the per-cell files of every *done* cell (failed cells stay per-cell: `resume`
re-runs them) into `<table>/part-<run>-<k>.parquet`: chunk k holds the same
CELLS_PER_PART cells in every table, sorted by the grid columns, in row groups of up to
ROW_GROUP_ROWS rows, written with page CRCs. Earlier parts are left as they are, so a
compaction costs what the new cells cost, and cells committed later land as per-cell
files beside the parts (a done cell is never committed again, so no row is in both).
`_compacted/<run>.json` names the cells of each chunk (what `status` and quarantine use
when a part is damaged).

Exactly once, like a cell's commit (pipeline/store/campaign_store.py):
1. every part is written under `_compact/<run>/<table>/` (each through a temp name),
2. `_compact/<run>/plan.json` lists, per table, the parts and the files they absorb:
   the commit point,
3. per table, the folder is swapped for the staged one in one atomic step (local disks:
   the staged folder gets hard links of the files that stay, then renameat2 exchange); on
   object stores the parts are moved in, then the absorbed files deleted,
4. `_compact/<run>/` (by then the old folders) is deleted.
`recover_compactions` (run by every driver's `recover`) finishes a run with a plan and
deletes one without. Readers skip `_`-names, so staging is never read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

import results_schema as rs
from pipeline.store import verified
from pipeline.store.kill_points import kill_point
from pipeline.store.location import Location
from pipeline.store.names import PER_CELL
from pipeline.store.reading import VERIFIED_PARQUET, visible_parquet

COMPACT, INDEX, PLAN = "_compact", "_compacted", "plan.json"
PART_PREFIX = "part-"
CELLS_PER_PART = 4096  # one damaged part re-runs at most this many cells
ROW_GROUP_ROWS = 1 << 20  # large row groups: few reads, useful min/max statistics
SORT_KEYS = ("width", "alpha_tilde", "train_size", "depth", "seed", "cell_id")


@dataclass(frozen=True)
class CompactReport:
    """What one compaction did: its run id, cells absorbed, files before and after."""

    campaign: str
    run: str | None  # None: nothing to compact
    cells: int
    files_before: int
    files_after: int

    def describe(self) -> str:
        if self.run is None:
            return f"{self.campaign}: nothing to compact ({self.files_before} files)"
        return (
            f"{self.campaign}: compacted {self.cells} done cells, "
            f"{self.files_before} files -> {self.files_after}"
        )


def part_name(run: str, chunk: int) -> str:
    return f"{PART_PREFIX}{run}-{chunk:05d}.parquet"


def parse_part(name: str) -> tuple[str, int] | None:
    """(run, chunk) of a compacted part's file name, None for a per-cell file."""
    if not name.startswith(PART_PREFIX) or not name.endswith(".parquet"):
        return None
    run, _, chunk = name.removeprefix(PART_PREFIX).removesuffix(".parquet").rpartition("-")
    return (run, int(chunk)) if run and chunk.isdigit() else None


def table_files(location: Location, table: str) -> tuple[list[str], list[str]]:
    """(per-cell files, compacted parts) of `table`: the visible Parquet names."""
    names = [e.name for e in location.listdir(table) if not e.is_dir and visible_parquet(e.name)]
    parts = [n for n in names if parse_part(n)]
    return [n for n in names if not parse_part(n)], parts


def part_cells(location: Location, name: str) -> tuple[str, ...]:
    """The cells of the compacted part `name` (from `_compacted/<run>.json`); () if unknown."""
    parsed = parse_part(name)
    if parsed is None:
        return ()
    run, chunk = parsed
    try:
        chunks = json.loads(location.read_bytes(f"{INDEX}/{run}.json"))["chunks"]
        return tuple(chunks[chunk])
    except (OSError, ValueError, KeyError, IndexError):
        return ()


class CompactionError(RuntimeError):
    """A file to compact could not be read; nothing was changed."""


def _files(location: Location, table: str, cells: list[str]) -> pads.Dataset:
    """The per-cell files of `cells` in `table`, in that order, as one dataset read with
    the table's schema and page CRCs verified."""
    present = set(table_files(location, table)[0])
    paths = [location.path(f"{table}/{c}.parquet") for c in cells if f"{c}.parquet" in present]
    return pads.dataset(
        paths, filesystem=location.fs, format=VERIFIED_PARQUET, schema=rs.schema_of(table)
    )


def _done_per_cell(location: Location) -> list[str]:
    """Ids of the done cells whose cells record is a per-cell file, in grid order."""
    files, _ = table_files(location, "cells")
    ids = [name.removesuffix(".parquet") for name in files]
    cells = _files(location, "cells", ids).to_table(
        columns=["status", *SORT_KEYS], filter=pc.field("status") == "done"
    )
    return cells.sort_by([(k, "ascending") for k in SORT_KEYS])["cell_id"].to_pylist()


def _write_part(location: Location, table: str, cells: list[str], rel: str) -> int:
    """Stream the per-cell files of `cells` of `table` into one part at `rel`, in row
    groups of up to ROW_GROUP_ROWS (memory: one row group); returns the rows written
    (0: no file written)."""
    groups = _row_groups(_files(location, table, cells).to_batches())
    first = next(groups, None)
    if first is None:
        return 0
    rows = 0
    with location.parquet_writer(rel, rs.schema_of(table)) as writer:
        for group in (first, *groups):
            writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
            rows += group.num_rows
    return rows


def _row_groups(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    """`batches` regrouped into tables of about ROW_GROUP_ROWS rows."""
    buffer: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        buffer.append(batch)
        held += batch.num_rows
        if held >= ROW_GROUP_ROWS:
            yield pa.Table.from_batches(buffer)
            buffer, held = [], 0
    if held:
        yield pa.Table.from_batches(buffer)


def _stage(location: Location, run: str, cells: list[str]) -> dict:
    """Steps 1 of a compaction: the index and every part under `_compact/<run>/`; returns
    the plan (table -> parts, absorbed files)."""
    chunks = [cells[i : i + CELLS_PER_PART] for i in range(0, len(cells), CELLS_PER_PART)]
    location.write_bytes(f"{INDEX}/{run}.json", json.dumps({"chunks": chunks}).encode())
    plan = {}
    for table in PER_CELL:
        present = set(table_files(location, table)[0])
        parts = [
            part_name(run, k)
            for k, chunk in enumerate(chunks)
            if _write_part(location, table, chunk, f"{COMPACT}/{run}/{table}/{part_name(run, k)}")
        ]
        absorbed = [f"{c}.parquet" for c in cells if f"{c}.parquet" in present]
        plan[table] = {"parts": parts, "absorbed": absorbed}
    return plan


def compact(location: Location) -> CompactReport:
    """Compact the done cells' per-cell files (see the module docstring). Call only while
    holding the campaign, after `recover` and the quarantine of unreadable files; an
    unreadable file stops the compaction before anything is visible (CompactionError)."""
    before = _count_files(location)
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    try:
        cells = _done_per_cell(location)
        if not cells:
            return CompactReport(location.uri, None, 0, before, before)
        plan = _stage(location, run, cells)
    except (pa.ArrowException, OSError) as error:
        location.delete_dir(f"{COMPACT}/{run}")
        location.delete_file(f"{INDEX}/{run}.json")
        raise CompactionError(
            f"cannot compact {location.uri}: a file is unreadable ({type(error).__name__}: "
            f"{error}); nothing was changed. `phasegrid resume {location.uri}` quarantines it "
            "and re-runs its cell, then compacts"
        ) from error
    kill_point("compact_staged")
    location.write_bytes(f"{COMPACT}/{run}/{PLAN}", json.dumps(plan).encode())
    kill_point("compact_planned")
    finish(location, run)
    kill_point("compacted")
    parts = {f"{t}/{name}" for t, entry in plan.items() for name in entry["parts"]}
    verified.record(location, PER_CELL, parts)
    return CompactReport(location.uri, run, len(cells), before, _count_files(location))


def _count_files(location: Location) -> int:
    return sum(sum(map(len, table_files(location, t))) for t in PER_CELL)


def finish(location: Location, run: str) -> None:
    """Steps 3-4 for a run whose plan exists; idempotent (recovery reruns it)."""
    plan = json.loads(location.read_bytes(f"{COMPACT}/{run}/{PLAN}"))
    for table in PER_CELL:  # any order: each table holds the same rows before and after
        entry = plan.get(table)
        if entry:
            _swap_in(location, table, f"{COMPACT}/{run}/{table}", entry["parts"], entry["absorbed"])
            kill_point("compact_swap")
    location.delete_dir(f"{COMPACT}/{run}")


def _swap_in(
    location: Location, table: str, staged: str, parts: list[str], absorbed: list[str]
) -> None:
    """Make `table` hold `parts` instead of `absorbed`, keeping every other file."""
    location.makedirs(table)
    listed = {e.name for e in location.listdir(table) if not e.is_dir}
    if set(parts) <= listed and not listed & set(absorbed):
        return  # done before a crash
    if location.is_local and not listed & set(parts):
        location.makedirs(staged)
        for name in listed - set(absorbed):
            if not location.exists(f"{staged}/{name}"):
                location.link(f"{table}/{name}", f"{staged}/{name}")
        if location.exchange(table, staged):
            return
    staged_names = {e.name for e in location.listdir(staged)}
    for name in parts:
        if name in staged_names:
            location.move(f"{staged}/{name}", f"{table}/{name}")
    for name in absorbed:
        if name in listed:
            location.delete_file(f"{table}/{name}")


def recover_compactions(location: Location) -> int:
    """Finish interrupted compactions that reached their plan, delete the others' staging
    (and index); returns how many were finished. Call only while holding the campaign."""
    finished = 0
    for entry in location.listdir(COMPACT):
        run = entry.name
        if location.exists(f"{COMPACT}/{run}/{PLAN}"):
            finish(location, run)
            finished += 1
        else:
            location.delete_dir(f"{COMPACT}/{run}")
            location.delete_file(f"{INDEX}/{run}.json")
    return finished
