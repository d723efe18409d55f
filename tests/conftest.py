"""Shared fixtures: one embedded Ray for the session, tiny stripe campaign specs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STRIPE_SMALL = REPO / "campaigns" / "stripe_small.toml"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(spec: dict) -> str:
    """A two-level dict (top-level keys, then [sections]) as TOML text."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    for section, table in spec.items():
        if isinstance(table, dict):
            lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def one_torch_thread():
    """Tiny nets: a second OpenMP thread only adds contention on a shared 2-core CPU
    (measured: the flow tests ran 131 s with two threads, 8.5 s with one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def stripe_spec(tmp_path):
    """`stripe_spec(name=..., grid={...}, flow={...})` writes campaigns/stripe_small.toml
    with those sections updated into tmp_path and returns its path."""

    def write(name: str = "stripe-small", **sections: dict) -> Path:
        spec = tomllib.loads(STRIPE_SMALL.read_text())
        spec["name"] = name
        for section, values in sections.items():
            spec[section] = {**spec.get(section, {}), **values}
        path = tmp_path / f"{name}.toml"
        path.write_text(to_toml(spec))
        return path

    return write


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray (2 CPUs) shared by the tests that run cells in-process."""
    from pipeline.execute.ray_session import start_ray

    session = start_ray(num_cpus=2)
    yield session
    session.close()


@pytest.fixture
def moto_s3(monkeypatch):
    """A moto S3 server on loopback with the bucket `phase`, counting its requests
    (benchmarks/moto_s3.py); AWS_* test credentials set for this process and its children."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    from benchmarks.moto_s3 import CREDENTIALS, moto_s3

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    with moto_s3() as server:
        yield server
