"""A driver's take-over reads in full only the files new or changed since they were last
verified (pipeline/store/verified.py); `resume --deep` reads every file."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.drivers.run import resume_campaign
from pipeline.execute.local import LocalExecutor
from pipeline.store.verified import REGISTRY
from support.store_campaigns import TABLES, run_local

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def zero_a_page_keeping_size_and_time(path: Path) -> None:
    """Damage a page (its CRC fails) and put the file's size and mtime back: a change a
    listing cannot see (bit rot)."""
    stat = path.stat()
    data = path.read_bytes()
    middle = len(data) // 3
    path.write_bytes(data[:middle] + bytes(64) + data[middle + 64 :])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    with pytest.raises(OSError, match="CRC"):
        pq.read_table(path, page_checksum_verification=True)


def test_take_over_reads_only_new_files_and_deep_reads_all(tmp_path, stripe_spec):
    spec = stripe_spec(name="verified", grid={"seed": [0, 1]}, flow={"max_steps": 100})
    campaign = Path(run_local(spec, tmp_path / "results").campaign)  # 8 cells, compacted
    registry = set(pq.read_table(campaign / REGISTRY).column("path").to_pylist())
    parts = {f"{t}/{p.name}" for t in TABLES for p in (campaign / t).glob("*.parquet")}
    assert len(parts) == 4 and registry == parts  # its own parts in, absorbed files out

    target = next((campaign / "predictions").glob("*.parquet"))
    zero_a_page_keeping_size_and_time(target)
    quiet = resume_campaign(str(campaign), executor=LocalExecutor())
    assert quiet.quarantined == () and quiet.done == 0  # unchanged by its listing: not read
    deep = resume_campaign(str(campaign), executor=LocalExecutor(), deep=True)
    assert any(f"predictions/{target.name}" in q for q in deep.quarantined)
    assert deep.done == 8  # that part's cells (all 8: one part) ran again

    target = next((campaign / "kernels").glob("*.parquet"))
    target.write_bytes(target.read_bytes()[:-100])  # a listing sees this one changed
    changed = resume_campaign(str(campaign), executor=LocalExecutor())
    assert any(f"kernels/{target.name}" in q for q in changed.quarantined)
