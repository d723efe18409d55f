"""Helpers of the cluster tests (tests/cluster/test_cluster.py) and the Ray pre-flight
tests: free ports, process inspection, the loopback two-node cluster of cluster/slurm/."""

from __future__ import annotations

import dataclasses
import math
import os
import selectors
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
RAY_UP = CLUSTER / "slurm" / "ray-up.sh"
SBATCH = CLUSTER / "slurm" / "phasegrid.sbatch"
SMALL_CAMPAIGN = REPO / "campaigns" / "stripe_small.toml"
VENV_BIN = Path(sys.executable).parent  # holds ray, python and phasegrid
STOP_GRACE_S = 20


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports free on loopback right now."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def base_env(**extra: str) -> dict[str, str]:
    """This environment with the venv first on PATH and no Ray address or auth inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def bash(script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run `script` in bash after sourcing the helper."""
    return subprocess.run(
        ["bash", "-c", f'source "{RAY_UP}"\n{script}'],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Processes are read from /proc (Linux): psutil is not a dependency (Ray only vendors it).
def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...], or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def command_line(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (our private temp dir)."""
    return [pid for pid in all_pids() if text in command_line(pid) and alive(pid)]


def campaign_cell_count(spec: Path) -> int:
    """Cells in a spec's grid: the product of its swept axes' distinct values."""
    from pipeline.spec.schema import CampaignModel

    grid = CampaignModel.model_validate(tomllib.loads(spec.read_text())).grid
    sizes = [
        len(axis.values()) if hasattr(axis, "values") else len(set(axis))
        for axis in dict(grid).values()
        if axis is not None
    ]
    return math.prod(sizes)


@dataclasses.dataclass
class LoopbackCluster:
    """A head and a worker started by ray-up.sh in one bash that waits for a line to stop."""

    shell: subprocess.Popen
    address: str
    temp_dir: Path
    env: dict[str, str]  # what a client needs: PATH, RAY_AUTH_MODE, token path
    waited: str  # the line pg_ray_wait_nodes printed
    started: list[int]  # pids of everything the shell had started
    stop_seconds: float | None = None

    def stop(self) -> None:
        if self.stop_seconds is not None:
            return
        t0 = time.monotonic()
        self.shell.stdin.write("stop\n")
        self.shell.stdin.flush()
        read_until(self.shell, "STOPPED", timeout=STOP_GRACE_S * 2 + 10)
        self.shell.wait(timeout=10)
        self.stop_seconds = time.monotonic() - t0


def read_until(shell: subprocess.Popen, marker: str, timeout: float) -> str:
    """The first stdout line of `shell` starting with `marker`; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(shell.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = shell.stdout.readline()
            if not line:
                pytest.fail(f"the helper's shell ended before printing {marker!r}")
            if line.startswith(marker):
                return line.strip()
    pytest.fail(f"no {marker!r} from the helper's shell within {timeout} s")


CLUSTER_SCRIPT = """
source "{ray_up}"
pg_ray_auth_setup || exit 1
echo "AUTH $RAY_AUTH_MODE $RAY_AUTH_TOKEN_PATH"
common="--num-cpus=1 --object-store-memory=80000000"
pg_ray_start_head 127.0.0.1 {port} $common --temp-dir={temp} --include-dashboard=false \
    --ray-client-server-port={client} --dashboard-agent-listen-port={agent1} \
    >{temp}/head.log 2>&1
pg_ray_start_worker 127.0.0.1:{port} $common --node-ip-address=127.0.0.1 \
    --dashboard-agent-listen-port={agent2} >{temp}/worker.log 2>&1
pg_ray_wait_nodes 127.0.0.1:{port} 2 90
echo "WAITED $?"
read -r _
pg_ray_stop
echo STOPPED
"""
