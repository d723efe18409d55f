"""`run` and `resume`: from a spec (or a stored campaign) to committed cells in the store.

All resume state lives in the store (design.md §3): a cell is done when its cells record
says so, whatever happened to the driver or Ray before. A run
1. validates the spec (nothing is written if it is invalid),
2. takes the campaign's lock, finishes or discards interrupted commits (`recover`),
   deletes the live rows of attempts that died with an earlier driver, and quarantines
   unreadable files with their cells (pipeline/store/quarantine.py), which then run again,
3. adds the spec's new cells to the manifest, then stores the spec (a grown grid adds
   cells; a changed fixed setting is refused unless added as a settings group,
   drivers/settings.py); a spec already stored whose manifest cells are all done has
   nothing to do, found without building its cells (pipeline/drivers/run_plan.py),
4. runs on Ray every requested cell without a done record, committing each as it ends;
   a cell with a training-state snapshot (pipeline/store/snapshots.py) continues from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.drivers.heal import heal, readable_spec
from pipeline.drivers.preflight import check_run, cluster_preflight
from pipeline.drivers.run_plan import (
    CellRecords,
    describe_stalled,
    read_records,
    spec_done,
    stalled_of_spec,
)
from pipeline.drivers.settings import check_settings
from pipeline.drivers.sources import load_resolved_campaign_text
from pipeline.drivers.status import STALL_FIX
from pipeline.execute.progress import Progress
from pipeline.execute.scheduler import RayExecutor
from pipeline.execute.sink import StoreSink
from pipeline.execute.stream import Executor
from pipeline.spec.campaign import CampaignSpec
from pipeline.spec.schema import Resources
from pipeline.store import compaction, quarantine
from pipeline.store import snapshots as checkpoint
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.location import Location, join_uri
from pipeline.store.rows import manifest_table, spec_from_config
from tasks.specs import CellSpec

DEFAULT_STORE = "results"


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
    repaired: tuple[str, ...] = ()  # spec.json / manifest rebuilt (pipeline/drivers/heal.py)
    stalled: tuple[str, ...] = ()  # requested cells whose integrator stalled (not results)
    compacted: str = ""  # what the compaction at the end did (pipeline/store/compaction.py)

    def describe(self) -> str:
        ran = self.requested - self.already_done
        text = (
            f"{self.campaign}: {self.requested} cells ({self.added} new), "
            f"{self.already_done} already done, ran {ran}: {self.done} done, "
            f"{self.failed} failed, in {self.wall_seconds:.1f} s"
        )
        quarantined = (f"quarantined {q}" for q in self.quarantined)
        stalled = [f"{len(self.stalled)} cells stalled: {STALL_FIX}"] if self.stalled else []
        stalled += [f"stalled {cell}" for cell in self.stalled]
        compacted = [self.compacted] if self.compacted else []
        return "\n".join([text, *quarantined, *self.repaired, *stalled, *compacted])


def bundles_of(cells: list[CellSpec], bundle_size: int) -> list[list[CellSpec]]:
    """Groups of at most `bundle_size` cells, one task each: cells that can train as one
    batched ensemble together, in grid order (seed fastest, then α̃), the others alone
    (`tasks.bundling.plan_bundles`)."""
    from tasks.bundling import plan_bundles  # imports torch: seconds a run with nothing to do skips

    return plan_bundles(cells, bundle_size)


def _execute(
    store: ParquetStore,
    cells: list[CellSpec],
    resources: Resources,
    executor: Executor,
    progress: Progress | None,
    added: int,
    records: CellRecords | None = None,
) -> RunSummary:
    """Run the cells without a done record; the caller holds the lock. `records`: the
    cells table as read just before (read here if not given)."""
    start = time.monotonic()
    cells = list({c.cell_id: c for c in cells}.values())
    records = read_records(store) if records is None else records
    todo = [c for c in cells if records.states.get(c.cell_id, ("", 0))[0] != "done"]
    prior = {c: a for c, (_, a) in records.states.items()}
    with StoreSink(store, prior, len(todo), progress, resources.commit_concurrency) as sink:
        if todo:  # the sink's exit waits for every commit in flight, even on SIGTERM
            sink._report()
            executor.run(bundles_of(todo, resources.bundle_size), resources, sink)
    ran = {c.cell_id for c in todo}
    stalled = describe_stalled(records, {c.cell_id for c in cells} - ran)
    if ran:  # only the records of the cells that ran are read again (every commit drained)
        stalled += describe_stalled(read_records(store, sorted(ran)), ran)
    return RunSummary(
        store.uri,
        len(cells),
        added,
        len(cells) - len(todo),
        sink.done,
        sink.failed,
        time.monotonic() - start,
        stalled=stalled,
        compacted=_compact_if(store, resources.compact_when_done and sink.done == len(todo)),
    )


def _compact_if(store: ParquetStore, wanted: bool) -> str:
    """Compact the store when `wanted` (every requested cell is done and the spec's
    [resources] compact_when_done is on); returns what happened, for the summary. A
    compaction that cannot read a file changes nothing and says so (the run still stands)."""
    if not wanted:
        return ""
    try:
        report = compaction.compact(store.location)
    except compaction.CompactionError as error:
        return f"not compacted: {error}"
    return report.describe() if report.run else ""


def take_over(store: ParquetStore, deep: bool = False) -> tuple[str, ...]:
    """Clean up after any earlier driver: finish or discard its commits and compactions,
    drop live rows and stale snapshots; quarantine unreadable files with their cells (files
    new or changed since last verified are read in full; every file with `deep`). Returns
    the quarantined files as "from -> to (why)"."""
    store.recover()
    store.delete_live()
    moved = quarantine.take_over(store, deep)
    checkpoint.clean_up(store)
    return tuple(f"{m['from']} -> {m['to']} ({m['reason']})" for m in moved)


def run_campaign(
    spec_path: str | Path,
    store: str = DEFAULT_STORE,
    address: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run the campaign of `spec_path` into `<store>/<name>`; cells already done are skipped.
    Raises SpecError, InfeasibleRunError or SettingsChangedError (writing nothing) for an
    invalid spec, a failed pre-flight or changed fixed settings, CampaignLockedError if
    another driver holds the campaign. One Ray session, opened at the first cell to run."""
    spec, toml_text = load_resolved_campaign_text(spec_path)
    campaign = join_uri(store, spec.name)
    check_run(spec.observables.device, spec.resources, campaign, address)
    check_settings(
        ParquetStore(Location.open(campaign)).stored_spec_or_none(), spec, campaign, False
    )
    with RayExecutor(address) as executor:
        cluster_preflight(executor, spec.resources)
        return run_spec(spec, toml_text, store, executor, progress)


def run_spec(
    spec: CampaignSpec,
    toml_text: str,
    store: str,
    executor: Executor,
    progress: Progress | None = None,
) -> RunSummary:
    """Run the loaded campaign `spec` (whose TOML is `toml_text`) into `<store>/<name>`
    with `executor` (RayExecutor, or LocalExecutor in process)."""
    campaign = ParquetStore.open(join_uri(store, spec.name), create=True)
    with campaign.lock():
        moved = take_over(campaign)
        records = read_records(campaign)
        if spec_done(campaign, spec, records):
            summary = _all_done(campaign, spec, records, time.monotonic())
            campaign.write_spec(spec.to_dict(), toml_text)  # the same spec: its TOML text
            return replace(summary, quarantined=moved)
        cells = spec.cells()
        known = set(campaign.manifest_columns(["cell_id"])["cell_id"].to_pylist())
        added = campaign.extend_manifest(
            manifest_table([c for c in cells if c.cell_id not in known])
        )
        campaign.write_spec(spec.to_dict(), toml_text)  # after the manifest: see run_plan.py
        summary = _execute(campaign, cells, spec.resources, executor, progress, added, records)
        return replace(summary, quarantined=moved)


def _all_done(
    store: ParquetStore, spec: CampaignSpec, records: CellRecords, start: float
) -> RunSummary:
    """The summary of a run with nothing to do (run_plan.spec_done), without building
    the spec's cells."""
    n = spec.n_cells
    return RunSummary(
        store.uri,
        n,
        0,
        n,
        0,
        0,
        time.monotonic() - start,
        stalled=stalled_of_spec(records, spec),
        compacted=_compact_if(store, spec.resources.compact_when_done),
    )


def resume_campaign(
    campaign_uri: str,
    address: str | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
    deep: bool = False,
) -> RunSummary:
    """Re-run every cell of the campaign's manifest that is not done (failed, interrupted
    or never started), with the resources of the stored spec (on Ray at `address` unless
    an `executor` is given). A damaged spec.json or manifest is rebuilt first
    (pipeline/drivers/heal.py) and the repair reported in the summary. `deep`: read every
    file in full for damage first, not only the files new or changed since last verified."""
    if executor is None:
        spec = readable_spec(ParquetStore.open(campaign_uri))
        check_run(spec.observables.device, spec.resources, campaign_uri, address)
        with RayExecutor(address) as ray_executor:
            cluster_preflight(ray_executor, spec.resources)
            return resume_campaign(campaign_uri, address, progress, ray_executor, deep)
    campaign = ParquetStore.open(campaign_uri)
    with campaign.lock():
        moved = take_over(campaign, deep)
        spec, repairs = heal(campaign)
        ids = campaign.manifest_columns(["cell_id"])["cell_id"].to_pylist()
        records = read_records(campaign)
        cells = _not_done_cells(campaign, set(ids) - records.done())
        summary = _execute(campaign, cells, spec.resources, executor, progress, 0, records)
        requested = len(set(ids))
        return replace(
            summary,
            requested=requested,
            already_done=requested - len(cells),
            quarantined=moved,
            repaired=repairs,
        )


def _not_done_cells(store: ParquetStore, ids: set[str]) -> list[CellSpec]:
    """The CellSpecs of the manifest cells `ids` (only their configs are parsed: resume
    planning costs the cells that are left, not the campaign)."""
    if not ids:
        return []
    rows = store.manifest_columns(["cell_id", "config"]).to_pydict()
    return [spec_from_config(c) for i, c in zip(rows["cell_id"], rows["config"]) if i in ids]


def run_cells(
    campaign_uri: str,
    cells: list[CellSpec],
    resources: Resources,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Add `cells` to an existing campaign's manifest and run those not done (for drivers
    such as `refine` that choose cells themselves), with `executor` (default: embedded Ray)."""
    if executor is None:
        with RayExecutor() as ray_executor:
            return run_cells(campaign_uri, cells, resources, ray_executor, progress)
    campaign = ParquetStore.open(campaign_uri)
    with campaign.lock():
        moved = take_over(campaign)
        added = campaign.extend_manifest(manifest_table(cells))
        return replace(
            _execute(campaign, cells, resources, executor, progress, added), quarantined=moved
        )
