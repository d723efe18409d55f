"""CLI conventions (issue 13, case 9): `run --dry-run` plans without writing, `--set
key=value` overrides a spec key and is recorded in the stored spec; each cell records the
torch, numpy, ray and CUDA versions of the worker that trained it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import ray
import torch
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.spec.overrides import with_overrides_applied


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_dry_run_plans_cells_tasks_and_cost_and_writes_nothing(tmp_path, stripe_spec):
    store = tmp_path / "results"
    plan = cli("run", str(stripe_spec()), "--store", str(store), "--dry-run")
    assert plan.exit_code == 0, plan.output
    text = " ".join(plan.stdout.split())
    assert "8 cells (8 new, 0 done already), would run 8 in" in text
    assert "at most 2,400 flow steps" in text  # 8 cells x max_steps 300
    assert not store.exists()
    shorter = cli(
        "run", str(stripe_spec()), "--store", str(store), "--dry-run", "--set", "flow.max_steps=50"
    )
    assert "at most 400 flow steps" in " ".join(shorter.stdout.split())


def test_bad_overrides_are_refused_naming_the_key(tmp_path, stripe_spec):
    store = tmp_path / "results"
    for bad, needle in (("nokey", "not KEY=VALUE"), ("flow.max_stepz=3", "max_stepz")):
        refused = cli("run", str(stripe_spec()), "--store", str(store), "--set", bad)
        assert refused.exit_code == 2 and needle in refused.stderr, refused.output
    assert not store.exists()


def test_an_override_is_recorded_in_the_stored_spec(tmp_path, stripe_spec, ray_session):
    store = tmp_path / "results"
    spec = stripe_spec(grid={"width": [8], "alpha_tilde": [1.0], "seed": [0]})
    done = cli("run", str(spec), "--store", str(store), "--set", "flow.max_steps=50")
    assert done.exit_code == 0, done.output
    campaign = store / "stripe-small"
    assert json.loads((campaign / "spec.json").read_text())["flow"]["max_steps"] == 50
    toml_text = (campaign / "spec.toml").read_text()
    assert "max_steps = 300" in toml_text and "--set flow.max_steps=50" in toml_text
    assert with_overrides_applied(toml_text, "spec.toml")["flow"]["max_steps"] == 50
    cells = pd.read_parquet(campaign / "cells")
    assert cells["max_steps"].tolist() == [50]
    # provenance per cell, from the Ray worker that trained it
    assert cells["torch_version"].tolist() == [torch.__version__]
    assert cells["numpy_version"].tolist() == [np.__version__]
    assert cells["ray_version"].tolist() == [ray.__version__]
    cuda = cells["cuda_version"].iloc[0]
    assert cuda == torch.version.cuda if torch.version.cuda else pd.isna(cuda)  # CPU build: null
    again = cli("run", str(spec), "--store", str(store), "--set", "flow.max_steps=50", "--dry-run")
    assert "1 cells (0 new, 1 done already), would run 0" in " ".join(again.stdout.split())
