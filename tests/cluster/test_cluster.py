"""cluster/: the launcher files carry what their tools require, and the Slurm helper's Ray
start / wait / stop logic works for real: a head and a worker node on loopback, each with
its own ports and a private temp dir (so embedded Ray sessions of other tests on this machine
neither see it nor get stopped by it)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support.cluster_tools import (
    CLUSTER,
    CLUSTER_SCRIPT,
    RAY_UP,
    REPO,
    SBATCH,
    SMALL_CAMPAIGN,
    STOP_GRACE_S,
    VENV_BIN,
    LoopbackCluster,
    alive,
    base_env,
    bash,
    campaign_cell_count,
    descendants,
    free_ports,
    process_name,
    processes_mentioning,
    read_until,
)


@pytest.fixture(scope="module")
def loopback_cluster() -> Iterator[LoopbackCluster]:
    # Short path: Ray's Unix sockets live under it and are limited to ~107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="pgray", dir="/tmp"))
    port, client, agent1, agent2 = free_ports(4)
    env = base_env(PG_RAY_TOKEN_FILE=str(temp_dir / "token"), PG_RAY_STOP_GRACE_S=str(STOP_GRACE_S))
    script = CLUSTER_SCRIPT.format(
        ray_up=RAY_UP, port=port, temp=temp_dir, client=client, agent1=agent1, agent2=agent2
    )
    shell = subprocess.Popen(
        ["bash", "-c", script],
        env=env,
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    started: list[int] = []
    try:
        _, mode, token_path = read_until(shell, "AUTH", timeout=30).split()
        waited = read_until(shell, "WAITED", timeout=150)
        started = descendants(shell.pid)
        client_env = {**env, "RAY_AUTH_MODE": mode, "RAY_AUTH_TOKEN_PATH": token_path}
        cluster = LoopbackCluster(shell, f"127.0.0.1:{port}", temp_dir, client_env, waited, started)
        yield cluster
        cluster.stop()
    finally:
        _last_resort_cleanup(shell, started, temp_dir)


def _last_resort_cleanup(shell: subprocess.Popen, started: list[int], temp_dir: Path) -> None:
    """Kill only what this module started (by pid and by its private temp dir), never `ray stop`."""
    if shell.poll() is None:
        shell.stdin.close()  # EOF: the script's `read` returns, it stops Ray
        try:
            shell.wait(timeout=STOP_GRACE_S * 2 + 10)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
    leftovers = [pid for pid in started if alive(pid)]
    leftovers += processes_mentioning(str(temp_dir))
    for pid in set(leftovers):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in leftovers) and time.monotonic() < deadline:
        time.sleep(0.2)
    shutil.rmtree(temp_dir, ignore_errors=True)


def raylets(temp_dir: Path) -> list[int]:
    return [pid for pid in processes_mentioning(str(temp_dir)) if process_name(pid) == "raylet"]


# --- the Slurm helper, for real, on loopback ------------------------------------------


def test_helper_starts_a_head_and_a_worker_that_join(loopback_cluster: LoopbackCluster) -> None:
    assert loopback_cluster.waited == "WAITED 0"
    # Independent of ray.nodes(): one raylet per node, both under our temp dir.
    assert len(raylets(loopback_cluster.temp_dir)) == 2
    assert loopback_cluster.env["RAY_AUTH_MODE"] == "token"
    token = Path(loopback_cluster.env["RAY_AUTH_TOKEN_PATH"])
    assert token.stat().st_mode & 0o077 == 0, "the per-job token must be private to its owner"


def test_waiting_for_more_nodes_than_joined_fails_within_its_timeout(
    loopback_cluster: LoopbackCluster,
) -> None:
    t0 = time.monotonic()
    done = bash(
        f"pg_ray_wait_nodes {loopback_cluster.address} 3 4", loopback_cluster.env, timeout=60
    )
    elapsed = time.monotonic() - t0
    assert done.returncode == 1, done.stdout + done.stderr
    assert "only 2 of 3 nodes joined" in done.stdout
    assert 4 <= elapsed < 4 + 20  # the bound holds; 20 s covers importing ray here


def test_waiting_for_an_absent_head_fails_within_its_timeout() -> None:
    (port,) = free_ports(1)
    t0 = time.monotonic()
    done = bash(f"pg_ray_wait_nodes 127.0.0.1:{port} 1 2", base_env(), timeout=30)
    assert done.returncode == 1
    assert "no Ray head answers" in done.stdout
    assert time.monotonic() - t0 < 10


@pytest.mark.skipif(
    importlib.util.find_spec("pipeline.cli") is None,
    reason="pipeline/cli.py (phasegrid run --address) not written yet",
)
@pytest.mark.skipif(not SMALL_CAMPAIGN.exists(), reason="campaigns/stripe_small.toml absent")
def test_campaign_runs_against_the_two_node_cluster(
    loopback_cluster: LoopbackCluster, tmp_path: Path
) -> None:
    import pandas as pd

    logs = loopback_cluster.temp_dir / "session_latest" / "logs"
    drivers_before = set(logs.glob("python-core-driver-*"))
    done = subprocess.run(
        [
            str(VENV_BIN / "phasegrid"),
            "run",
            str(SMALL_CAMPAIGN),
            "--store",
            str(tmp_path),
            "--address",
            loopback_cluster.address,
        ],
        env=loopback_cluster.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The driver joined this cluster (its log is in our session), not an embedded Ray.
    assert set(logs.glob("python-core-driver-*")) - drivers_before
    name = tomllib.loads(SMALL_CAMPAIGN.read_text())["name"]
    cells = pd.read_parquet(tmp_path / name / "cells")
    assert len(cells) == campaign_cell_count(SMALL_CAMPAIGN)
    assert cells["cell_id"].is_unique
    assert (cells["status"] == "done").all(), cells[["cell_id", "status", "error"]]


def test_stop_leaves_no_ray_process_behind(
    loopback_cluster: LoopbackCluster, tmp_path: Path
) -> None:
    """Runs last in this module: it stops the shared cluster."""
    # A bystander that `ray stop` would kill (it matches processes by the name "raylet"),
    # standing in for other jobs' Ray on the same node: the helper must leave it alone.
    fake_raylet = tmp_path / "raylet"
    shutil.copy(shutil.which("sleep"), fake_raylet)
    bystander = subprocess.Popen([str(fake_raylet), "120"])
    try:
        loopback_cluster.stop()
        assert bystander.poll() is None, "the helper stopped a Ray process it did not start"
    finally:
        bystander.kill()
        bystander.wait()
    assert loopback_cluster.shell.returncode == 0
    assert loopback_cluster.stop_seconds < STOP_GRACE_S, "stopped by SIGKILL, not SIGTERM"
    assert not [pid for pid in loopback_cluster.started if alive(pid)]
    assert not processes_mentioning(str(loopback_cluster.temp_dir))
    assert not Path(loopback_cluster.env["RAY_AUTH_TOKEN_PATH"]).exists()


# --- the sbatch script end to end, with srun and scontrol stand-ins -------------------

FAKE_SRUN = """#!/bin/bash
# srun stand-in: drop srun's options, run the command on this machine.
while [[ $# -gt 0 && $1 == -* ]]; do case $1 in -w|--nodelist) shift 2;; *) shift;; esac; done
exec "$@"
"""
FAKE_SCONTROL = """#!/bin/bash
[[ $1 == show && $2 == hostnames ]] && tr ',' '\\n' <<<"$3"
"""


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("pipeline.cli") is None,
    reason="pipeline/cli.py (phasegrid run --address) not written yet",
)
@pytest.mark.skipif(not SMALL_CAMPAIGN.exists(), reason="campaigns/stripe_small.toml absent")
def test_sbatch_script_runs_a_campaign_on_two_nodes(tmp_path: Path) -> None:
    import pandas as pd

    fake = tmp_path / "bin"
    fake.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    temp_dir = Path(tempfile.mkdtemp(prefix="pgray", dir="/tmp"))
    port, client, agent1, agent2 = free_ports(4)
    env = base_env(
        SLURM_JOB_NODELIST="node1,node2",
        SLURM_SUBMIT_DIR=str(REPO),
        SLURM_JOB_ID="test",
        SLURM_CPUS_PER_TASK="1",
        SLURM_GPUS_PER_TASK="0",
        PG_VENV=str(VENV_BIN.parent),
        PG_HEAD_IP="127.0.0.1",
        PG_RAY_PORT=str(port),
        PG_RAY_TOKEN_FILE=str(temp_dir / "tok"),
        PG_RAY_HEAD_ARGS=f"--temp-dir={temp_dir} --include-dashboard=false "
        f"--ray-client-server-port={client} "
        f"--dashboard-agent-listen-port={agent1} --object-store-memory=80000000",
        PG_RAY_WORKER_ARGS=f"--dashboard-agent-listen-port={agent2} --object-store-memory=80000000",
    )
    env["PATH"] = f"{fake}{os.pathsep}{env['PATH']}"
    try:
        done = subprocess.run(
            ["bash", str(SBATCH), str(SMALL_CAMPAIGN), str(tmp_path / "st")],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "2 of 2 nodes alive" in done.stdout
        name = tomllib.loads(SMALL_CAMPAIGN.read_text())["name"]
        cells = pd.read_parquet(tmp_path / "st" / name / "cells")
        assert len(cells) == campaign_cell_count(SMALL_CAMPAIGN)
        assert not processes_mentioning(str(temp_dir)), "the sbatch trap left Ray running"
    finally:
        _last_resort_cleanup(subprocess.Popen(["true"], stdin=subprocess.PIPE), [], temp_dir)


# --- the launcher files ---------------------------------------------------------------


def test_shell_scripts_parse() -> None:
    for script in (RAY_UP, SBATCH):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    directives = [line for line in SBATCH.read_text().splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --ntasks-per-node=1" in directives, "one Ray node per Slurm node"
    if shutil.which("shellcheck"):
        done = subprocess.run(
            ["shellcheck", "-x", str(RAY_UP), str(SBATCH)], capture_output=True, text=True, cwd=REPO
        )
        assert done.returncode == 0, done.stdout


def launcher_config() -> dict:
    return yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())


def test_cluster_launcher_yaml_passes_rays_own_checks() -> None:
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(launcher_config()))  # what `ray up` checks offline
    broken = {**launcher_config(), "head_node": {}, "max_workerz": 3}
    with pytest.raises(jsonschema.ValidationError, match="max_workerz"):  # the check can fail
        validate_config(prepare_config(broken))


def test_cluster_launcher_yaml_has_gpu_workers_token_auth_and_the_checkout() -> None:
    config = launcher_config()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    gpu_families = ("g4dn", "g5", "g6", "p3", "p4d", "p5")
    assert workers and all(
        w["node_config"]["InstanceType"].startswith(gpu_families) for w in workers
    )
    assert head["resources"].get("CPU") == 0, "the head should not train"
    assert config["file_mounts"]["~/phasegrid"] == "."
    assert "~/.ray/auth_token" in config["file_mounts"]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in config[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c for c in start), key
    setup = " ".join(config["setup_commands"])
    assert "download.pytorch.org/whl/cu" in setup, "a CUDA build of torch"


def rayjob_documents() -> tuple[dict, dict]:
    job, config_map = yaml.safe_load_all((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    return job, config_map


def test_rayjob_has_what_kuberay_requires() -> None:
    job, _ = rayjob_documents()
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["entrypoint"].startswith("phasegrid run ")
    assert "--store s3://" in spec["entrypoint"]
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and "rayStartParams" in group
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        container = group["template"]["spec"]["containers"][0]
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert int(limits["nvidia.com/gpu"]) >= 1
        assert requests.get("nvidia.com/gpu", limits["nvidia.com/gpu"]) == limits["nvidia.com/gpu"]


def test_rayjob_campaign_is_mounted_where_the_entrypoint_reads_it() -> None:
    job, config_map = rayjob_documents()
    spec_path = Path(job["spec"]["entrypoint"].split()[2])
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mount = next(
        m for m in head["containers"][0]["volumeMounts"] if m["mountPath"] == str(spec_path.parent)
    )
    volume = next(v for v in head["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    text = config_map["data"][spec_path.name]
    schema = pytest.importorskip("pipeline.spec.schema")
    campaign = schema.CampaignModel.model_validate(tomllib.loads(text))
    assert campaign.resources.gpus_per_task > 0 and campaign.observables.device == "cuda"
