"""`phasegrid` as a user types it: the stripe campaign end to end, a driver killed with
SIGKILL then resumed, a separately started Ray cluster via --address, and bad input (the two
with separate Ray processes run under the `faults` marker, by make test-faults).

`run` goes through the installed entry point in a subprocess (it must be killable and
start its own Ray); cheap commands run in-process through typer's CliRunner."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import results_schema as rs
from pipeline import load_results
from pipeline.cli import app
from support.fault_tools import stop_group

REPO = Path(__file__).resolve().parents[2]
PHASEGRID = Path(sys.executable).parent / "phasegrid"
RAY = Path(sys.executable).parent / "ray"
TABLES = ("cells", "measurements", "predictions", "kernels")


def env() -> dict[str, str]:
    """This environment without an inherited Ray address."""
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


def phasegrid(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PHASEGRID), *args],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_complete(campaign: str, n_cells: int) -> pd.DataFrame:
    """Every table reads with pandas and duckdb, with the documented columns; every cell
    is done exactly once; no duplicate measurement rows; nothing left in _live/_pending."""
    for table in TABLES:
        frame = pd.read_parquet(f"{campaign}/{table}")
        assert list(frame.columns) == rs.schema_of(table).names, table
        rows = duckdb.sql(f"select count(*) from '{campaign}/{table}/*.parquet'").fetchall()
        assert rows[0][0] == len(frame), table
    cells = pd.read_parquet(f"{campaign}/cells")
    assert len(cells) == n_cells and cells.cell_id.is_unique and (cells.status == "done").all()
    measurements = pd.read_parquet(f"{campaign}/measurements")
    assert not measurements.duplicated(["cell_id", "step"]).any()
    assert set(measurements.cell_id) == set(cells.cell_id)
    for hidden in ("_live", "_pending"):
        assert not list(Path(campaign, hidden).glob("**/*.parquet")), hidden
    return cells


def test_stripe_campaign_runs_end_to_end_through_the_cli(tmp_path):
    store = tmp_path / "results"
    done = phasegrid("run", "campaigns/stripe_small.toml", "--store", str(store))
    assert done.returncode == 0, done.stderr
    campaign = str(store / "stripe-small")
    cells = assert_complete(campaign, 8)
    assert sorted(cells.groupby(["width", "alpha_tilde", "seed"]).size()) == [1] * 8
    assert (cells.alpha - cells.alpha_tilde / cells.width**0.5).abs().max() < 1e-12
    assert cells.n_params.tolist() == (cells.width * 5 + cells.width).tolist()  # d·h + h
    assert cells.code_version.str.startswith("phasegrid ").all()
    predictions = pd.read_parquet(f"{campaign}/predictions")
    assert len(predictions) == 8 * 256 and set(predictions.test_label) == {-1, 1}
    kernels = pd.read_parquet(f"{campaign}/kernels")
    assert len(kernels) == 8 and (kernels.ntk_norm_initial > 0).all()
    assert "8 cells (8 new), 0 already done" in done.stdout.replace("\n", " ")

    again = cli("run", "campaigns/stripe_small.toml", "--store", str(store))
    assert again.exit_code == 0 and "8 already done, ran 0" in again.stdout.replace("\n", " ")
    status = cli("status", campaign)
    assert status.exit_code == 0
    assert "│     8 │    8 │      0 │       0 │       0 │" in status.stdout


# A fault injection that costs ~40 s quiet (two Ray starts): run by make test-faults;
# the SIGTERM test of test_exit_codes.py keeps the same resume path in make test.
@pytest.mark.faults
def test_driver_killed_midway_then_resume_gives_every_cell_once(tmp_path, stripe_spec, ray_session):
    spec = stripe_spec(
        name="killed", grid={"width": [8], "seed": [0, 1, 2]}, flow={"max_steps": 1500}
    )  # 6 cells of ~1 s each
    campaign = tmp_path / "results" / "killed"
    driver = subprocess.Popen(
        [str(PHASEGRID), "run", str(spec), "--store", str(tmp_path / "results")],
        cwd=REPO,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not list(campaign.glob("cells/*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        stop_group(driver, grace=0)  # Ray's agents outlive a SIGKILLed driver
    committed = len(list(campaign.glob("cells/*.parquet")))
    assert 1 <= committed < 6, "the kill must land mid-campaign"
    status = cli("status", str(campaign))
    assert (
        status.exit_code == 0 and f"│     6 │ {committed:4d} │      0 │       0 │" in status.stdout
    ), status.stdout

    resumed = cli("resume", str(campaign))
    assert resumed.exit_code == 0, resumed.stdout
    assert f"{committed} already done, ran {6 - committed}" in resumed.stdout.replace("\n", " ")
    assert_complete(str(campaign), 6)
    assert len(load_results(str(campaign)).measurements.groupby("cell_id")) == 6


# A separately started head costs ~30 s quiet; tests/cluster/ runs a campaign against a
# separately started two-node cluster in make test. Run by make test-faults.
@pytest.mark.faults
def test_campaign_on_a_separately_started_ray_cluster(tmp_path, stripe_spec):
    port = free_port()
    temp_dir = Path("/tmp") / f"pg-ray-{port}"  # private: other Ray sessions never see it
    head = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            "--block",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--include-dashboard=false",
            "--num-cpus",
            "2",
            "--disable-usage-stats",
            "--temp-dir",
            str(temp_dir),
        ],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        spec = stripe_spec(grid={"seed": [0]})
        done = phasegrid(
            "run", str(spec), "--store", str(tmp_path / "results"), "--address", f"127.0.0.1:{port}"
        )
        assert done.returncode == 0, done.stderr
    finally:
        stop_group(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    cells = assert_complete(str(tmp_path / "results" / "stripe-small"), 4)
    assert cells.host.notna().all() and (cells.device == "cpu").all()


def test_bad_spec_gives_its_error_exit_2_and_writes_nothing(tmp_path):
    spec = tmp_path / "bad.toml"
    text = (REPO / "campaigns" / "stripe_small.toml").read_text()
    spec.write_text(
        text.replace("width = [8, 16]", "width = [8, -16]").replace(
            "[loss]", '[loss]\nkinds = "hinge"'
        )
    )
    store = tmp_path / "store"
    result = phasegrid("run", str(spec), "--store", str(store))
    assert result.returncode == 2
    assert "grid.width" in result.stderr and "-16" in result.stderr
    assert "kinds" in result.stderr
    assert not store.exists()
    missing = cli("resume", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "no campaign at" in missing.output
    assert not (tmp_path / "nowhere").exists()


def test_status_shows_a_running_cell_and_its_live_curve_only_while_a_driver_holds_it(tmp_path):
    from pipeline.execute.stream import MeasurementBatch, run_cell
    from pipeline.spec.campaign import load_campaign
    from pipeline.store.campaign_store import ParquetStore
    from pipeline.store.rows import manifest_table, measurements_table

    spec = load_campaign(REPO / "campaigns" / "stripe_small.toml")
    cell = spec.cells()[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray worker
    try:
        events = list(run_cell(cell, flush_seconds=0.0))
    finally:
        torch.set_num_threads(threads)
    batches = [e for e in events if isinstance(e, MeasurementBatch)][:4]
    store = ParquetStore.open(str(tmp_path / "campaign"), create=True)
    store.write_spec(spec.to_dict(), "")
    store.extend_manifest(manifest_table([cell]))
    store.start_attempt(cell.cell_id, events[0].attempt_id, {})
    for batch in batches:
        store.write_live_part(
            cell.cell_id,
            batch.attempt_id,
            batch.index,
            measurements_table(cell, list(batch.measurements)),
        )
    with store.lock():  # a driver is running the cell
        shown = cli("status", store.uri, "--live", cell.cell_id[:6])
        assert shown.exit_code == 0, shown.output
        assert "│     1 │    0 │      0 │       1 │       0 │" in shown.stdout
        assert f"live: cell {cell.cell_id}" in shown.stdout
        steps = [m.step for b in batches for m in b.measurements]
        table = shown.stdout.split(f"attempt {events[0].attempt_id}")[1]
        assert [
            int(line.split("│")[1]) for line in table.splitlines() if line.startswith("│")
        ] == steps
        assert len(load_results(store.uri, live=True).live_measurements) == len(steps)
    dead = cli("status", store.uri)  # its driver died: not running
    assert "│     1 │    0 │      0 │       0 │       1 │" in dead.stdout


def test_data_list_shows_the_synthetic_datasets():
    shown = cli("data", "list")
    assert shown.exit_code == 0
    rows = [line for line in shown.stdout.splitlines() if line.startswith("│ stripe")]
    assert rows and "yes" in rows[0] and "synthetic" in rows[0]
    assert cli("data", "locate", "stripe").stdout.strip() == "synthetic"
    unknown = cli("data", "locate", "imagenet")
    assert unknown.exit_code == 2 and "valid names" in unknown.output
