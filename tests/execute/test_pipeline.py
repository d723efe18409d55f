"""Campaigns end to end in-process on one shared embedded Ray: skipping done cells, a grown
grid, a cell's exception, a killed worker retried as a new attempt with live rows
streamed meanwhile, and a store on an S3 server (moto) on loopback."""

from __future__ import annotations

import dataclasses
import os
import signal

import pandas as pd
import pytest

from pipeline import load_results
from pipeline.drivers.run import run_campaign, run_cells
from pipeline.drivers.status import campaign_status
from pipeline.execute.scheduler import run_bundles
from pipeline.execute.sink import StoreSink
from pipeline.spec.campaign import load_campaign
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.location import join_uri
from pipeline.store.rows import manifest_table

pytestmark = pytest.mark.usefixtures("ray_session")


def attempt_ids(campaign: str) -> dict[str, str]:
    cells = pd.read_parquet(f"{campaign}/cells")
    return dict(zip(cells.cell_id, cells.attempt_id))


def assert_each_cell_once(campaign: str, n_cells: int) -> None:
    results = load_results(campaign)
    assert len(results.cells) == n_cells and results.cells.cell_id.is_unique
    assert (results.cells.status == "done").all()
    assert not results.measurements.duplicated(["cell_id", "step"]).any()
    assert set(results.measurements.cell_id) == set(results.cells.cell_id)
    sizes = results.predictions.groupby("cell_id").size()
    assert (sizes == results.cells.set_index("cell_id").test_size.reindex(sizes.index)).all()


def test_rerun_runs_no_cell_and_an_added_seed_runs_only_new_cells(tmp_path, stripe_spec):
    store = str(tmp_path / "results")
    first = run_campaign(stripe_spec(grid={"seed": [0]}), store)
    campaign = first.campaign
    assert (first.requested, first.added, first.done, first.failed) == (4, 4, 4, 0)
    before = attempt_ids(campaign)

    again = run_campaign(stripe_spec(grid={"seed": [0]}), store)
    assert (again.already_done, again.done, again.added) == (4, 0, 0)
    assert attempt_ids(campaign) == before

    grown = run_campaign(stripe_spec(grid={"seed": [0, 1]}), store)
    assert (grown.requested, grown.added, grown.already_done, grown.done) == (8, 4, 4, 4)
    after = attempt_ids(campaign)
    assert {c: after[c] for c in before} == before  # old cells untouched
    assert_each_cell_once(campaign, 8)
    assert sorted(load_results(campaign).cells.seed) == [0] * 4 + [1] * 4


def test_cell_exception_is_recorded_and_its_bundle_goes_on(tmp_path, stripe_spec):
    spec = load_campaign(stripe_spec())
    good, other = spec.cells()[:2]
    bad = dataclasses.replace(
        other, observables=dataclasses.replace(other.observables, dtype="float16")
    )
    campaign = str(tmp_path / "campaign")
    store = ParquetStore.open(campaign, create=True)
    store.write_spec(spec.to_dict(), "")
    store.extend_manifest(manifest_table([good]))  # run_cells adds `bad`
    resources = dataclasses.replace(spec.resources, bundle_size=2)
    summary = run_cells(campaign, [bad, good], resources)
    assert (summary.done, summary.failed) == (1, 1)
    status = campaign_status(campaign)
    assert (status.total, status.done, status.failed, status.pending) == (2, 1, 1, 0)
    failure = status.failures.iloc[0]
    assert failure.cell_id == bad.cell_id and "float16" in failure.first_error_line
    cells = load_results(campaign).cells.set_index("cell_id")
    assert cells.loc[bad.cell_id, "error"].startswith("Traceback")
    assert cells.loc[bad.cell_id, "attempts"] == 1  # never retried


class KillFirstAttempt(StoreSink):
    """Kills the worker of the first attempt (SIGKILL) once its live rows are in the store,
    and records what a reader of the live view saw."""

    def __init__(self, *args):
        super().__init__(*args)
        self.killed: str | None = None
        self.live_seen: list[tuple[str, int]] = []

    def batch(self, event, spec):
        super().batch(event, spec)
        live = self.store.read_live(spec.cell_id).to_pandas()
        self.live_seen.append((event.attempt_id, len(live)))
        if self.killed is None:
            self.killed = event.attempt_id
            os.kill(self.current[spec.cell_id].pid, signal.SIGKILL)


def test_killed_worker_is_retried_and_only_the_finished_attempt_is_stored(tmp_path, stripe_spec):
    spec = load_campaign(stripe_spec(flow={"max_steps": 3000}))
    cell = spec.cells()[0]
    store = ParquetStore.open(str(tmp_path / "campaign"), create=True)
    store.extend_manifest(manifest_table([cell]))
    sink = KillFirstAttempt(store, {}, 1, None)
    run_bundles([[cell]], spec.resources, sink, flush_seconds=0.0)
    assert sink.killed is not None and sink.live_seen[0] == (sink.killed, 1)
    retry_seen = [n for attempt, n in sink.live_seen if attempt != sink.killed]
    assert retry_seen == sorted(retry_seen) and retry_seen[-1] > 1  # streamed while training
    results = load_results(store.uri)
    row = results.cells.iloc[0]
    assert (row.status, row.attempts) == ("done", 2) and row.attempt_id != sink.killed
    assert results.measurements.step.is_unique
    assert results.measurements.step.tolist() == sorted(results.measurements.step)
    assert results.live_measurements.empty and not store.live_attempts()


def test_campaign_on_an_s3_store(tmp_path, stripe_spec, monkeypatch):
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")
    import pyarrow.fs as pafs

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1"
        ).create_bucket(Bucket="phase")
        store = f"s3://phase/store?endpoint_override=127.0.0.1:{port}&scheme=http"
        summary = run_campaign(stripe_spec(grid={"seed": [0]}), store)
        assert summary.done == 4 and summary.campaign == join_uri(store, "stripe-small")
        s3 = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
        )
        cells = pd.read_parquet("phase/store/stripe-small/cells", filesystem=s3)
        measurements = pd.read_parquet("phase/store/stripe-small/measurements", filesystem=s3)
        assert len(cells) == 4 and (cells.status == "done").all()
        assert set(measurements.cell_id) == set(cells.cell_id)
        assert_each_cell_once(summary.campaign, 4)
        assert run_campaign(stripe_spec(grid={"seed": [0]}), store).done == 0
    finally:
        server.stop()


def test_embedded_ray_listens_on_loopback_only(ray_session):
    import psutil
    import ray

    assert ray_session.address.startswith("127.0.0.1:")
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    ours = {p.pid for p in psutil.Process().children(recursive=True)}
    listening = [
        c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.pid in ours
    ]
    assert listening, "the embedded Ray's processes should be children of this one"
    loopback = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}
    assert [c for c in listening if c.laddr.ip not in loopback] == []
