"""The in-process executor stores what the Ray executor stores: same cells, same
measurements, real provenance; a task body that raises fails its cells visibly."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from pipeline import load_results
from pipeline.drivers.run import run_spec
from pipeline.execute.local import LocalExecutor
from pipeline.execute.scheduler import RayExecutor
from pipeline.spec.campaign import load_campaign_text

VALUES = ["cell_id", "status", "steps", "train_loss", "test_error", "n_unsatisfied", "stop_reason"]


def run_with(executor, spec_path, store: str) -> pd.DataFrame:
    spec, text = load_campaign_text(spec_path)
    summary = run_spec(spec, text, store, executor)
    assert (summary.done, summary.failed) == (4, 0)
    return summary.campaign


@pytest.mark.usefixtures("one_torch_thread", "ray_session")
def test_local_and_ray_executors_store_the_same_rows(tmp_path, stripe_spec):
    spec = stripe_spec(grid={"seed": [0]})
    local = load_results(run_with(LocalExecutor(), spec, str(tmp_path / "local")))
    with RayExecutor() as executor:
        on_ray = load_results(run_with(executor, spec, str(tmp_path / "ray")))
    columns = [c for c in VALUES if c in local.cells]
    mine = local.cells[columns].sort_values("cell_id").reset_index(drop=True)
    theirs = on_ray.cells[columns].sort_values("cell_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=1e-5)
    keys = ["cell_id", "step"]
    a = local.measurements.sort_values(keys).reset_index(drop=True)
    b = on_ray.measurements.sort_values(keys).reset_index(drop=True)
    assert a[keys].equals(b[keys]) and len(a) > 4
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)
    # provenance is real, not faked: this host, one attempt, the installed code version
    assert (local.cells["host"] == socket.gethostname()).all()
    assert (local.cells["attempts"] == 1).all() and local.cells["attempt_id"].str.len().eq(12).all()
    assert local.cells["code_version"].str.startswith("phasegrid ").all()


def test_a_task_body_that_raises_fails_its_cells_with_the_traceback(
    tmp_path, stripe_spec, monkeypatch
):
    from pipeline.execute import local

    def broken(specs, flush_seconds, resumes=None):
        raise RuntimeError("planted failure outside train_cell")
        yield

    monkeypatch.setattr(local, "bundle_task", broken)
    spec, text = load_campaign_text(stripe_spec(grid={"seed": [0]}))
    summary = run_spec(spec, text, str(tmp_path), LocalExecutor())
    assert (summary.done, summary.failed) == (0, 4)
    cells = load_results(summary.campaign).cells
    assert (cells["status"] == "failed").all()
    assert cells["error"].str.contains("planted failure outside train_cell").all()
