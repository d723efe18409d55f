"""Compaction (pipeline/store/compaction.py): every row kept exactly once, new cells land
beside the compacted files, pandas and duckdb still read each table directly, and a
damaged compacted file is reported and its cells re-run. Real cells, in process."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import load_results
from pipeline.drivers.compact import compact_campaign
from pipeline.drivers.run import resume_campaign
from pipeline.drivers.status import campaign_status
from pipeline.execute.local import LocalExecutor
from pipeline.store import compaction
from pipeline.store.location import Location
from pipeline.store.quarantine import CorruptFileWarning
from support.store_campaigns import (
    TABLES,
    assert_same_rows,
    loaded_tables,
    raw_tables,
    run_local,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
GRID = {"width": [8, 16], "alpha_tilde": [0.1, 100.0], "seed": [0, 1]}  # 8 cells


def spec_of(stripe_spec, compact: bool, **grid) -> Path:
    return stripe_spec(
        name="compacted",
        grid={**GRID, **grid},
        flow={"max_steps": 100},
        observables={"weights": True},  # the optional weights table too
        resources={"compact_when_done": compact},
    )


def files(campaign: Path, table: str) -> list[str]:
    return sorted(p.name for p in (campaign / table).glob("*.parquet"))


@pytest.fixture
def campaign(tmp_path, stripe_spec) -> Path:
    """8 done cells stored per cell (compaction at the end switched off)."""
    summary = run_local(spec_of(stripe_spec, compact=False), tmp_path / "results")
    assert summary.done == 8 and not summary.compacted
    return Path(summary.campaign)


def test_compaction_keeps_every_row_exactly_once(campaign, monkeypatch):
    monkeypatch.setattr(compaction, "CELLS_PER_PART", 3)  # 8 cells: parts of 3, 3, 2 cells
    before = raw_tables(campaign)
    keys = ["cell_id", "checkpoint", "neuron"]
    weights = pd.read_parquet(campaign / "weights").sort_values(keys).reset_index(drop=True)
    assert len(weights) == 4 * 2 * 8 + 4 * 2 * 16  # (start, end) × h neurons per cell
    report = compact_campaign(str(campaign))
    assert (report.cells, report.files_before, report.files_after) == (8, 40, 15)
    assert all(name.startswith("part-") for name in files(campaign, "weights"))
    after = pd.read_parquet(campaign / "weights").sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(after, weights, obj="weights")
    for table in TABLES:
        assert all(name.startswith("part-") for name in files(campaign, table)), table
        rows = duckdb.sql(f"select count(*) from '{campaign}/{table}/*.parquet'").fetchall()
        assert rows[0][0] == len(before[table]), table
    assert_same_rows(before, raw_tables(campaign))
    assert_same_rows(before, loaded_tables(campaign))
    cells = pd.concat(  # the parts in name order hold the cells in grid order
        pd.read_parquet(campaign / "cells" / name) for name in files(campaign, "cells")
    )
    keys = ["width", "alpha_tilde", "train_size", "depth", "seed", "cell_id"]
    assert cells[keys].equals(cells[keys].sort_values(keys)) and len(cells) == 8
    assert (
        pq.ParquetFile(campaign / "cells" / files(campaign, "cells")[0]).metadata.num_row_groups
        == 1
    )
    assert compact_campaign(str(campaign)).run is None  # nothing left to compact


def test_a_grown_grid_after_compaction_adds_only_the_new_cells_rows(
    campaign, tmp_path, stripe_spec
):
    compact_campaign(str(campaign))
    compacted = raw_tables(campaign)
    grown = run_local(spec_of(stripe_spec, compact=False, seed=[0, 1, 2]), tmp_path / "results")
    assert (grown.already_done, grown.done) == (8, 4)
    assert len(files(campaign, "cells")) == 1 + 4  # one part, four new per-cell files
    after = raw_tables(campaign)
    new = set(after["cells"].cell_id) - set(compacted["cells"].cell_id)
    assert len(new) == 4 and len(after["cells"]) == 12
    for table in TABLES:
        old_rows = after[table].loc[~after[table].cell_id.isin(new)].reset_index(drop=True)
        pd.testing.assert_frame_equal(old_rows, compacted[table], obj=table)
    assert_same_rows(after, loaded_tables(campaign))
    # the next run with every cell done compacts the new cells into a second part
    again = run_local(spec_of(stripe_spec, compact=True, seed=[0, 1, 2]), tmp_path / "results")
    assert again.done == 0 and "compacted 4 done cells" in again.compacted
    assert len(files(campaign, "cells")) == 2
    assert_same_rows(after, raw_tables(campaign))


def test_a_run_that_ends_with_every_cell_done_compacts_unless_switched_off(tmp_path, stripe_spec):
    on = run_local(spec_of(stripe_spec, compact=True), tmp_path / "on")
    assert "compacted 8 done cells" in on.compacted
    assert [len(files(Path(on.campaign), t)) for t in TABLES] == [1, 1, 1, 1]
    off = run_local(spec_of(stripe_spec, compact=False), tmp_path / "off")
    assert [len(files(Path(off.campaign), t)) for t in TABLES] == [8, 8, 8, 8]
    volatile = ["host", "attempt_id", "started_at", "finished_at", "wall_seconds"]
    same = lambda tables: {t: f.drop(columns=volatile, errors="ignore") for t, f in tables.items()}
    assert_same_rows(same(raw_tables(Path(off.campaign))), same(raw_tables(Path(on.campaign))))


def test_failed_cells_stay_per_cell_and_are_rerun_beside_the_parts(campaign):
    victim = sorted(campaign.glob("cells/*.parquet"))[0]
    record = pq.read_table(victim)
    for name, value in (("status", "failed"), ("error", "Boom: test")):
        column = pa.array([value], record.schema.field(name).type)
        record = record.set_column(record.schema.get_field_index(name), name, column)
    Location.open(str(campaign)).write_parquet(f"cells/{victim.name}", record)  # as a failure
    compact_campaign(str(campaign))
    assert victim.exists() and len(files(campaign, "cells")) == 2
    assert campaign_status(str(campaign)).failed == 1
    resume_campaign(str(campaign), executor=LocalExecutor())
    loaded = load_results(str(campaign))
    assert (loaded.cells.status == "done").sum() == 8 and loaded.cells.cell_id.is_unique
    assert len(files(campaign, "cells")) == 2  # the re-run cell compacted into a second part


def damage_page(path: Path) -> None:
    """Zero 64 bytes a third into the file: the footer reads, a page's CRC fails."""
    data = path.read_bytes()
    middle = len(data) // 3
    path.write_bytes(data[:middle] + bytes(64) + data[middle + 64 :])
    with pytest.raises(OSError, match="CRC"):
        pq.read_table(path, page_checksum_verification=True)


def test_a_damaged_compacted_file_is_reported_and_its_cells_run_again(campaign, monkeypatch):
    """A truncated part (its footer fails: `status` sees it) and a part with a bad page
    (only a full read sees it: readers and resume), as for per-cell files."""
    monkeypatch.setattr(compaction, "CELLS_PER_PART", 4)  # two parts of 4 cells
    before = raw_tables(campaign)
    compact_campaign(str(campaign))
    chunks = json.loads(next((campaign / "_compacted").glob("*.json")).read_text())["chunks"]
    truncated = campaign / "measurements" / files(campaign, "measurements")[0]
    truncated.write_bytes(truncated.read_bytes()[:200])
    bad_page = campaign / "predictions" / files(campaign, "predictions")[1]
    damage_page(bad_page)

    state = campaign_status(str(campaign))
    assert [c.path for c in state.corrupt] == [f"measurements/{truncated.name}"]
    assert set(state.corrupt[0].cells) == set(chunks[0])
    assert (state.total, state.done, state.pending) == (8, 4, 4)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loaded = load_results(str(campaign))
    named = " ".join(str(w.message) for w in seen if w.category is CorruptFileWarning)
    assert truncated.name in named and bad_page.name in named
    assert set(loaded.measurements.cell_id) == set(chunks[1])
    assert set(loaded.predictions.cell_id) == set(chunks[0])

    summary = resume_campaign(str(campaign), executor=LocalExecutor())
    assert (summary.already_done, summary.done) == (0, 8)
    moved = [line.split(" -> ")[0] for line in summary.quarantined]
    every_table = (*TABLES, "weights")
    assert sorted(moved) == sorted(
        f"{t}/{p.name}" for t in every_table for p in (truncated, bad_page)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptFileWarning)
        after = raw_tables(campaign)
        assert campaign_status(str(campaign)).done == 8
    kept = ["cell_id", "step", "test_index", "train_loss", "test_output", "ntk_change", "width"]
    for table in TABLES:  # same cells, same numbers (the re-run is deterministic)
        columns = [c for c in kept if c in before[table]]
        pd.testing.assert_frame_equal(after[table][columns], before[table][columns], obj=table)
