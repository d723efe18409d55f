"""`run` and `resume`: from a spec (or a stored campaign) to committed cells in the store.

All resume state lives in the store (design.md §3): a cell is done when its cells record
says so, whatever happened to the driver or Ray before. A run
1. validates the spec (nothing is written if it is invalid),
2. takes the campaign's lock, finishes or discards interrupted commits (`recover`),
   deletes the live rows of attempts that died with an earlier driver, and quarantines
   unreadable files with their cells (pipeline/quarantine.py), which then run again,
3. stores the spec and adds its new cells to the manifest (a grown grid adds cells; cells
   are identified by id, so a changed fixed setting also adds new ones),
4. runs on Ray every requested cell without a done record, committing each as it ends;
   a cell with a training-state snapshot (pipeline/checkpoint.py) continues from it.
"""

from __future__ import annotations

import functools
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

from pipeline.ray_setup import start_ray
from pipeline.rows import (
    Provenance,
    done_tables,
    failed_cell_table,
    manifest_table,
    measurements_table,
    spec_from_config,
    utc_now,
)
from pipeline import checkpoint, quarantine
from pipeline.scheduler import (
    AttemptFinished,
    AttemptStarted,
    MeasurementBatch,
    SnapshotTaken,
    run_bundles,
)
from pipeline.spec import load_campaign, parse_campaign
from pipeline.storage import join_uri
from pipeline.store import MANIFEST_FILE, CampaignNotFoundError, ParquetStore
from tasks.ensemble import plan_bundles
from tasks.specs import CellSpec

HEARTBEAT_SECONDS = 10.0  # live attempts are touched this often (status: "running")
DEFAULT_STORE = "results"


class Progress(Protocol):
    """Receives counts as cells start and end (pipeline/progress.py draws a rich bar)."""

    def update(self, done: int, failed: int, running: int, total: int) -> None: ...


@dataclass(frozen=True)
class RunSummary:
    """What one run/resume did. `done`/`failed` count the cells that ended in this run."""

    campaign: str
    requested: int  # cells the spec (or manifest) asks for
    added: int  # cells new to the manifest
    already_done: int  # skipped: done before this run
    done: int
    failed: int
    wall_seconds: float
    quarantined: tuple[str, ...] = ()  # unreadable files moved to _quarantine/ (with reasons)

    def describe(self) -> str:
        ran = self.requested - self.already_done
        text = (
            f"{self.campaign}: {self.requested} cells ({self.added} new), "
            f"{self.already_done} already done, ran {ran}: {self.done} done, "
            f"{self.failed} failed, in {self.wall_seconds:.1f} s"
        )
        return "\n".join([text, *(f"quarantined {q}" for q in self.quarantined)])


@functools.cache
def code_version() -> str:
    """The phasegrid version and `git describe` of its source, stored with every cell."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = f"phasegrid {version('phasegrid')}"
    except PackageNotFoundError:
        text = "phasegrid (not installed)"
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return f"{text} ({described})" if described else text
    except (OSError, subprocess.SubprocessError):
        return text


class StoreSink:
    """The scheduler's events, written to the store (pipeline.scheduler.CellSink)."""

    def __init__(
        self,
        store: ParquetStore,
        prior_attempts: dict[str, int],
        total: int,
        progress: Progress | None,
    ):
        self.store, self.prior, self.total, self.progress = store, prior_attempts, total, progress
        self.current: dict[str, AttemptStarted] = {}
        self.done = self.failed = 0
        self.last_beat = time.monotonic()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress.update(self.done, self.failed, len(self.current), self.total)

    def started(self, event: AttemptStarted, spec: CellSpec) -> None:
        self.current[event.cell_id] = event
        self.store.start_attempt(event.cell_id, event.attempt_id, asdict(event))
        self._report()

    def batch(self, event: MeasurementBatch, spec: CellSpec) -> None:
        current = self.current.get(event.cell_id)
        if current is None or current.attempt_id != event.attempt_id:
            return  # a batch of an attempt that is no longer the cell's current one
        self.store.write_live_part(
            event.cell_id,
            event.attempt_id,
            event.index,
            measurements_table(spec, list(event.measurements)),
        )

    def finished(self, event: AttemptFinished, spec: CellSpec, attempts: int) -> None:
        started = self.current.pop(event.cell_id, None)
        run = Provenance(
            event.attempt_id,
            self.prior.get(spec.cell_id, 0) + attempts,
            started.host if started else None,
            started.device if started else None,
            code_version(),
            started.started_at if started else None,
            event.finished_at,
        )
        error = event.error
        if error is None:
            try:
                tables = done_tables(spec, event.result, list(event.measurements), run)
            except Exception as err:  # a result that does not fit the schema: a failure
                error = f"storing the result failed: {type(err).__name__}: {err}"
        if error is not None:
            tables = {"cells": failed_cell_table(spec, error, run)}
        self.store.commit(spec.cell_id, tables)
        self.store.delete_live(spec.cell_id)
        checkpoint.delete_snapshot(self.store, spec.cell_id)
        self.done, self.failed = self.done + (error is None), self.failed + (error is not None)
        self._report()

    def lost(self, spec: CellSpec, error: str, attempts: int) -> None:
        started = self.current.pop(spec.cell_id, None)
        run = Provenance(
            started.attempt_id if started else "",
            self.prior.get(spec.cell_id, 0) + attempts,
            started.host if started else None,
            started.device if started else None,
            code_version(),
            started.started_at if started else None,
            utc_now(),
        )
        self.store.commit(spec.cell_id, {"cells": failed_cell_table(spec, error, run)})
        self.store.delete_live(spec.cell_id)
        self.failed += 1
        self._report()

    def snapshot(self, event: SnapshotTaken, spec: CellSpec) -> None:
        current = self.current.get(event.cell_id)
        if current is not None and current.attempt_id == event.attempt_id:
            checkpoint.save_snapshot(
                self.store, spec.cell_id, checkpoint.Snapshot(event.state, event.measurements)
            )

    def resume_points(self, specs: list[CellSpec]) -> dict[str, checkpoint.Snapshot]:
        """The stored snapshot of each cell that has one (kept when a cell is lost, so a
        later resume continues it too)."""
        found = {s.cell_id: checkpoint.load_snapshot(self.store, s.cell_id) for s in specs}
        return {cell: snapshot for cell, snapshot in found.items() if snapshot is not None}

    def tick(self) -> None:
        if time.monotonic() - self.last_beat < HEARTBEAT_SECONDS:
            return
        self.last_beat = time.monotonic()
        for event in self.current.values():
            self.store.heartbeat(event.cell_id, event.attempt_id)


def bundles_of(cells: list[CellSpec], bundle_size: int) -> list[list[CellSpec]]:
    """Groups of at most `bundle_size` cells, one task each: cells that can train as one
    batched ensemble together, in grid order (seed fastest, then α̃), the others alone
    (`tasks.ensemble.plan_bundles`)."""
    return plan_bundles(cells, bundle_size)


def _execute(
    store: ParquetStore,
    cells: list[CellSpec],
    resources,
    address: str | None,
    progress: Progress | None,
    added: int,
) -> RunSummary:
    """Run the cells without a done record; the caller holds the lock."""
    start = time.monotonic()
    cells = list({c.cell_id: c for c in cells}.values())
    states = store.cell_states()
    todo = [c for c in cells if states.get(c.cell_id, ("", 0))[0] != "done"]
    sink = StoreSink(store, {c: a for c, (_, a) in states.items()}, len(todo), progress)
    if todo:
        sink._report()
        session = start_ray(address)
        try:
            run_bundles(bundles_of(todo, resources.bundle_size), resources, sink)
        finally:
            session.close()
    return RunSummary(
        store.uri,
        len(cells),
        added,
        len(cells) - len(todo),
        sink.done,
        sink.failed,
        time.monotonic() - start,
    )


def _take_over(store: ParquetStore) -> tuple[str, ...]:
    """Clean up after any earlier driver: finish or discard its commits, drop live rows
    and stale snapshots; quarantine unreadable files with their cells. Returns the
    quarantined files as "from -> to (why)"."""
    store.recover()
    store.delete_live()
    moved = quarantine.take_over(store)
    checkpoint.clean_up(store)
    return tuple(f"{m['from']} -> {m['to']} ({m['reason']})" for m in moved)


def run_campaign(
    spec_path: str | Path,
    store: str = DEFAULT_STORE,
    address: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run the campaign of `spec_path` into `<store>/<name>`; cells already done are skipped.
    Raises SpecError (writing nothing) for an invalid spec, CampaignLockedError if another
    driver holds the campaign."""
    spec = load_campaign(spec_path)
    toml_text = Path(spec_path).read_text()
    campaign = ParquetStore.open(join_uri(store, spec.name), create=True)
    with campaign.lock():
        moved = _take_over(campaign)
        campaign.write_spec(spec.to_dict(), toml_text)
        cells = spec.cells()
        added = campaign.extend_manifest(manifest_table(cells))
        summary = _execute(campaign, cells, spec.resources, address, progress, added)
        return replace(summary, quarantined=moved)


def resume_campaign(
    campaign_uri: str, address: str | None = None, progress: Progress | None = None
) -> RunSummary:
    """Re-run every cell of the campaign's manifest that is not done (failed, interrupted
    or never started), with the resources of the stored spec."""
    campaign = ParquetStore.open(campaign_uri)
    with campaign.lock():
        moved = _take_over(campaign)
        if not campaign.location.exists(MANIFEST_FILE):
            raise CampaignNotFoundError(
                f"the manifest of {campaign_uri} was unreadable and is now in _quarantine/ "
                f"({'; '.join(moved)}); rebuild it with `phasegrid run {campaign_uri}/spec.toml "
                "--store <the campaign's parent directory>` (done cells are kept)"
            )
        spec = parse_campaign(campaign.read_spec(), f"{campaign_uri}/spec.json")
        cells = [spec_from_config(c) for c in campaign.manifest()["config"].to_pylist()]
        return replace(
            _execute(campaign, cells, spec.resources, address, progress, 0), quarantined=moved
        )


def run_cells(
    campaign_uri: str,
    cells: list[CellSpec],
    resources,
    address: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Add `cells` to an existing campaign's manifest and run those not done (for drivers
    such as `refine` that choose cells themselves)."""
    campaign = ParquetStore.open(campaign_uri)
    with campaign.lock():
        moved = _take_over(campaign)
        added = campaign.extend_manifest(manifest_table(cells))
        return replace(
            _execute(campaign, cells, resources, address, progress, added), quarantined=moved
        )
