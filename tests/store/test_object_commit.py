"""A cell's commit on an object store (moto S3 on loopback, requests counted server-side):
at most 10 requests, and a commit cut short at each of its steps leaves either no trace
(readers see the cell as it was; the next driver deletes what it left) or a complete cell.

Cells are trained for real (in-process `run_cell`, 60 steps)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline import load_results
from pipeline.drivers.status import campaign_status
from pipeline.execute.stream import AttemptFinished, run_cell
from pipeline.spec.campaign import load_campaign
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.commits import DATA_TABLES
from pipeline.store.rows import Provenance, done_tables, failed_cell_table, manifest_table, utc_now

REPO = Path(__file__).resolve().parents[2]
MOST_REQUESTS = 10  # issue 17: a cell's commit on an object store


@pytest.fixture(scope="module")
def trained():
    """Three tiny stripe cells and one real finished attempt (reused for each cell)."""
    spec = load_campaign(REPO / "campaigns" / "stripe_small.toml")
    cells = [
        dataclasses.replace(c, flow=dataclasses.replace(c.flow, max_steps=60))
        for c in spec.cells()[:3]
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        end = next(e for e in run_cell(cells[0], 0.0) if isinstance(e, AttemptFinished))
    finally:
        torch.set_num_threads(threads)
    return cells, end


def run_of(attempt: str, attempts: int = 1) -> Provenance:
    return Provenance(attempt, attempts, "host", "cpu", "test", utc_now(), utc_now())


def tables_of(cell, end, attempt: str = "a", attempts: int = 1):
    return done_tables(cell, end.result, list(end.measurements), run_of(attempt, attempts))


def new_store(moto_s3, cells) -> ParquetStore:
    store = ParquetStore.open(moto_s3.uri("store/campaign"), create=True)
    store.extend_manifest(manifest_table(cells))
    return store


def requests_of(moto_s3, action) -> list[tuple[str, str]]:
    mark = moto_s3.requests.total
    action()
    return moto_s3.requests.since(mark)


def test_a_cells_commit_on_an_object_store_takes_at_most_ten_requests(moto_s3, trained):
    cells, end = trained
    store = new_store(moto_s3, cells)
    done = requests_of(moto_s3, lambda: store.commit(cells[0].cell_id, tables_of(cells[0], end)))
    failure = {"cells": failed_cell_table(cells[1], "Traceback ...\nboom", run_of("f"))}
    failed = requests_of(moto_s3, lambda: store.commit(cells[1].cell_id, failure))
    rerun = requests_of(
        moto_s3, lambda: store.commit(cells[1].cell_id, tables_of(cells[1], end, "r", 2))
    )
    for name, requests in (("done", done), ("failed", failed), ("re-run", rerun)):
        assert len(requests) <= MOST_REQUESTS, (name, len(requests), requests)
    assert [method for method, _ in done].count("PUT") == 4  # each object written once
    assert not [path for _, path in done + failed + rerun if "_pending" in path or ".tmp" in path]
    results = load_results(store.uri)
    assert sorted(results.cells.cell_id) == sorted(c.cell_id for c in cells[:2])
    assert (results.cells.status == "done").all() and results.cells.attempts.max() == 2
    assert len(results.measurements) == 2 * len(end.measurements)
    assert not results.measurements.duplicated(["cell_id", "step"]).any()
    raw = pd.read_parquet("phase/store/campaign/predictions", filesystem=moto_s3.filesystem())
    assert len(raw) == 2 * cells[0].data.test_size  # a plain pandas read sees the same


def write_data_objects(store: ParquetStore, cell, end, attempt: str) -> None:
    """What a commit writes before its record (its data objects), with the attempt in
    `_live/` as the driver leaves it while the cell commits: then the driver died."""
    store.start_attempt(cell.cell_id, attempt, {"attempt_id": attempt})
    for name, table in tables_of(cell, end, attempt).items():
        if name in DATA_TABLES:
            store.location.write_parquet(f"{name}/{cell.cell_id}.parquet", table)


def test_a_commit_cut_short_before_its_record_leaves_no_trace(moto_s3, trained):
    """Cut short (a) for a new cell, (b) for the re-run of a failed cell: readers see no
    row of the attempt, the failed record stays as it was, and the next driver's
    recovery deletes the objects and keeps the cell committed next to them intact."""
    cells, end = trained
    store = new_store(moto_s3, cells)
    new, rerun, complete = cells
    failure = {"cells": failed_cell_table(rerun, "Traceback ...\nboom", run_of("first"))}
    store.commit(rerun.cell_id, failure)
    store.commit(complete.cell_id, tables_of(complete, end, "c"))
    store.start_attempt(complete.cell_id, "c", {})  # committed, its live rows not yet gone
    write_data_objects(store, new, end, "n")
    write_data_objects(store, rerun, end, "second")

    for view in (load_results(store.uri), load_results(store.uri, tables=["measurements"])):
        assert set(view.measurements.cell_id) == {complete.cell_id}
    cells_now = load_results(store.uri).cells.set_index("cell_id")
    assert cells_now.loc[rerun.cell_id, "status"] == "failed"
    assert new.cell_id not in cells_now.index
    status = campaign_status(store.uri)
    assert (status.total, status.done) == (3, 1)  # the other two: running (fresh live rows)

    assert store.recover() == (0, 2)
    for name in DATA_TABLES:
        left = {e.name for e in store.location.listdir(name)}
        assert left <= {f"{complete.cell_id}.parquet"}, (name, left)
    assert store.cell_states() == {rerun.cell_id: ("failed", 1), complete.cell_id: ("done", 1)}
    assert len(load_results(store.uri).measurements) == len(end.measurements)
    assert store.recover() == (0, 0)  # idempotent: nothing left to clean


def test_a_commit_killed_after_its_record_is_complete(moto_s3, trained):
    """The record is the commit point: once written the cell is done with every row,
    whatever was left undone after it (its live rows), and recovery keeps it."""
    cells, end = trained
    store = new_store(moto_s3, cells)
    cell = cells[0]
    store.start_attempt(cell.cell_id, "a", {})
    store.commit(cell.cell_id, tables_of(cell, end, "a"))
    assert store.recover() == (0, 0)
    results = load_results(store.uri)
    assert results.cells.status.tolist() == ["done"]
    assert results.measurements.step.tolist() == [m.step for m in end.measurements]
    assert len(results.predictions) == cell.data.test_size and len(results.kernels) == 1
