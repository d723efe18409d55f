"""A lost node: `ray.cluster_utils.Cluster` on this machine (a head with no CPUs, two
worker nodes of one CPU each, node death detected within seconds), `phasegrid run
--address` as a real driver process, and one worker node removed (its raylet and workers
killed) while it trains a cell that has a snapshot. The driver resubmits the cell; it
continues from the snapshot on the other node, and the store ends right: every cell once,
each equal to an uninterrupted run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from support.fault_tools import (
    assert_rows_are_the_uninterrupted_runs,
    assert_store_is_right,
    env,
    live_attempts,
    output,
    start,
    stop_group,
)

pytestmark = pytest.mark.faults
HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
}  # a dead node is noticed in ~2 s


def runs_under(pid: int, ancestor: int) -> bool:
    """Whether process `pid` descends from `ancestor` (a worker from its node's raylet),
    read from /proc (psutil is not a dependency)."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])  # the parent's pid
        if pid == ancestor:
            return True
    return False


def watch(campaign: Path, seen: dict[str, dict], nodes: dict[str, int]) -> None:
    """Add to `seen` (attempt_id -> its _attempt.json: cell_id, pid, resumed_step, ...)
    the attempts now in _live/, each with the name of the node its worker runs on."""
    for info in live_attempts(campaign):
        if info["attempt_id"] not in seen:
            info["node"] = next(
                (name for name, raylet in nodes.items() if runs_under(info["pid"], raylet)), None
            )
            seen[info["attempt_id"]] = info


CLUSTER_HOST = """
import json, sys
from ray.cluster_utils import Cluster
health, temp_dir = json.loads(sys.argv[1]), sys.argv[2]
cluster = Cluster(initialize_head=True, connect=False, head_node_args=dict(
    num_cpus=0, include_dashboard=False, temp_dir=temp_dir, _system_config=health))
nodes = [cluster.add_node(num_cpus=1, temp_dir=temp_dir) for _ in range(2)]
cluster.wait_for_nodes()
raylets = [node.all_processes["raylet"][0].process.pid for node in nodes]
print(json.dumps({"address": cluster.address, "raylets": raylets}), flush=True)
for line in sys.stdin:
    if not line.startswith("remove"):
        break
    cluster.remove_node(nodes[int(line.split()[1])], allow_graceful=False)
    print("removed", flush=True)
cluster.shutdown()
"""


@pytest.fixture
def cluster():
    """The Cluster lives in a process of its own (Ray keeps per-process state, and this
    pytest process may hold an embedded Ray), with token auth as Ray 2.60 clusters have
    by default and a token of its own, which the driver inherits. (A token driver gets
    no streamed result back from workers of a cluster without auth: measured, it hangs.)
    Yields (address, [raylet pid of each worker node], remove(i))."""
    temp_dir = tempfile.mkdtemp(prefix="pg-ray-", dir="/tmp")  # other Ray sessions never see it
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    host = subprocess.Popen(
        [sys.executable, "-c", CLUSTER_HOST, json.dumps(HEALTH), temp_dir],
        env=env(**auth),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )

    def remove(index: int) -> None:
        host.stdin.write(f"remove {index}\n")
        host.stdin.flush()
        assert host.stdout.readline().strip() == "removed"

    try:
        info = json.loads(host.stdout.readline())
        yield info["address"], info["raylets"], remove, auth
    finally:
        try:
            host.communicate("quit\n", timeout=60)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            pass
        stop_group(host)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_cells_of_a_lost_node_finish_on_the_other_node(tmp_path, stripe_spec, cluster):
    address, (lost, kept), remove, auth = cluster
    spec = stripe_spec(
        name="lost-node",
        grid={"width": [8], "seed": [0, 1]},  # 4 cells
        flow={"max_steps": 1500},
        resources={"checkpoint_every_seconds": 0.3},
    )
    campaign = tmp_path / "results" / "lost-node"
    driver = start(
        "run", str(spec), "--store", str(tmp_path / "results"), "--address", address, **auth
    )
    seen: dict[str, dict] = {}
    nodes = {"lost": lost, "kept": kept}
    try:
        victim = None
        deadline = time.monotonic() + 240
        while victim is None and time.monotonic() < deadline and driver.poll() is None:
            watch(campaign, seen, nodes)
            victim = next(
                (
                    i
                    for i in seen.values()
                    if i["node"] == "lost"
                    and (campaign / "_checkpoints" / f"{i['cell_id']}.parquet").exists()
                ),
                None,
            )
            time.sleep(0.05)
        assert victim is not None, "no cell with a snapshot ran on the node to remove"
        remove(0)
        while driver.poll() is None and time.monotonic() < deadline:
            watch(campaign, seen, nodes)
            time.sleep(0.05)
        driver.wait(timeout=60)
    finally:
        stop_group(driver)
    assert driver.returncode == 0, output(driver)[-3000:]
    assert_store_is_right(str(campaign), 4)
    assert assert_rows_are_the_uninterrupted_runs(str(campaign)) > 4 * 256
    retries = [
        i
        for i in seen.values()
        if i["cell_id"] == victim["cell_id"] and i["attempt_id"] != victim["attempt_id"]
    ]
    assert [(r["node"], r["resumed_step"] > 0) for r in retries] == [("kept", True)]
    cells = pd.read_parquet(campaign / "cells").set_index("cell_id")
    assert cells.attempts[victim["cell_id"]] == 2 and (cells.status == "done").all()
