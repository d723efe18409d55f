"""Corrupt files of a campaign: found, reported with their path, moved aside, cells re-run.

A Parquet file of the store that cannot be read (truncated, garbage, a page that does not
decode, a schema that is not its table's) never crashes a reader and never vanishes
silently:
- readers (`ParquetStore.read_table`, hence `load_results` and `status`) skip it with a
  `CorruptFileWarning` that names it;
- `phasegrid status` lists it (`find_corrupt`: footers and schemas, cheap) and does not
  count its cell as done;
- every driver that takes the campaign over (`run`, `resume`, `refine`) reads in full
  every file new or changed since it was last read in full (pipeline/store/verified.py;
  every file with `resume --deep`) and moves each bad one *with every other file of its cell* to
  `_quarantine/<when>/<table>/` (readers skip names starting with `_`), `report.json`
  saying why; the cell then has no record and is run again.

A quarantine is journalled: `plan.json` is written first, then the files move (each
cell's `cells` file first, so a cell is never "done" with rows missing), then
`report.json`. A driver killed half-way leaves the plan, which the next take-over
finishes (`finish_interrupted`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

import results_schema as rs
from pipeline.store import verified
from pipeline.store.compaction import parse_part, part_cells
from pipeline.store.kill_points import kill_point
from pipeline.store.listing import Listing
from pipeline.store.location import Entry, Location
from pipeline.store.names import AGGREGATES, MANIFEST_FILE, PER_CELL, QUARANTINE
from pipeline.store.reading import CorruptFileWarning as CorruptFileWarning
from pipeline.store.reading import visible_parquet

if TYPE_CHECKING:
    from pipeline.store.campaign_store import ParquetStore

PLAN, REPORT = "plan.json", "report.json"
MANIFEST = MANIFEST_FILE
READ_THREADS = 8  # file checks are I/O bound (object stores: one request each)


@dataclass(frozen=True)
class CorruptFile:
    """One unreadable file. `path` is relative to the campaign root."""

    path: str
    table: str  # cells, measurements, ..., ensembles, boundaries, manifest
    cell_id: str | None  # the cell whose file it is (per-cell tables)
    error: str
    part_cells: tuple[str, ...] = ()  # the cells of a compacted part (pipeline/store/compaction.py)

    @property
    def cells(self) -> tuple[str, ...]:
        """Every cell with rows in this file."""
        return (self.cell_id,) if self.cell_id else self.part_cells

    def describe(self, campaign: str) -> str:
        return f"{campaign}/{self.path}: {self.error}"


def file_problem(location: Location, rel: str, schema: pa.Schema, deep: bool) -> str | None:
    """Why the Parquet file `rel` is unreadable as a file of `schema`, or None. Reads the
    footer (truncated or garbage files fail there); with `deep`, every page too."""
    try:
        if deep:
            found = location.read_parquet(rel).schema
        else:
            found = pq.read_schema(location.path(rel), filesystem=location.fs)
    except (pa.ArrowException, OSError) as error:
        return f"{type(error).__name__}: {error}"
    for field in found:
        if field.name not in schema.names or not field.type.equals(schema.field(field.name).type):
            return (
                f"not a file of this table: column {field.name!r} ({field.type}) is not "
                f"in its schema"
            )
    return None


Candidate = tuple[str, str, str | None, Entry]  # rel path, table, cell_id, listing entry


def _candidates(location: Location, listing: Listing | None = None) -> list[Candidate]:
    """(rel path, table, cell_id, entry) of every file the tables and manifest consist of
    (cell_id None for aggregates and compacted parts), from `listing` if given (else one
    listing per table)."""
    files: list[Candidate] = []
    listdir = location.listdir if listing is None else listing.children
    for entry in listdir(""):
        if entry.name == MANIFEST and not entry.is_dir:
            files.append((MANIFEST, "manifest", None, entry))
    for table in PER_CELL + AGGREGATES:
        for entry in listdir(table):
            if not entry.is_dir and visible_parquet(entry.name):
                per_cell = table in PER_CELL and parse_part(entry.name) is None
                cell = entry.name.removesuffix(".parquet") if per_cell else None
                files.append((f"{table}/{entry.name}", table, cell, entry))
    return files


def find_corrupt(
    store: ParquetStore,
    deep: bool = False,
    candidates: list[Candidate] | None = None,
    tables: Collection[str] | None = None,
) -> list[CorruptFile]:
    """Every unreadable file of the campaign's tables and manifest (see `file_problem`),
    among `candidates` (default: every file; only those of `tables` if given)."""
    location = store.location
    if candidates is None:
        candidates = [c for c in _candidates(location) if tables is None or c[1] in tables]

    def check(item: Candidate) -> CorruptFile | None:
        rel, table, cell, _ = item
        problem = file_problem(location, rel, rs.schema_of(table), deep)
        if problem is None:
            return None
        part = part_cells(location, rel.rsplit("/", 1)[-1]) if table in PER_CELL else ()
        return CorruptFile(rel, table, cell, problem, part)

    with ThreadPoolExecutor(READ_THREADS) as pool:
        found = pool.map(check, candidates)
        return [c for c in found if c is not None]


def quarantine(store: ParquetStore, corrupt: list[CorruptFile]) -> list[dict]:
    """Move every corrupt file, and all files of the cells they belong to, to
    `_quarantine/<when>/`; returns the report's entries ({from, to, reason}). Call only
    while holding the campaign."""
    if not corrupt:
        return []
    when = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    entries = []
    for name, reason in _cell_files(corrupt, store.uri):
        for table in PER_CELL:  # cells first: the cell stops being done first
            rel = f"{table}/{name}"
            if store.location.exists(rel):
                entries.append({"from": rel, "to": f"{QUARANTINE}/{when}/{rel}", "reason": reason})
    for bad in (c for c in corrupt if c.table not in PER_CELL):
        entries.append(
            {
                "from": bad.path,
                "to": f"{QUARANTINE}/{when}/{bad.path}",
                "reason": bad.describe(store.uri),
            }
        )
    store.location.write_bytes(f"{QUARANTINE}/{when}/{PLAN}", json.dumps(entries).encode())
    _carry_out(store.location, f"{QUARANTINE}/{when}", entries)
    return entries


def _cell_files(corrupt: list[CorruptFile], campaign: str) -> list[tuple[str, str]]:
    """(file name, reason) of every file, in each per-cell table, that holds rows of a cell
    of a corrupt file: the cell's own file, or the same compacted part (which holds the same
    cells in every table)."""
    reasons: dict[str, list[str]] = {}
    for bad in corrupt:
        if bad.table in PER_CELL:
            name = bad.path.rsplit("/", 1)[-1]
            reasons.setdefault(name, []).append(bad.describe(campaign))
    return [(name, "; ".join(why)) for name, why in sorted(reasons.items())]


def _carry_out(location: Location, folder: str, entries: list[dict]) -> None:
    """The moves of a plan (those already done are skipped), then its report."""
    for entry in entries:
        if location.exists(entry["from"]):
            location.makedirs(entry["to"].rsplit("/", 1)[0])
            location.move(entry["from"], entry["to"])
            kill_point("quarantine")
    location.write_bytes(f"{folder}/{REPORT}", json.dumps(entries, indent=1).encode())


def finish_interrupted(store: ParquetStore) -> int:
    """Finish the quarantines a killed driver left half done; returns how many."""
    finished = 0
    for entry in store.location.listdir(QUARANTINE):
        folder = f"{QUARANTINE}/{entry.name}"
        if (
            entry.is_dir
            and store.location.exists(f"{folder}/{PLAN}")
            and not store.location.exists(f"{folder}/{REPORT}")
        ):
            plan = json.loads(store.location.read_bytes(f"{folder}/{PLAN}"))
            _carry_out(store.location, folder, plan)
            finished += 1
    return finished


def unverified(location: Location, listing: Listing) -> list[Candidate]:
    """The files of the tables and manifest that are new or changed since they were last
    read in full (pipeline/store/verified.py): what `status` checks the footers of."""
    known = verified.read_registry(location, listing)
    return [
        c for c in _candidates(location, listing) if known.get(c[0]) != verified.signature(c[3])
    ]


def take_over(store: ParquetStore, deep: bool = False) -> list[dict]:
    """What a driver does on taking the campaign over: finish interrupted quarantines,
    then read in full every file that is new or changed since it was last verified (every
    file with `deep`; pipeline/store/verified.py) and quarantine the unreadable ones (with
    their cells). The files that read are recorded as verified."""
    finish_interrupted(store)
    location = store.location
    known = {} if deep else verified.read_registry(location)
    files = _candidates(location)
    unchecked = [f for f in files if known.get(f[0]) != verified.signature(f[3])]
    corrupt = find_corrupt(store, deep=True, candidates=unchecked)
    moved = quarantine(store, corrupt)
    gone = {c.path for c in corrupt} | {m["from"] for m in moved}
    verified.write_registry(location, {f[0]: f[3] for f in files if f[0] not in gone})
    return moved


def corrupt_report(corrupt: list[CorruptFile]) -> list[dict]:
    """The corrupt files as plain dicts (for JSON or a table)."""
    return [asdict(c) for c in corrupt]
