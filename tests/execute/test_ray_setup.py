"""pipeline/execute/ray_session.py's pre-flight, against a real `ray start --head` on
loopback started WITHOUT auth (RAY_AUTH_MODE=disabled): a token-mode driver joins it but
gets no task result
back (measured: InvalidAuthToken in the worker logs), so start_ray must fail with the clear
message within PHASEGRID_RAY_PREFLIGHT_S; a driver with the same (disabled) mode passes.
The head has its own temp dir and ports and is stopped by its process group only (never
`ray stop`: other engineers' Ray sessions run on this machine). Each driver runs in a
process of its own (Ray keeps per-process state, and pytest may hold an embedded Ray)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cluster_tools import base_env, free_ports
from support.fault_tools import stop_group

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PREFLIGHT_S = 15
DRIVER = """
import sys, time
from pipeline.execute.ray_session import RayConnectError, start_ray
t0 = time.monotonic()
try:
    session = start_ray(sys.argv[1])
except RayConnectError as err:
    print(f"SECONDS {time.monotonic() - t0:.1f}")
    print(f"ERROR {err}")
    sys.exit(1)
print(f"SECONDS {time.monotonic() - t0:.1f}")
print("OK")
session.close()
"""

pytestmark = pytest.mark.faults  # two drivers, one waits out its pre-flight: > 20 s


@pytest.fixture(scope="module")
def unauthenticated_head() -> Iterator[str]:
    """`ray start --head --block` with RAY_AUTH_MODE=disabled; yields its address."""
    temp_dir = Path(tempfile.mkdtemp(prefix="pgrs", dir="/tmp"))  # short: Unix sockets
    port, client, agent, metrics = free_ports(4)
    head = subprocess.Popen(
        [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=1",
            "--object-store-memory=80000000",
            f"--temp-dir={temp_dir}",
            "--include-dashboard=false",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}",
            f"--metrics-export-port={metrics}",
        ],
        env=base_env(RAY_AUTH_MODE="disabled"),
        cwd=REPO,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=(temp_dir / "head.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(temp_dir / "head.log", "Ray runtime started", head, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        stop_group(head, grace=10)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    """Wait until `log` contains `text` (Ray decorates its lines, so not a line prefix)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            pytest.fail(f"ray start ended: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"no {text!r} within {timeout} s: {log.read_text(errors='replace')[-3000:]}")


def drive(address: str, **auth: str) -> tuple[int, float, str]:
    """start_ray(address) in a driver process: (exit code, seconds start_ray took, output)."""
    log = tempfile.TemporaryFile(mode="w+")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, address],
        cwd=REPO,
        env=base_env(PHASEGRID_RAY_PREFLIGHT_S=str(PREFLIGHT_S), **auth),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        driver.wait(timeout=PREFLIGHT_S + 120)
    finally:
        stop_group(driver)
    log.seek(0)
    text = log.read()
    seconds = next(
        (float(line.split()[1]) for line in text.splitlines() if line.startswith("SECONDS ")),
        float("nan"),
    )
    return driver.returncode, seconds, text


def test_a_driver_with_the_clusters_auth_mode_passes_the_preflight(unauthenticated_head):
    code, seconds, text = drive(unauthenticated_head, RAY_AUTH_MODE="disabled")
    assert code == 0 and "OK" in text, text[-3000:]
    assert seconds < PREFLIGHT_S, text[-3000:]


def test_a_token_driver_on_a_cluster_without_auth_fails_clearly_in_bounded_time(
    unauthenticated_head,
):
    t0 = time.monotonic()
    code, seconds, text = drive(
        unauthenticated_head, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=uuid.uuid4().hex
    )
    wall = time.monotonic() - t0
    assert code == 1, text[-3000:]
    error = next(line for line in text.splitlines() if line.startswith("ERROR "))
    assert f"did not run a test task within {PREFLIGHT_S} s" in error
    assert "token-auth mismatch" in error and "RAY_AUTH_MODE=disabled on both" in error
    assert "cluster/README.md" in error
    assert PREFLIGHT_S <= seconds < PREFLIGHT_S + 30, text[-3000:]  # bounded, not a hang
    assert wall < PREFLIGHT_S + 90
