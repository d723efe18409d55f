"""`phasegrid run` checks spec, device, resources, store and --address before it writes a
file or starts Ray: each failure is one line with the fix, exit code 2, and the store is
byte-identical afterwards (issue 13, cases 2, 3 and 8's slow rejection)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import ray
import torch
from typer.testing import CliRunner

from pipeline.cli import app


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones too) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path) -> Path:
    """A store that already holds something, so "untouched" means something."""
    root = tmp_path / "store"
    (root / "other-campaign").mkdir(parents=True)
    (root / "other-campaign" / "spec.toml").write_text('name = "other"\n')
    return root


def refused(*args: str, env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run the CLI in process; it must exit 2 without starting Ray. Returns (stderr, s)."""
    ray_before = ray.is_initialized()
    start = time.monotonic()
    result = CliRunner().invoke(app, list(args), env=env)
    seconds = time.monotonic() - start
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert ray_before or not ray.is_initialized(), "pre-flight must not start Ray"
    return result.stderr, seconds


def error_lines(stderr: str, n: int) -> list[str]:
    """The `n` problems of a refused run, one line each, and nothing else on stderr."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == n and lines[0].startswith("error: "), stderr
    return lines


def one_error_line(stderr: str) -> str:
    return error_lines(stderr, 1)[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_cuda_on_a_cpu_only_torch_is_refused_before_anything_is_written(stripe_spec, store):
    before = snapshot(store)
    spec = stripe_spec(observables={"device": "cuda"}, resources={"gpus_per_task": 1})
    stderr, _ = refused("run", str(spec), "--store", str(store))
    cuda, gpus = error_lines(stderr, 2)  # each problem on its line
    assert 'device = "cuda"' in cuda and "no CUDA" in cuda and "CUDA build of torch" in cuda
    assert "1 GPU" in gpus and "this machine has 0" in gpus
    assert snapshot(store) == before


def test_cuda_without_a_gpu_per_task_is_refused(stripe_spec, store):
    spec = stripe_spec(observables={"device": "cuda"})
    line = one_error_line(refused("run", str(spec), "--store", str(store))[0])
    assert "gpus_per_task = 0" in line and "set gpus_per_task" in line


@pytest.mark.parametrize(
    "resources, needle",
    [({"cpus_per_task": 64}, "64 CPU"), ({"gpus_per_task": 1}, "1 GPU")],
)
def test_a_task_shape_this_machine_cannot_place_is_refused(stripe_spec, store, resources, needle):
    if "gpus_per_task" in resources and torch.cuda.device_count() >= 1:
        pytest.skip("this machine has a GPU")
    before = snapshot(store)
    line = one_error_line(
        refused("run", str(stripe_spec(resources=resources)), "--store", str(store))[0]
    )
    assert needle in line and "this machine has" in line and "lower it" in line
    assert snapshot(store) == before


def test_a_store_that_cannot_be_written_is_refused(stripe_spec, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    line = one_error_line(
        refused("run", str(stripe_spec()), "--store", str(blocker / "results"))[0]
    )
    assert "is a file, not a directory" in line and "--store" in line
    assert blocker.read_text() == "not a directory\n"


def test_a_closed_address_fails_at_once_naming_it(stripe_spec, store):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = snapshot(store)
    stderr, seconds = refused(
        "run", str(stripe_spec()), "--store", str(store), "--address", f"127.0.0.1:{port}"
    )
    line = one_error_line(stderr)
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in line
    assert "leave --address" in line and seconds < 15
    assert snapshot(store) == before


def test_an_address_that_never_answers_fails_within_the_bound(stripe_spec, store):
    with socket.socket() as server:  # listening, backlog full: connects hang, as to a dead host
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        for _ in range(8):  # fill the accept queue
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            stderr, seconds = refused(
                "run",
                str(stripe_spec()),
                "--store",
                str(store),
                "--address",
                f"127.0.0.1:{port}",
                env={"PHASEGRID_ADDRESS_TIMEOUT_S": "2"},
            )
        finally:
            for filler in fillers:
                filler.close()
    line = one_error_line(stderr)
    assert f"127.0.0.1:{port}" in line and "at most 2 s" in line
    assert 1.5 < seconds < 10


def test_a_bad_spec_is_rejected_before_any_progress_bar(tmp_path, stripe_spec):
    spec = stripe_spec(grid={"width": [8, -16]})
    stderr, seconds = refused("run", str(spec), "--store", str(tmp_path / "store"))
    assert "grid.width" in stderr and "-16" in stderr
    assert "cells" not in stderr.split("error:")[0]  # no bar drawn before the error
    assert not (tmp_path / "store").exists() and seconds < 10
