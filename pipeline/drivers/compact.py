"""`phasegrid compact`: rewrite a campaign's per-cell files of done cells into a few large
sorted files (pipeline/store/compaction.py), as a driver that holds the campaign."""

from __future__ import annotations

from pipeline.drivers.run import take_over
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.compaction import CompactReport, compact


def compact_campaign(campaign: str) -> CompactReport:
    """Take the campaign over (finish or discard interrupted commits and compactions,
    quarantine unreadable files), then compact it. Raises CampaignNotFoundError,
    CampaignLockedError (a driver is running: it compacts when it ends), CompactionError."""
    store = ParquetStore.open(campaign)
    with store.lock():
        take_over(store)
        return compact(store.location)
