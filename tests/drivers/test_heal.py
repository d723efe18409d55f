"""Stale aggregates are flagged by `load_results`, and a damaged manifest.parquet or
spec.json is reported by `status` and rebuilt by `resume` (issue 13, cases 6 and 7)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import load_results
from pipeline.cli import app
from pipeline.drivers.run import run_spec
from pipeline.execute.local import LocalExecutor
from pipeline.spec.campaign import load_campaign_text
from pipeline.store.staleness import StaleAggregatesWarning


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def run_local(spec_path: Path, store: Path) -> str:
    spec, text = load_campaign_text(spec_path)
    return run_spec(spec, text, str(store), LocalExecutor()).campaign


@pytest.fixture
def campaign(tmp_path, stripe_spec, one_torch_thread) -> tuple[str, Path]:
    """A 3-cell campaign whose aggregates were computed when it had 2 done cells."""
    flow = {"max_steps": 100}
    grid = {"width": [8], "alpha_tilde": [1.0]}
    store = tmp_path / "results"
    run_local(stripe_spec(grid={**grid, "seed": [0, 1]}, flow=flow), store)
    assert cli("aggregate", str(store / "stripe-small")).exit_code == 0
    grown = stripe_spec(grid={**grid, "seed": [0, 1, 2]}, flow=flow)
    return run_local(grown, store), grown


def test_load_results_warns_when_aggregates_are_older_than_the_cells(campaign):
    path, _ = campaign
    with pytest.warns(StaleAggregatesWarning, match="from 2 done cells, the campaign now has 3"):
        stale = load_results(path)
    assert stale.ensembles["n_seeds"].tolist() == [2]  # stored as it was: not recomputed
    assert cli("aggregate", path).exit_code == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleAggregatesWarning)
        assert load_results(path).ensembles["n_seeds"].tolist() == [3]


def test_a_truncated_manifest_is_reported_then_rebuilt_by_resume(campaign):
    path, _ = campaign
    manifest = Path(path) / "manifest.parquet"
    manifest.write_bytes(manifest.read_bytes()[:100])
    status = cli("status", path)
    assert status.exit_code == 0 and "manifest.parquet" in status.stderr
    resumed = cli("resume", path)
    assert resumed.exit_code == 0, resumed.output
    out = " ".join(resumed.stdout.split())
    assert "rebuilt manifest.parquet from the stored spec (3 cells)" in out
    assert "3 already done, ran 0" in out
    healed = load_results(path)
    assert len(healed.manifest) == 3 and set(healed.manifest.cell_id) == set(healed.cells.cell_id)
    assert "│     3 │    3 │" in cli("status", path).stdout


def test_a_truncated_spec_json_is_reported_then_rebuilt_from_spec_toml(campaign):
    path, _ = campaign
    spec_json = Path(path) / "spec.json"
    whole = json.loads(spec_json.read_text())
    spec_json.write_text(spec_json.read_text()[:40])
    status = cli("status", path)
    assert status.exit_code == 0 and "damaged: spec.json unreadable" in status.stderr
    resumed = cli("resume", path)
    assert resumed.exit_code == 0, resumed.output
    assert "rebuilt spec.json from spec.toml" in " ".join(resumed.stdout.split())
    assert json.loads(spec_json.read_text()) == whole
    assert "damaged" not in cli("status", path).stderr
