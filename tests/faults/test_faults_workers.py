"""Workers SIGKILLed at random moments while they train, and two drivers started at once
on one campaign (`make test-faults`): the campaign completes, each killed cell is retried
(continuing from its snapshot when it takes them) and its rows come only from the
attempt that finished; two drivers never both run a cell."""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from support.fault_tools import (
    N_CELLS,
    SEED,
    assert_rows_are_the_uninterrupted_runs,
    assert_store_is_right,
    campaign_spec,
    live_attempts,
    output,
    start,
    stop_group,
)

pytestmark = pytest.mark.faults


def kill_workers(driver, campaign: Path, plan: dict[int, float]) -> tuple[list, list]:
    """While `driver` runs: the k-th cell to start (k in `plan`) has its worker SIGKILLed
    `plan[k]` seconds after its first attempt appeared. Returns the kills (cell_id,
    attempt_id, time, whether it had a snapshot then) and every attempt seen."""
    first_seen: dict[str, tuple[dict, float]] = {}
    attempts: dict[str, dict] = {}
    kills: list[tuple[str, str, datetime, bool]] = []
    deadline = time.monotonic() + 300
    while driver.poll() is None and time.monotonic() < deadline:
        for attempt in live_attempts(campaign):
            attempts.setdefault(attempt["attempt_id"], attempt)
            first_seen.setdefault(attempt["cell_id"], (attempt, time.monotonic()))
        for k, (cell, (attempt, seen_at)) in enumerate(list(first_seen.items())):
            live = campaign / "_live" / cell / attempt["attempt_id"]
            if k in plan and time.monotonic() - seen_at >= plan[k] and live.exists():
                snapshot = (campaign / "_checkpoints" / f"{cell}.parquet").exists()
                os.kill(attempt["pid"], signal.SIGKILL)
                kills.append((cell, attempt["attempt_id"], datetime.now(UTC), snapshot))
                del plan[k]
        time.sleep(0.01)
    return kills, list(attempts.values())


@pytest.mark.parametrize("snapshots", [True, False], ids=["snapshots", "no-snapshots"])
def test_workers_killed_at_random_moments_cost_no_row(tmp_path, stripe_spec, snapshots):
    rng = random.Random(SEED + 2 + snapshots)
    spec = campaign_spec(stripe_spec, "workers")
    if not snapshots:  # trained on the fast single-net path, retried from step 0
        text = spec.read_text().replace("checkpoint_every_seconds = 0.25", "")
        spec.write_text(text)
    campaign = tmp_path / "results" / "workers"
    # kills land within the first `latest` seconds of a cell: train_cell (snapshots) takes
    # ~1.8 s per cell on a quiet machine, the fast path ~1 s; later kills could miss
    latest = 1.2 if snapshots else 0.5
    plan = {k: rng.uniform(0.1 * latest, latest) for k in rng.sample(range(N_CELLS - 2), 3)}
    driver = start("run", str(spec), "--store", str(tmp_path / "results"))
    try:
        kills, attempts = kill_workers(driver, campaign, dict(plan))
        driver.wait(timeout=60)
    finally:
        stop_group(driver)
    assert driver.returncode == 0, output(driver)[-3000:]
    assert len(kills) == 3, f"only {len(kills)} of the planned kills {plan} happened"
    assert_store_is_right(str(campaign), N_CELLS)
    checked = assert_rows_are_the_uninterrupted_runs(str(campaign))
    cells = pd.read_parquet(campaign / "cells").set_index("cell_id")
    resumed = []
    for cell, attempt, when, had_snapshot in kills:
        if cells.finished_at[cell] < when:
            continue  # it had just finished: the kill hit the worker's next cell instead
        assert cells.attempts[cell] == 2 and cells.attempt_id[cell] != attempt
        retry = [a for a in attempts if a["cell_id"] == cell and a["attempt_id"] != attempt]
        resumed += [a["resumed_step"] for a in retry if a["resumed_step"] is not None]
        assert had_snapshot <= bool(resumed) if snapshots else not resumed
    assert cells.attempts.sum() - N_CELLS <= len(kills)
    assert not snapshots or resumed, "no killed cell had a snapshot to continue from"
    print(
        f"killed workers {[(c[:6], a, s) for c, a, _, s in kills]}: {checked} rows "
        f"checked, retries resumed from steps {resumed}"
    )


def test_two_drivers_started_at_once_never_both_run_a_cell(tmp_path, stripe_spec):
    """Two `phasegrid run` at once: one runs the campaign, the other is refused with a
    clear message; so is a `resume` started while the first one runs."""
    spec = campaign_spec(stripe_spec, "twice")
    campaign = tmp_path / "results" / "twice"
    args = ["run", str(spec), "--store", str(tmp_path / "results")]
    drivers, late, late_refused = [start(*args), start(*args)], None, None
    try:
        deadline = time.monotonic() + 300
        while all(d.poll() is None for d in drivers) and time.monotonic() < deadline:
            time.sleep(0.05)
        loser = next(d for d in drivers if d.poll() is not None)
        winner = drivers[1 - drivers.index(loser)]
        if winner.poll() is None:
            late = start("resume", str(campaign))
            late.wait(timeout=120)
            late_refused = winner.poll() is None  # the winner held the campaign throughout
        winner.wait(timeout=300)
    finally:
        for process in drivers + ([late] if late else []):
            stop_group(process)
    assert (loser.returncode, winner.returncode) == (1, 0), output(loser)[-2000:]
    assert "in use by another phasegrid driver" in output(loser).replace("\n", " ")
    if late_refused:
        assert late.returncode == 1 and "in use" in output(late)
    assert_store_is_right(str(campaign), N_CELLS)
    assert (pd.read_parquet(campaign / "cells").attempts == 1).all()  # none run twice
    assert assert_rows_are_the_uninterrupted_runs(str(campaign)) > N_CELLS * 256
