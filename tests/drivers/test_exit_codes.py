"""Exit codes a batch system can trust (issue 13, cases 1, 4 and 8): 3 when cells failed,
143 on SIGTERM with the exact, shell-quoted `phasegrid resume` line, and that line run
as printed completes every cell exactly once; a log that is not a terminal gets plain
progress lines at a fixed period, and no Ray warnings."""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from drivers.test_cli import PHASEGRID, REPO, assert_complete, env
from typer.testing import CliRunner

from pipeline.cli import app
from support.fault_tools import stop_group
from support.spec_examples import RELU_PAPER


def write_idx(path: Path, array: np.ndarray, truncate_to: int | None = None) -> None:
    """An IDX file (gzipped); with `truncate_to`, only that many data bytes are kept."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(header + data[:truncate_to]))


def damaged_mnist(root: Path) -> Path:
    """An MNIST folder whose label files are whole (so the pre-flight finds 10 x 25
    examples) but whose training images are cut short: every cell fails reading them."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 200), ("t10k", 50)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 255, (n, 28, 28))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        truncate = 1000 if prefix == "train" else None
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, truncate)
    return root


def test_failed_cells_exit_3_with_the_summary(tmp_path, stripe_spec, ray_session):
    data = damaged_mnist(tmp_path / "data")
    spec = stripe_spec(
        name="damaged",
        data={
            "dataset": "mnist",
            "data_dir": str(data),
            "dimension": 5,
            "train_size": 16,
            "test_size": 32,
            "kernel_size": 16,
        },
        grid={"width": [8], "seed": [0]},
    )
    done = CliRunner().invoke(app, ["run", str(spec), "--store", str(tmp_path / "results")])
    assert done.exit_code == 3, done.output
    assert "0 done, 2 failed" in done.stdout.replace("\n", " ")
    assert "phasegrid status" in done.stdout and "phasegrid resume" in done.stdout
    campaign = str(tmp_path / "results" / "damaged")
    state = json.loads(CliRunner().invoke(app, ["status", campaign, "--json"]).stdout)
    assert (state["total"], state["done"], state["failed"]) == (2, 0, 2)
    assert all("truncated or corrupt" in f["first_error_line"] for f in state["failures"])
    prefix = state["failures"][0]["cell_id"][:8]
    shown = CliRunner().invoke(app, ["logs", campaign, prefix])
    assert shown.exit_code == 0, shown.output
    assert f"cell {state['failures'][0]['cell_id']}: failed" in shown.stdout
    assert "Traceback (most recent call last)" in shown.stdout  # the full error, not a line
    assert "truncated or corrupt" in shown.stdout
    assert CliRunner().invoke(app, ["logs", campaign, "zzz"]).exit_code == 2


def test_stalled_cells_exit_3_and_are_listed(tmp_path, ray_session):
    spec = tmp_path / "relu-paper.toml"  # the paper's controller stalls on a relu kink
    spec.write_text(
        RELU_PAPER.replace("width = [8, 32]", "width = [8]").replace(
            "alpha_tilde = [1.0, 1e4]", "alpha_tilde = [1.0]"
        )
    )
    done = CliRunner().invoke(app, ["run", str(spec), "--store", str(tmp_path / "results")])
    assert done.exit_code == 3, done.output
    out = done.stdout.replace("\n", " ")
    assert "2 done, 0 failed" in out and "2 cells stalled" in out and "euler-heun" in out
    assert len([x for x in done.stdout.splitlines() if x.startswith("stalled ")]) == 2


def test_help_documents_the_exit_codes():
    shown = CliRunner().invoke(app, ["-h"])
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.replace("│", " ").split())
    for code in ("0 every cell done", "2 bad input", "3 some cells failed", "143 terminated"):
        assert code in text, code
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("phasegrid ")


def test_sigterm_exits_143_with_the_quoted_resume_line_which_completes_every_cell_once(
    tmp_path, stripe_spec, ray_session
):
    spec = stripe_spec(
        name="preempted", grid={"width": [8], "seed": [0, 1, 2]}, flow={"max_steps": 1500}
    )  # 6 cells of ~1 s each
    store = tmp_path / "my results"  # a space: the printed line must quote it
    campaign = store / "preempted"
    driver = subprocess.Popen(
        [str(PHASEGRID), "run", str(spec), "--store", str(store)],
        cwd=REPO,
        env={**env(), "PHASEGRID_PROGRESS_SECONDS": "0.5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not list(campaign.glob("cells/*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(driver.pid, signal.SIGTERM)
        stdout, stderr = driver.communicate(timeout=60)
    finally:
        stop_group(driver, grace=1)
    assert driver.returncode == 143, stdout + stderr
    assert "PC: @" not in stderr and "SIGTERM received" not in stderr
    assert "Token authentication" not in stderr  # embedded Ray's warnings are silenced
    # stderr is a pipe, not a terminal: plain progress lines, one every 0.5 s
    progress = [x for x in stderr.splitlines() if re.match(r"\d{4}-\d\d-\d\dT.*Z cells: \d+/6 ", x)]
    assert len(progress) >= 3, stderr
    committed = len(list(campaign.glob("cells/*.parquet")))
    assert 1 <= committed < 6, "the signal must land mid-campaign"
    (line,) = [x for x in stderr.splitlines() if "continue with: " in x]
    command = line.split("continue with: ", 1)[1]
    assert command == f"phasegrid resume {shlex.quote(str(campaign))}"
    words = shlex.split(command)
    resumed = CliRunner().invoke(app, words[1:])  # in process, on the session's Ray
    assert resumed.exit_code == 0, resumed.output
    assert f"{committed} already done, ran {6 - committed}" in resumed.stdout.replace("\n", " ")
    assert_complete(str(campaign), 6)
