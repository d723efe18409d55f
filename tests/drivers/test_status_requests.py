"""`status` on an object store (issue 16 and 17): one listing, the footers of files not
verified yet, the cells parts and the manifest — at most 20 requests on a compacted
campaign, counted server side on a local S3 (moto on loopback)."""

from __future__ import annotations

import pytest

from pipeline.drivers.status import campaign_status
from pipeline.store import compaction

pytest.importorskip("moto.server", reason="moto[server] is not installed")
pytest.importorskip("boto3", reason="boto3 is not installed")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow  # ~14 s here under load 8: a cell trained, 200 cells written through moto
def test_status_of_a_compacted_campaign_on_s3_takes_at_most_20_requests(tmp_path, monkeypatch):
    from benchmarks.s3_requests import CountingS3
    from benchmarks.store_synthesis import synthesize

    # 200 cells in parts of 64: four parts per table, as 10⁴ cells have three at 4,096
    monkeypatch.setattr(compaction, "CELLS_PER_PART", 64)
    with CountingS3() as s3:
        _, campaign, _ = synthesize(tmp_path, 200, store=s3.bucket("phase"))
        status, requests = s3.counted(lambda: campaign_status(campaign))
    assert (status.total, status.done, status.pending, status.corrupt) == (200, 200, 0, ())
    listings = [r for r in requests if "list-type" in r[2]]
    assert len(listings) == 1, listings  # the whole campaign, listed once
    assert len(requests) <= 20, "\n".join(map(str, requests))
