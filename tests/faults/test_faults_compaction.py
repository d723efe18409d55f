"""Compaction killed for real (`make test-faults`): `phasegrid compact` and a `run` that
compacts at its end, SIGKILLed at each kill point of the compaction (a torn part, parts
staged without a plan, the plan written, between the tables' swaps, in the next driver's
recovery, right after it). After every kill each table reads with pandas, duckdb and
`load_results` with every row exactly once; in the end every table is compacted."""

from __future__ import annotations

import signal
from pathlib import Path

import duckdb
import pytest

from pipeline.drivers.status import campaign_status
from support.fault_tools import output, phasegrid, start, stop_group
from support.store_campaigns import (
    TABLES,
    assert_same_rows,
    loaded_tables,
    raw_tables,
    run_local,
)

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("one_torch_thread")]


def spec_of(stripe_spec, compact: bool, seeds: list[int]) -> Path:
    return stripe_spec(
        name="compact-kills",
        grid={"width": [8, 16], "alpha_tilde": [0.1, 100.0], "seed": seeds},
        flow={"max_steps": 100},
        resources={"compact_when_done": compact},
    )


def killed_at(args: list[str], point: str) -> None:
    """`phasegrid ARGS` with `point` armed: it must die by SIGKILL there."""
    driver = start(*args, PHASEGRID_FAULT_KILL_AT=point)
    try:
        driver.wait(timeout=120)
    finally:
        stop_group(driver, grace=0)
    assert driver.returncode == -signal.SIGKILL, f"{point}: {output(driver)[-2000:]}"


def readers_see_every_row_once(campaign: Path, expected: dict, cells: int) -> None:
    assert_same_rows(expected, raw_tables(campaign))
    assert_same_rows(expected, loaded_tables(campaign))
    for table in TABLES:
        sql = f"select count(*) from '{campaign}/{table}/*.parquet'"
        assert duckdb.sql(sql).fetchall()[0][0] == len(expected[table]), table
    state = campaign_status(str(campaign))
    assert (state.done, state.pending, state.corrupt) == (cells, 0, ())


def test_a_compaction_killed_at_each_kill_point_keeps_every_row_exactly_once(tmp_path, stripe_spec):
    store = tmp_path / "results"
    campaign = Path(run_local(spec_of(stripe_spec, False, [0, 1]), store).campaign)
    expected = raw_tables(campaign)
    for point in ("write:2", "compact_staged:1", "compact_swap:2", "compact_swap:1"):
        killed_at(["compact", str(campaign)], point)  # the last one: in the recovery
        readers_see_every_row_once(campaign, expected, 8)
    assert list((campaign / "_compact").iterdir()), "the last kill left a compaction half done"
    finished = phasegrid("compact", str(campaign))
    assert finished.returncode == 0, finished.stdout
    readers_see_every_row_once(campaign, expected, 8)
    assert [len(list((campaign / t).iterdir())) for t in TABLES] == [1, 1, 1, 1]

    for seeds, points in (([0, 1, 2], ["compacted:1"]), ([0, 1, 2, 3], ["compact_planned:1"])):
        grown = run_local(spec_of(stripe_spec, False, seeds), store)  # 4 new per-cell cells
        assert grown.done == 4
        expected = raw_tables(campaign)
        run = ["run", str(spec_of(stripe_spec, True, seeds)), "--store", str(store)]
        for point in points:  # the compaction at the end of a run
            killed_at(run, point)
            readers_see_every_row_once(campaign, expected, 4 * len(seeds))
    killed_at(["compact", str(campaign)], "compact_swap:3")  # in the recovery
    readers_see_every_row_once(campaign, expected, 16)
    finished = phasegrid("compact", str(campaign))
    assert finished.returncode == 0, finished.stdout
    readers_see_every_row_once(campaign, expected, 16)
    assert not list((campaign / "_compact").iterdir())
    assert [len(list((campaign / t).iterdir())) for t in TABLES] == [3, 3, 3, 3]
