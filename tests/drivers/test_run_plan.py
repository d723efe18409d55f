"""Planning a run (pipeline/drivers/run_plan.py): a run with nothing to do reports the
same cells and stalls as the run that did the work, without building the spec's cells;
a stored spec with a cell left, or a changed spec, is planned in full. Real cells, in
process."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.drivers.run_plan import read_records, spec_done
from pipeline.spec.campaign import CampaignSpec, load_campaign_text
from pipeline.store.campaign_store import ParquetStore
from support.spec_examples import RELU_PAPER
from support.store_campaigns import run_local

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PER_CELL = {"compact_when_done": False}  # one file per cell: one can be deleted


def test_a_run_with_nothing_to_do_reports_its_stalls_without_building_its_cells(
    tmp_path, monkeypatch
):
    spec = tmp_path / "relu-paper.toml"  # the paper's controller stalls on a relu kink
    spec.write_text(RELU_PAPER.replace("width = [8, 32]", "width = [8]"))
    first = run_local(spec, tmp_path / "results")
    assert (first.requested, first.done) == (4, 4) and len(first.stalled) >= 1

    def no_cells(self):
        raise AssertionError("a run with nothing to do built the spec's cells")

    monkeypatch.setattr(CampaignSpec, "cells", no_cells)
    again = run_local(spec, tmp_path / "results")
    assert (again.requested, again.already_done, again.done, again.added) == (4, 4, 0, 0)
    assert sorted(again.stalled) == sorted(first.stalled)


def test_a_stored_spec_with_a_cell_left_or_a_changed_spec_is_planned_in_full(tmp_path, stripe_spec):
    path = stripe_spec(flow={"max_steps": 40}, grid={"seed": [0]}, resources=PER_CELL)
    first = run_local(path, tmp_path / "results")
    store = ParquetStore.open(first.campaign)
    spec, _ = load_campaign_text(path)
    assert spec_done(store, spec, read_records(store))
    grown, _ = load_campaign_text(
        stripe_spec(flow={"max_steps": 40}, grid={"seed": [0, 1]}, resources=PER_CELL)
    )
    assert not spec_done(store, grown, read_records(store))
    path = stripe_spec(
        flow={"max_steps": 40}, grid={"seed": [0]}, resources=PER_CELL
    )  # (same file, rewritten)
    gone = sorted(Path(first.campaign, "cells").glob("*.parquet"))[0]
    gone.unlink()
    assert not spec_done(store, spec, read_records(store))
    again = run_local(path, tmp_path / "results")
    assert (again.requested, again.already_done, again.done) == (4, 3, 1)
