"""The Parquet store of one campaign: manifest, atomic per-cell commits, live measurements.

Layout (results_schema/README.md): `cells/`, `measurements/`, `predictions/`, `kernels/`
hold one file `<cell_id>.parquet` per finished cell, so re-running a cell replaces its
files instead of duplicating rows. A commit is atomic for readers: on a local disk the
files are staged under `_pending/` and renamed into place, `cells` last; on an object
store each object is written once at its final key, the cells record last, and readers
count a cell's rows only once its record says done (pipeline/store/commits.py).

`recover()` (run by the driver that holds the campaign) finishes or discards what a
killed driver's commits left, so a crash at any point leaves each cell either as it was
before or fully committed. Names starting with `_` or `.` are skipped by pandas, pyarrow
and duckdb readers, so pending and live files are invisible.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

import results_schema as rs
from pipeline.store import commits
from pipeline.store.commits import COMMIT, PENDING
from pipeline.store.compaction import recover_compactions
from pipeline.store.kill_points import kill_point
from pipeline.store.location import TEMP_SUFFIX, Entry, Location
from pipeline.store.names import CELL_TABLES, MANIFEST_FILE
from pipeline.store.reading import VERIFIED_PARQUET, read_readable_files

LIVE = "_live"
__all__ = ["COMMIT", "LIVE", "PENDING", "CampaignLockedError", "CampaignNotFoundError"]
LIVE_STALE_SECONDS = 60.0  # a live attempt unseen for longer is not "running"


class CampaignNotFoundError(FileNotFoundError):
    """No campaign (manifest) at the given location."""


class CampaignLockedError(RuntimeError):
    """Another driver holds the campaign."""


@dataclass(frozen=True)
class LiveAttempt:
    """A running (or abandoned) attempt of a cell, as seen in `_live/`."""

    cell_id: str
    attempt_id: str
    last_seen: datetime | None

    def is_fresh(self, now: datetime, stale_seconds: float = LIVE_STALE_SECONDS) -> bool:
        return self.last_seen is not None and (now - self.last_seen).total_seconds() < stale_seconds


def _seen(attempt: LiveAttempt) -> datetime:
    return attempt.last_seen or datetime.min.replace(tzinfo=UTC)


class ParquetStore:
    """One campaign directory; see the module docstring for the layout and commit protocol."""

    def __init__(self, location: Location):
        self.location = location

    @classmethod
    def open(cls, uri: str, create: bool = False) -> ParquetStore:
        """The campaign at `uri`; with create=False it must already hold a manifest."""
        store = cls(Location.open(uri))
        if create:
            for table in CELL_TABLES:
                store.location.makedirs(table)
        elif not store.location.exists(MANIFEST_FILE):
            raise CampaignNotFoundError(
                f"no campaign at {uri} (no {MANIFEST_FILE}); start one "
                f"with `phasegrid run SPEC.toml --store DIR`"
            )
        return store

    @property
    def uri(self) -> str:
        return self.location.uri

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the campaign for one driver. Local stores use a file lock (released by the OS
        even if the driver is SIGKILLed); object stores have no lock: one driver per campaign
        is the rule there."""
        if not self.location.is_local:
            yield
            return
        import filelock

        lock = filelock.FileLock(self.location.path(".lock"), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise CampaignLockedError(
                f"campaign {self.uri} is in use by another phasegrid driver (lock "
                f"{lock.lock_file}); wait for it to finish, or watch it with "
                f"`phasegrid status {self.uri}`"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def driver_active(self) -> bool | None:
        """Whether a driver holds the campaign now: known on local stores (the lock is
        tried and released at once), None on object stores (judge by live heartbeats)."""
        if not self.location.is_local:
            return None
        try:
            with self.lock():
                return False
        except CampaignLockedError:
            return True
        except OSError:  # e.g. a read-only copy of a campaign
            return None

    # spec and manifest ---------------------------------------------------------------------
    def write_spec(self, spec: dict, toml_text: str) -> None:
        self.location.write_bytes("spec.json", json.dumps(spec, indent=2, default=str).encode())
        self.location.write_bytes("spec.toml", toml_text.encode())

    def archive_spec(self) -> str:
        """Keep the stored spec (JSON and TOML) under settings_groups/ before a run with
        other settings replaces it (`run --add-settings-group`); returns the folder."""
        folder = f"settings_groups/{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
        for name in ("spec.json", "spec.toml"):
            if self.location.exists(name):
                self.location.write_bytes(f"{folder}/{name}", self.location.read_bytes(name))
        return folder

    def stored_spec_or_none(self) -> dict | None:
        """The stored resolved spec, or None when the campaign has none yet."""
        if not self.location.exists("spec.json"):
            return None
        return self.read_spec()

    def read_spec(self) -> dict:
        return json.loads(self.location.read_bytes("spec.json"))

    def read_spec_toml(self) -> str:
        return self.location.read_bytes("spec.toml").decode()

    def manifest(self) -> pa.Table:
        if not self.location.exists(MANIFEST_FILE):
            return rs.MANIFEST.empty_table()
        return self.location.read_parquet(MANIFEST_FILE).cast(rs.MANIFEST)

    def manifest_columns(self, columns: list[str], filter: pc.Expression | None = None) -> pa.Table:
        """Only `columns` (and rows matching `filter`) of the manifest (its `config` JSON
        is most of its bytes)."""
        if not self.location.exists(MANIFEST_FILE):
            return rs.MANIFEST.empty_table().select(columns)
        path = self.location.path(MANIFEST_FILE)
        return pads.dataset(
            path, filesystem=self.location.fs, format=VERIFIED_PARQUET, schema=rs.MANIFEST
        ).to_table(columns=columns, filter=filter)

    def extend_manifest(self, rows: pa.Table) -> int:
        """Add the manifest rows whose cell_id is new (atomic rewrite); returns how many.
        With nothing new, only the manifest's cell ids are read."""
        known = self.manifest_columns(["cell_id"])["cell_id"]
        new = rows.filter(pc.invert(pc.is_in(rows["cell_id"], known)))
        if new.num_rows or not self.location.exists(MANIFEST_FILE):
            table = pa.concat_tables([self.manifest(), new])
            rs.validate("manifest", table)
            self.location.write_parquet(MANIFEST_FILE, table)
        return new.num_rows

    # tables ------------------------------------------------------------------------------
    def dataset(self, table: str) -> pads.Dataset:
        """The table directory as a pyarrow dataset with its unified schema (files written
        before a column was added read it as null instead of dropping it)."""
        return pads.dataset(
            self.location.path(table),
            filesystem=self.location.fs,
            format=VERIFIED_PARQUET,
            schema=rs.schema_of(table),
        )

    def read_table(
        self, table: str, columns: list[str] | None = None, filter: pc.Expression | None = None
    ) -> pa.Table:
        """The table's rows (only `columns`, only rows matching `filter`: pushed down to
        the files, whose row groups are skipped where their statistics exclude it). An
        unreadable file never crashes the reader: it is skipped with a
        `CorruptFileWarning` naming it (`resume` quarantines it and re-runs its cell)."""
        if not self.location.exists(table):
            empty = rs.schema_of(table).empty_table()
            return (empty.filter(filter) if filter is not None else empty).select(
                columns or empty.column_names
            )
        try:
            return self.dataset(table).to_table(columns=columns, filter=filter)
        except (pa.ArrowException, OSError):
            return read_readable_files(self.location, table, columns, filter)

    def cell_states(self) -> dict[str, tuple[str, int]]:
        """cell_id -> (status, attempts) of every cell with a cells record."""
        table = self.read_table("cells", ["cell_id", "status", "attempts"]).to_pydict()
        return {c: (s, a) for c, s, a in zip(table["cell_id"], table["status"], table["attempts"])}

    # commits -----------------------------------------------------------------------------
    def commit(self, cell_id: str, tables: dict[str, pa.Table]) -> None:
        """Atomically replace every stored row of `cell_id` by `tables` (name -> Table; must
        include "cells"). Tables not given are deleted for this cell. Commits of different
        cells may run at once (the driver's commit pool); one cell's commits must not."""
        commits.check_tables(tables)
        if self.location.is_local:
            commits.commit_local(self.location, cell_id, tables)
        else:
            commits.commit_objects(self.location, cell_id, tables)
        kill_point("committed")

    def write_pending(self, cell_id: str, tables: dict[str, pa.Table]) -> None:
        """Step 1 of a local commit: the cell's files under _pending/<cell_id>/, no marker yet."""
        commits.write_pending(self.location, cell_id, tables)

    def finish_pending(self, cell_id: str) -> None:
        """Steps 3-4 of a local commit whose COMMIT marker exists (idempotent)."""
        commits.finish_pending(self.location, cell_id)

    def recover(self) -> tuple[int, int]:
        """Finish committed pending cells, discard uncommitted ones (object stores: the data
        objects of cells that were in flight and are not done) and stray temp files. Call
        only while holding the campaign, before the live attempts are deleted. Returns
        (finished, discarded)."""
        finished, discarded = commits.recover_pending(self.location)
        if not self.location.is_local:
            in_flight = {attempt.cell_id for attempt in self.live_attempts()}
            discarded += commits.recover_objects(self.location, in_flight)
        finished += recover_compactions(self.location)
        for folder in ("", *CELL_TABLES):
            for entry in self.location.listdir(folder):
                if entry.name.endswith(TEMP_SUFFIX):
                    self.location.delete_file(f"{folder}/{entry.name}".lstrip("/"))
        return finished, discarded

    # live measurements -------------------------------------------------------------------
    def live_dir(self, cell_id: str, attempt_id: str) -> str:
        return f"{LIVE}/{cell_id}/{attempt_id}"

    def start_attempt(self, cell_id: str, attempt_id: str, info: dict) -> None:
        """Make the attempt visible as running; replaces any earlier attempt's live rows."""
        self.delete_live(cell_id)
        self.location.write_bytes(
            f"{self.live_dir(cell_id, attempt_id)}/_attempt.json",
            json.dumps(info, default=str).encode(),
        )
        kill_point("started")

    def heartbeat(self, cell_id: str, attempt_id: str) -> None:
        now = datetime.now(UTC).isoformat()
        self.location.write_bytes(f"{self.live_dir(cell_id, attempt_id)}/_heartbeat", now.encode())

    def write_live_part(self, cell_id: str, attempt_id: str, index: int, table: pa.Table) -> None:
        rs.validate("measurements", table)
        self.location.write_parquet(
            f"{self.live_dir(cell_id, attempt_id)}/part-{index:05d}.parquet", table
        )
        kill_point("live")

    def delete_live(self, cell_id: str | None = None) -> None:
        """Delete the live rows of one cell, or of every cell (stale ones on resume)."""
        self.location.delete_dir(f"{LIVE}/{cell_id}" if cell_id else LIVE)

    def live_attempts(self, listed: list[Entry] | None = None) -> list[LiveAttempt]:
        """Every attempt in _live/, with the newest modification time of its files
        (`listed`: the files under _live/ as already listed, e.g. by a `Listing`)."""
        attempts: dict[tuple[str, str], datetime | None] = {}
        for entry in self.location.files_under(LIVE) if listed is None else listed:
            parts = entry.name.split("/")
            if len(parts) != 3:
                continue
            key, last = (parts[0], parts[1]), attempts.get((parts[0], parts[1]))
            attempts[key] = max(filter(None, (last, entry.mtime)), default=None)
        return [LiveAttempt(c, a, t) for (c, a), t in sorted(attempts.items())]

    def read_live(self, cell_id: str | None = None) -> pa.Table:
        """Live measurement rows of the latest attempt of each (or one) running cell, with an
        extra `attempt_id` column."""
        latest: dict[str, LiveAttempt] = {}
        for attempt in self.live_attempts():
            best = latest.get(attempt.cell_id)
            if best is None or _seen(attempt) > _seen(best):
                latest[attempt.cell_id] = attempt
        parts = []
        for attempt in latest.values():
            if cell_id is None or attempt.cell_id == cell_id:
                path = self.live_dir(attempt.cell_id, attempt.attempt_id)
                part = pads.dataset(
                    self.location.path(path),
                    filesystem=self.location.fs,
                    format="parquet",
                    schema=rs.MEASUREMENTS,
                ).to_table()
                parts.append(
                    part.append_column(
                        "attempt_id", pa.array([attempt.attempt_id] * len(part), pa.string())
                    )
                )
        if not parts:
            empty = rs.MEASUREMENTS.empty_table()
            return empty.append_column("attempt_id", pa.array([], pa.string()))
        return pa.concat_tables(parts)
