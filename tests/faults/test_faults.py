"""Preemption and crashes of the store, the quick checks (tests/test_faults_*.py hold the
rest: corrupt files and numerical faults, bad input and security, and under `make
test-faults` real killed drivers, workers and nodes):

- a preempted cell continues from its training-state snapshot on the same trajectory as
  an uninterrupted run, and a damaged snapshot costs time, never a wrong number;
- the store's process killed at its kill points leaves every cell either as it was or
  fully committed, and readers see no torn file.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.spec.campaign import load_campaign
from pipeline.store import snapshots as checkpoint
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.location import Location
from pipeline.store.quarantine import QUARANTINE, CorruptFileWarning
from support.fault_tools import REPO, same
from tasks.records import Measurement, TrainingState
from tasks.train_cell import train_cell

STRIPE = REPO / "campaigns" / "stripe_small.toml"


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def snapshotting_cell(batch_size: int | None, every: float = 1e-9, integrator: str = "euler-heun"):
    """A stripe cell of 300 steps that snapshots at every step (every=1e-9 s)."""
    cell = load_campaign(STRIPE).cells()[0]
    return dataclasses.replace(
        cell,
        flow=dataclasses.replace(
            cell.flow, max_steps=300, batch_size=batch_size, integrator=integrator
        ),
        checkpoint_every_seconds=every,
    )


def records_equal(got: list, want: list) -> None:
    """Measurements and results equal field by field (wall seconds aside), to 1e-10."""
    assert [type(r) for r in got] == [type(r) for r in want]
    for a, b in zip(got, want):
        for name, value in dataclasses.asdict(a).items():
            other = getattr(b, name)
            if name == "wall_seconds":
                continue
            if isinstance(value, np.ndarray):
                np.testing.assert_allclose(value, other, rtol=1e-10, atol=0)
            else:
                assert same(value, other), (name, value, other)


@pytest.mark.parametrize(
    "batch_size, integrator",
    [(None, "euler-heun"), (16, "euler-heun"), (None, "paper")],
    ids=["full-batch", "minibatch", "paper"],
)
def test_a_resumed_cell_continues_the_uninterrupted_trajectory(
    tmp_path, one_thread, batch_size, integrator
):
    cell = snapshotting_cell(batch_size, integrator=integrator)
    plain = list(train_cell(dataclasses.replace(cell, checkpoint_every_seconds=None)))
    store = ParquetStore.open(str(tmp_path / "campaign"), create=True)
    measured, snapshots = [], []
    for record in train_cell(cell):
        if isinstance(record, Measurement):
            measured.append(record)
        elif isinstance(record, TrainingState):
            snapshots.append(checkpoint.Snapshot(record, tuple(measured)))
    assert [s.state.step for s in snapshots] == list(range(300))
    for taken in (snapshots[7], snapshots[150], snapshots[-1]):
        checkpoint.save_snapshot(store, cell.cell_id, taken)
        back = checkpoint.load_snapshot(store, cell.cell_id)
        assert back is not None and back.state.step == taken.state.step
        resumed = [r for r in train_cell(cell, back.state) if not isinstance(r, TrainingState)]
        records_equal(list(back.measurements) + resumed, plain)
        assert resumed[0].step > back.measurements[-1].step  # nothing measured twice
        assert resumed[0].wall_seconds >= back.state.wall_seconds  # the clock continues


def test_a_snapshot_is_plain_parquet_and_a_damaged_one_costs_time_not_numbers(tmp_path, one_thread):
    cell = snapshotting_cell(None)
    measured = []
    for record in train_cell(
        dataclasses.replace(cell, flow=dataclasses.replace(cell.flow, max_steps=20))
    ):
        if isinstance(record, TrainingState):
            snapshot = checkpoint.Snapshot(record, tuple(measured))
        elif isinstance(record, Measurement):
            measured.append(record)
    state = snapshot.state
    store = ParquetStore.open(str(tmp_path / "campaign"), create=True)
    checkpoint.save_snapshot(store, cell.cell_id, snapshot)
    path = Path(store.location.path(checkpoint.snapshot_path(cell.cell_id)))
    assert path.read_bytes()[:4] == b"PAR1"
    row = pq.read_table(path).to_pylist()[0]
    theta = np.frombuffer(row["theta"], dtype="<f8")
    np.testing.assert_array_equal(theta, state.theta)
    assert row["measurements"][-1]["step"] == snapshot.measurements[-1].step

    table = pq.read_table(path)
    tampered = table.set_column(
        table.schema.get_field_index("theta"),
        "theta",
        pa.array([(theta * (1 + 1e-15)).tobytes()], pa.large_binary()),
    )
    pq.write_table(tampered, path)  # a valid file, wrong numbers
    with pytest.warns(CorruptFileWarning, match="SHA-256"):
        assert checkpoint.load_snapshot(store, cell.cell_id) is None
    assert not path.exists()
    assert len(list(Path(store.uri, QUARANTINE).glob("*/_checkpoints/*"))) == 1
    checkpoint.save_snapshot(store, cell.cell_id, snapshot)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.warns(CorruptFileWarning, match=str(path.name)):
        assert checkpoint.load_snapshot(store, cell.cell_id) is None
    assert checkpoint.load_snapshot(store, "other") is None
    checkpoint.save_snapshot(store, cell.cell_id, snapshot)
    path.rename(path.with_name("other.parquet"))  # another cell's snapshot
    with pytest.warns(CorruptFileWarning, match="expected"):
        assert checkpoint.load_snapshot(store, "other") is None


KILL_SCRIPT = """
import json, sys
import pyarrow as pa
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.rows import Provenance, failed_cell_table, measurements_table, utc_now
from tasks.records import Measurement
from tasks.specs import CellSpec
cells = [CellSpec(alpha_tilde=1.0, seed=seed) for seed in range(3)]
store = ParquetStore.open(sys.argv[1], create=True)
store.recover()
for k, cell in enumerate(cells):
    rows = [Measurement(step, 0.1 * step, 0.1, 0.0, step, 1.0, 0.5, 3, 0.1, -1.0, 0.0, 1.0,
                        0.5, 1.0, 0.1 * k, 1.0) for step in range(40 * (k + 1))]
    run = Provenance(f"attempt-{k}", 1, "h", "cpu", "test", utc_now(), utc_now())
    store.commit(cell.cell_id, {"measurements": measurements_table(cell, rows),
                                "cells": failed_cell_table(cell, "synthetic", run)})
"""


MORE = pytest.mark.faults  # the same check at more points, under `make test-faults`


@pytest.mark.parametrize(
    "kill_at",
    ["write:5", "commit:1", "move:3"]
    + [
        pytest.param(point, marks=MORE)
        for point in ("write:2", "pending:2", "move:1", "committed:2", "recover:1")
    ],
)
def test_the_store_killed_at_a_kill_point_leaves_each_cell_old_or_whole(tmp_path, kill_at):
    """The store's process SIGKILLs itself at `kill_at` while committing 3 cells (2
    tables each), then a new process recovers; each cell has both tables or neither."""
    campaign = tmp_path / "campaign"
    run = [sys.executable, "-c", KILL_SCRIPT, str(campaign)]
    event = kill_at.split(":")[0]
    if event == "recover":  # a commit interrupted first, then its recovery too
        first = subprocess.run(run, env={**_env(), "PHASEGRID_FAULT_KILL_AT": "commit:2"})
        assert first.returncode == -9
    killed = subprocess.run(
        run, env={**_env(), "PHASEGRID_FAULT_KILL_AT": kill_at}, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    for table in ("cells", "measurements"):  # readers, before recovery
        for path in (campaign / table).glob("*"):
            assert (
                path.suffix == ".parquet"
                or path.name.startswith((".", "_"))
                or path.name.endswith(".tmp")
            ), path
    store = ParquetStore(Location.open(str(campaign)))
    store.recover()
    cells = store.read_table("cells").to_pandas()
    measurements = store.read_table("measurements").to_pandas()
    assert set(measurements.cell_id) == set(cells.cell_id)  # no orphan, no torn cell
    assert (measurements.groupby("cell_id").size() % 40 == 0).all()
    if len(cells):
        assert len(pd.read_parquet(campaign / "measurements")) == len(measurements)
        assert duckdb.sql(f"select count(*) from '{campaign}/measurements/*.parquet'").fetchall()[
            0
        ][0] == len(measurements)
    assert not list(campaign.glob("**/*.tmp")) and not list(campaign.glob("_pending/*"))
    done = subprocess.run(run, env=_env(), capture_output=True, text=True)  # and goes on
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(campaign / "cells")) == 3
    assert len(pd.read_parquet(campaign / "measurements")) == 40 + 80 + 120


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PHASEGRID_FAULT_KILL_AT"}
