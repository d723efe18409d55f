"""Killed drivers, killed workers and two drivers at once, for real (`make test-faults`).

Drivers are `phasegrid run` / `phasegrid resume` processes SIGKILLed at the store's kill
points (PHASEGRID_FAULT_KILL_AT, pipeline/store/kill_points.py: in a torn write, mid-commit, in
recovery, mid-quarantine, ...) and at a random moment from outside, one after the other on
the same campaign: each next driver takes over what the last one left. Workers are
SIGKILLed at random moments while they train. The kill points' counts and moments come
from a seeded generator (PHASEGRID_FAULT_SEED to vary them). Every time, in the end: every
cell exactly once, every table readable by pandas, pyarrow and duckdb, nothing left in
_pending/ _live/ _checkpoints/, and every stored number equal to an uninterrupted
in-process run of its cell (so interrupted cells continued from their snapshots exactly,
and no row of a dead attempt was kept)."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as pads
import pytest

from pipeline import load_results
from pipeline.drivers.status import campaign_status
from support.fault_tools import (
    N_CELLS,
    SEED,
    TABLES,
    assert_rows_are_the_uninterrupted_runs,
    assert_store_is_right,
    campaign_spec,
    live_attempts,
    output,
    phasegrid,
    start,
    stop_group,
)

pytestmark = pytest.mark.faults


def readers_see_no_damage(campaign: Path, raw: bool = True) -> None:
    """Between a kill and the next driver: each table reads with pandas, pyarrow and duckdb
    (no torn file is visible; `raw` False: files were damaged on purpose, skip these),
    load_results shows no row of an uncommitted cell, and status counts nothing as
    running (its driver is dead)."""
    for table in TABLES if raw else ():
        if list((campaign / table).glob("*.parquet")):
            rows = len(pd.read_parquet(campaign / table))
            assert rows == pads.dataset(campaign / table, format="parquet").count_rows()
            sql = f"select count(*) from read_parquet('{campaign}/{table}/*.parquet')"
            assert duckdb.sql(sql).fetchall()[0][0] == rows
    if (campaign / "manifest.parquet").exists():
        results = load_results(str(campaign))
        for name in TABLES[1:]:
            assert set(getattr(results, name).cell_id) <= set(results.cells.cell_id), name
        assert campaign_status(str(campaign)).running == 0


def killed_at(args: list[str], point: str, campaign: Path, resumed: list[int]) -> None:
    """Run `phasegrid ARGS` with the kill point armed; it must die by SIGKILL there."""
    driver = start(*args, PHASEGRID_FAULT_KILL_AT=point)
    try:
        driver.wait(timeout=300)
        resumed += [a["resumed_step"] for a in live_attempts(campaign) if a["resumed_step"]]
    finally:
        stop_group(driver, grace=0)  # its Ray outlives a SIGKILLed driver
    assert driver.returncode == -signal.SIGKILL, f"{point}: {output(driver)[-2000:]}"
    readers_see_no_damage(campaign, raw=not point.startswith("quarantine"))


def killed_from_outside(args: list[str], delay: float, campaign: Path, resumed: list[int]) -> None:
    """Run `phasegrid ARGS` and SIGKILL it `delay` seconds after its first cell starts."""
    driver = start(*args)
    try:
        deadline = time.monotonic() + 300
        while not live_attempts(campaign) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        resumed += [a["resumed_step"] for a in live_attempts(campaign) if a["resumed_step"]]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        stop_group(driver, grace=0)
    assert driver.returncode == -signal.SIGKILL, "the campaign ended before the kill"
    readers_see_no_damage(campaign)


def damage_two_cells(campaign: Path) -> None:
    """A truncated cells file and a garbage measurements file, of two done cells."""
    first, second = sorted(campaign.glob("cells/*.parquet"))[:2]
    (campaign / "measurements" / second.name).write_bytes(os.urandom(3000))
    first.write_bytes(first.read_bytes()[:100])


def finish_and_check(campaign: Path) -> int:
    done = phasegrid("resume", str(campaign))
    assert done.returncode == 0, done.stdout[-3000:]
    assert_store_is_right(str(campaign), N_CELLS)
    return assert_rows_are_the_uninterrupted_runs(str(campaign))


def test_a_driver_killed_at_kill_points_in_turn_then_resumed_loses_no_cell(tmp_path, stripe_spec):
    """One campaign, six drivers killed in turn: mid-write (torn temp file), as a cell's
    attempt starts, after a live part, after a snapshot, with a commit's files pending."""
    rng = random.Random(SEED)
    spec = campaign_spec(stripe_spec, "kill-points")
    campaign = tmp_path / "results" / "kill-points"
    points = [
        f"write:{rng.randint(4, 40)}",
        f"started:{rng.randint(1, 3)}",
        f"live:{rng.randint(1, 2)}",
        f"snapshot:{rng.randint(2, 8)}",
        f"pending:{rng.randint(1, 2)}",
    ]
    resumed: list[int] = []
    killed_at(
        ["run", str(spec), "--store", str(tmp_path / "results")], points[0], campaign, resumed
    )
    for point in points[1:]:
        killed_at(["resume", str(campaign)], point, campaign, resumed)
    checked = finish_and_check(campaign)
    assert resumed and max(resumed) > 0, "no attempt continued from a snapshot"
    print(f"kill points {points}: {checked} rows checked, resumed from steps {resumed}")


def test_a_driver_killed_mid_commit_in_recovery_and_mid_quarantine_loses_no_cell(
    tmp_path, stripe_spec
):
    """Killed from outside at a random moment, then after a COMMIT marker, in the next
    driver's recovery of that commit, between the moves of a commit, right after a
    commit, and mid-quarantine of two damaged cells: then resumed."""
    rng = random.Random(SEED + 1)
    spec = campaign_spec(stripe_spec, "mid-commit")
    campaign = tmp_path / "results" / "mid-commit"
    resumed: list[int] = []
    delay = rng.uniform(0.5, 4.0)
    killed_from_outside(
        ["run", str(spec), "--store", str(tmp_path / "results")], delay, campaign, resumed
    )
    points = [
        f"commit:{rng.randint(1, 2)}",
        "recover:1",
        f"move:{rng.randint(1, 4)}",
        "committed:1",
        f"quarantine:{rng.randint(1, 5)}",
    ]
    for point in points:
        if point.startswith("quarantine"):
            damage_two_cells(campaign)
        killed_at(["resume", str(campaign)], point, campaign, resumed)
    checked = finish_and_check(campaign)
    assert list(campaign.glob("_quarantine/*/report.json"))
    print(
        f"external kill after {delay:.2f} s, kill points {points}: {checked} rows checked, "
        f"resumed from steps {resumed}"
    )
