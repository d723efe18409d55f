"""Helpers of the fault-injection tests (tests/test_faults*.py): real processes, real
kills, and one check that a campaign's store is right, against train_cell as the oracle."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import torch

import results_schema as rs
from pipeline.store.rows import spec_from_config
from tasks.bundling import bundle_key
from tasks.records import CellResult, Measurement
from tasks.specs import CellSpec
from tasks.train_bundle import train_bundle
from tasks.train_cell import train_cell

REPO = Path(__file__).resolve().parents[2]
PHASEGRID = Path(sys.executable).parent / "phasegrid"
TABLES = ("cells", "measurements", "predictions", "kernels")
COMPARED = [f.name for f in dataclasses.fields(Measurement) if f.name != "wall_seconds"]
SEED = int(os.environ.get("PHASEGRID_FAULT_SEED", "6"))
N_CELLS = 8


def campaign_spec(stripe_spec, name: str, max_steps: int = 1500):
    """8 stripe cells of `max_steps` steps (1,500: 1–5 s each here, depending on the load),
    snapshots every 0.25 s."""
    return stripe_spec(
        name=name,
        grid={"width": [8], "seed": [0, 1, 2, 3]},
        flow={"max_steps": max_steps},
        resources={"checkpoint_every_seconds": 0.25},
    )


def live_attempts(campaign: Path) -> list[dict]:
    """The _attempt.json of every attempt in _live/ (cell_id, pid, resumed_step, ...)."""
    found = []
    try:
        paths = list(campaign.glob("_live/*/*/_attempt.json"))
    except FileNotFoundError:  # a folder vanished while listed
        return found
    for path in paths:
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass  # being replaced right now
    return found


def env(**extra: str) -> dict[str, str]:
    """This environment without an inherited Ray address or kill point, plus `extra`."""
    out = {
        k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PHASEGRID_FAULT_KILL_AT")
    }
    out["PHASEGRID_FLUSH_SECONDS"] = "0.25"  # live parts often enough for the live kill points
    out.update(extra)
    return out


def start(*args: str, **extra_env: str) -> subprocess.Popen:
    """`phasegrid ARGS` in its own session (so it and its Ray can be stopped together);
    its stdout and stderr go to a temp file (`output`), never a pipe that could fill."""
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [str(PHASEGRID), *args],
        cwd=REPO,
        env=env(**extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    process.log = log
    return process


def output(process: subprocess.Popen) -> str:
    """Everything `process` (from `start`) printed so far."""
    process.log.seek(0)
    return process.log.read()


def phasegrid(*args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    """Run `phasegrid ARGS` to its end (its Ray stopped too); stdout holds both streams."""
    process = start(*args, **extra_env)
    try:
        process.wait(timeout=timeout)
    finally:
        stop_group(process)
    return subprocess.CompletedProcess(process.args, process.returncode, output(process), "")


def stop_group(process: subprocess.Popen, grace: float = 1) -> None:
    """Stop a process started in its own session and everything it started (a SIGKILLed
    driver's Ray processes outlive it)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()
            if (
                subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True).returncode
                != 0
            ):
                return
            time.sleep(0.2)


@functools.cache
def reference(cell: CellSpec) -> tuple[tuple[Measurement, ...], CellResult]:
    """The cell trained in this process without interruption (one torch thread, as a Ray
    worker), by the engine the scheduler picks for it alone: train_bundle's single-net
    fast path where it can batch, else train_cell (which cells taking snapshots use).
    The oracle for its stored rows. (The two engines agree to ~1e-3 only over 1,500
    steps at α̃ = 100: measured, accept/reject decisions flip.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if bundle_key(cell) is not None:
            *measurements, result = (record for _, record in train_bundle([cell]))
        else:
            plain = dataclasses.replace(cell, checkpoint_every_seconds=None)
            *measurements, result = train_cell(plain)
    finally:
        torch.set_num_threads(threads)
    return tuple(measurements), result


def same(a, b, rtol: float = 1e-10) -> bool:
    """Equal numbers (NaN equals NaN) to `rtol`."""
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300)
    return a == b


def assert_rows_are_the_uninterrupted_runs(
    campaign: str, rtol: float = 1e-10, filesystem=None
) -> int:
    """Every done cell's measurements, summary and predictions equal an uninterrupted
    in-process run of the cell (so no row of a dead attempt is mixed in and nothing is
    missing). `filesystem`: a pyarrow filesystem `campaign` is a path of (an object
    store). Returns the number of stored rows compared."""
    manifest = pd.read_parquet(f"{campaign}/manifest.parquet", filesystem=filesystem)
    specs = {c: spec_from_config(config) for c, config in zip(manifest.cell_id, manifest.config)}
    cells = pd.read_parquet(f"{campaign}/cells", filesystem=filesystem).set_index("cell_id")
    measured = pd.read_parquet(f"{campaign}/measurements", filesystem=filesystem)
    predictions = pd.read_parquet(f"{campaign}/predictions", filesystem=filesystem)
    checked = 0
    for cell_id, row in cells.iterrows():
        expected, result = reference(specs[cell_id])
        rows = measured.loc[measured.cell_id == cell_id].sort_values("step")
        assert rows.step.tolist() == [m.step for m in expected], cell_id
        for column in COMPARED:
            for got, want in zip(rows[column], (getattr(m, column) for m in expected)):
                assert same(float(got), float(want), rtol), (cell_id, column, got, want)
        for column in (
            "stop_reason",
            "steps",
            "flow_time",
            "train_loss",
            "test_error",
            "gradient_evaluations",
            "ntk_change",
        ):
            want = getattr(result, column)
            assert (
                same(row[column], want, rtol) if isinstance(want, float) else row[column] == want
            ), (cell_id, column, row[column], want)
        outputs = predictions.loc[predictions.cell_id == cell_id].sort_values("test_index")
        np.testing.assert_allclose(outputs.test_output, result.test_outputs, rtol=rtol)
        checked += len(rows) + len(outputs) + 1
    return checked


def assert_store_is_right(campaign: str, n_cells: int) -> dict[str, int]:
    """Each table reads with pandas, pyarrow.dataset and duckdb, with the same rows and the
    documented columns; every cell done exactly once; no duplicate measurement; nothing
    left in _pending/ or _live/, no temp file anywhere a reader looks. Returns rows per table."""
    counts = {}
    for table in TABLES:
        frame = pd.read_parquet(f"{campaign}/{table}")
        assert list(frame.columns) == rs.schema_of(table).names, table
        arrow = pads.dataset(f"{campaign}/{table}", format="parquet").to_table()
        sql = duckdb.sql(f"select count(*) from read_parquet('{campaign}/{table}/*.parquet')")
        assert len(frame) == arrow.num_rows == sql.fetchall()[0][0], table
        counts[table] = len(frame)
        assert not [
            p for p in Path(campaign, table).iterdir() if not p.name.endswith(".parquet")
        ], table
    cells = pd.read_parquet(f"{campaign}/cells")
    assert len(cells) == n_cells and cells.cell_id.is_unique, cells.cell_id.tolist()
    assert (cells.status == "done").all(), cells.loc[cells.status != "done", "error"].tolist()
    measurements = pd.read_parquet(f"{campaign}/measurements")
    assert not measurements.duplicated(["cell_id", "step"]).any()
    for table in TABLES[1:]:
        stored = set(pd.read_parquet(f"{campaign}/{table}").cell_id)
        assert stored == set(cells.cell_id), table  # no orphan, none missing
    for hidden in ("_live", "_pending", "_checkpoints", "_compact"):
        assert not [p for p in Path(campaign, hidden).glob("**/*") if p.is_file()], hidden
    return counts
