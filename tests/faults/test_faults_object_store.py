"""The kill-point tests on an object store (`make test-faults`): a campaign stored on a
moto S3 server on loopback (in this process; the drivers are real `phasegrid` processes
reaching it over HTTP), one driver after the other SIGKILLed at the store's kill points
of the object-store commit (pipeline/store/commits.py: a torn upload, between a commit's
data objects, all data objects written but no record, in the next driver's recovery of
that, right after the record) and once from outside while commits may be in flight in
the commit pool. Every time: no reader sees a row of an uncommitted cell.
In the end: every cell exactly once, a plain pandas read of each table equal to
`load_results` (nothing orphaned is left), nothing in _live/ _pending/ _checkpoints/,
and every stored number equal to an uninterrupted in-process run of its cell."""

from __future__ import annotations

import os
import random
import signal
import time

import pandas as pd
import pyarrow.fs as pafs
import pytest

from pipeline import load_results
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.location import Location, join_uri
from support.fault_tools import (
    N_CELLS,
    SEED,
    TABLES,
    assert_rows_are_the_uninterrupted_runs,
    campaign_spec,
    output,
    phasegrid,
    start,
    stop_group,
)

pytestmark = pytest.mark.faults
NAME = "object-kills"


def readers_see_no_uncommitted_row(campaign: str) -> None:
    """Between a kill and the next driver: `load_results` shows rows of done cells only,
    each once."""
    if not Location.open(campaign).exists("manifest.parquet"):
        return
    results = load_results(campaign)
    done = set(results.cells.loc[results.cells.status == "done", "cell_id"])
    for name in TABLES[1:]:
        assert set(getattr(results, name).cell_id) <= done, name
    assert not results.measurements.duplicated(["cell_id", "step"]).any()


def killed_at(args: list[str], point: str, campaign: str) -> None:
    driver = start(*args, PHASEGRID_FAULT_KILL_AT=point)
    try:
        driver.wait(timeout=300)
    finally:
        stop_group(driver, grace=0)  # its Ray outlives a SIGKILLed driver
    assert driver.returncode == -signal.SIGKILL, f"{point}: {output(driver)[-2000:]}"
    readers_see_no_uncommitted_row(campaign)


def killed_from_outside(args: list[str], delay: float, campaign: str) -> None:
    """SIGKILL `phasegrid ARGS` `delay` seconds after its first cell has committed."""
    driver = start(*args)
    store = ParquetStore.open(campaign)
    try:
        deadline = time.monotonic() + 300
        before = len(store.cell_states())
        while len(store.cell_states()) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(delay)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        stop_group(driver, grace=0)
    assert driver.returncode == -signal.SIGKILL, "the campaign ended before the kill"
    readers_see_no_uncommitted_row(campaign)


def assert_object_store_is_right(campaign: str, path: str, s3: pafs.FileSystem) -> None:
    results = load_results(campaign)
    cells = results.cells
    assert len(cells) == N_CELLS and cells.cell_id.is_unique, cells.cell_id.tolist()
    assert (cells.status == "done").all(), cells.loc[cells.status != "done", "error"].tolist()
    for name in TABLES:
        raw = pd.read_parquet(f"{path}/{name}", filesystem=s3)
        assert len(raw) == len(getattr(results, name)), name  # no orphan a plain read sees
        assert set(raw.cell_id) == set(cells.cell_id), name
    assert not results.measurements.duplicated(["cell_id", "step"]).any()
    for hidden in ("_live", "_pending", "_checkpoints", "_compact"):
        selector = pafs.FileSelector(f"{path}/{hidden}", allow_not_found=True, recursive=True)
        files = [i.path for i in s3.get_file_info(selector) if i.type == pafs.FileType.File]
        assert not files, (hidden, files)


def test_drivers_killed_at_the_object_store_commits_kill_points_lose_no_cell(
    tmp_path, stripe_spec, moto_s3
):
    rng = random.Random(SEED + 2)
    spec = campaign_spec(stripe_spec, NAME, max_steps=600)
    store = moto_s3.uri("results")
    campaign = join_uri(store, NAME)
    points = [
        f"put:{rng.randint(1, 4)}",
        "pending:1",
        "recover:1",
        f"commit:{rng.randint(1, 2)}",
    ]
    killed_at(["run", str(spec), "--store", store], f"write:{rng.randint(4, 40)}", campaign)
    for point in points:
        killed_at(["resume", campaign], point, campaign)
    delay = rng.uniform(0.0, 1.0)
    killed_from_outside(["resume", campaign], delay, campaign)
    done = phasegrid("resume", campaign)
    assert done.returncode == 0, done.stdout[-3000:]
    s3 = moto_s3.filesystem()
    assert_object_store_is_right(campaign, f"phase/results/{NAME}", s3)
    checked = assert_rows_are_the_uninterrupted_runs(f"phase/results/{NAME}", filesystem=s3)
    print(f"kill points {points}, external kill {delay:.2f} s after a commit: {checked} rows")
