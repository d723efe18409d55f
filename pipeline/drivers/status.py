"""`phasegrid status`: how far a campaign is, read from the store alone.

done / failed: cells records; running: cells whose live attempt was touched within
LIVE_STALE_SECONDS (the driver refreshes a heartbeat while a cell runs) while a driver
holds the campaign (on local stores the lock tells; a dead driver's cells are not
running); pending: the rest of the manifest (never started, or interrupted). A cell with an
unreadable file (pipeline/store/quarantine.py) is not done: it is pending, its file listed in
`corrupt` (the next `resume` quarantines it and runs the cell again). Done cells are
also counted by stop reason (fitted, max_steps, nan, ...), so a diverged cell shows, and
stalled cells (the integrator stopped moving) are listed with the fix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

import results_schema as rs
from pipeline.drivers.heal import spec_json_problem
from pipeline.store.campaign_store import LIVE, LIVE_STALE_SECONDS, ParquetStore
from pipeline.store.listing import Listing
from pipeline.store.names import MANIFEST_FILE
from pipeline.store.quarantine import CorruptFile, CorruptFileWarning, find_corrupt, unverified

FAILURE_COLUMNS = [
    "cell_id",
    "width",
    "alpha_tilde",
    "train_size",
    "seed",
    "attempts",
    "first_error_line",
]
STALLED_COLUMNS = [
    "cell_id",
    "width",
    "alpha_tilde",
    "train_size",
    "seed",
    "integrator",
    "steps",
    "flow_time",
]
STALL_FIX = (
    "stalled cells are not results (left out of ensembles and boundaries): their "
    'integrator stopped moving. Fix: [flow] integrator = "euler-heun" (the default; '
    '"paper" stalls on relu and hinge kinks), or a smaller max_local_error; then '
    "`phasegrid run` the spec again (new cell ids)"
)


@dataclass(frozen=True)
class CampaignStatus:
    campaign: str
    total: int
    done: int
    failed: int
    running: int
    pending: int
    failures: pd.DataFrame = field(repr=False)  # FAILURE_COLUMNS
    running_cells: tuple[str, ...] = ()
    stop_reasons: dict[str, int] = field(default_factory=dict)  # done cells per stop reason
    corrupt: tuple[CorruptFile, ...] = ()  # unreadable files
    stalled: pd.DataFrame | None = field(default=None, repr=False)  # STALLED_COLUMNS
    spec_problem: str | None = None  # spec.json unreadable (`resume` rebuilds it)


def first_error_line(error: str | None) -> str:
    """The line of a traceback that says what went wrong: its last non-empty line."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _manifest_ids(
    listing: Listing, corrupt: tuple[CorruptFile, ...]
) -> tuple[set[str], tuple[CorruptFile, ...]]:
    """(the manifest's cell ids, the manifest as a corrupt file if it does not read)."""
    if any(c.table == "manifest" for c in corrupt) or not listing.exists(MANIFEST_FILE):
        return set(), ()
    ids, why = listing.read_ids(MANIFEST_FILE, rs.MANIFEST)
    return ids, (CorruptFile(MANIFEST_FILE, "manifest", None, why),) if why else ()


def campaign_status(campaign: str, stale_seconds: float = LIVE_STALE_SECONDS) -> CampaignStatus:
    """Counts of the campaign at `campaign` and its failed cells. Reads only."""
    store = ParquetStore.open(campaign)
    listing = Listing.of(store.location)  # every read below is answered from it
    corrupt = tuple(find_corrupt(store, candidates=unverified(store.location, listing)))
    manifest, problem = _manifest_ids(listing, corrupt)
    corrupt += problem
    bad_cells = {cell for c in corrupt for cell in c.cells}
    with warnings.catch_warnings():  # the unreadable files are reported in `corrupt`
        warnings.simplefilter("ignore", CorruptFileWarning)
        cells = listing.read_table(
            "cells",
            [
                "cell_id",
                "width",
                "alpha_tilde",
                "train_size",
                "seed",
                "attempts",
                "status",
                "error",
                "stop_reason",
                "integrator",
                "steps",
                "flow_time",
            ],
        ).to_pandas()
    cells = cells.loc[~cells.cell_id.isin(bad_cells)]
    done = set(cells.loc[cells.status == "done", "cell_id"])
    reasons = cells.loc[cells.status == "done", "stop_reason"].fillna("?").value_counts()
    failed_rows = cells.loc[cells.status == "failed"].copy()
    now = datetime.now(UTC)
    attempts = [] if store.driver_active() is False else store.live_attempts(listing.under(LIVE))
    running = {a.cell_id for a in attempts if a.is_fresh(now, stale_seconds)} - done
    failed = set(failed_rows.cell_id) - running
    failed_rows["first_error_line"] = failed_rows["error"].map(first_error_line)
    failures = failed_rows.loc[failed_rows.cell_id.isin(failed), FAILURE_COLUMNS]
    stalled = cells.loc[
        (cells.status == "done") & (cells.stop_reason == "stalled"), STALLED_COLUMNS
    ]
    total = len(manifest | done | failed | bad_cells)
    return CampaignStatus(
        campaign,
        total,
        len(done),
        len(failed),
        len(running),
        total - len(done) - len(failed) - len(running),
        failures.reset_index(drop=True),
        tuple(sorted(running)),
        dict(sorted(reasons.items())),
        corrupt,
        stalled.reset_index(drop=True),
        spec_json_problem(store),
    )
