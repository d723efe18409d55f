"""write_compacted (pipeline/store/bulk_parts.py): done cells stored straight into
compacted parts hold exactly the rows their per-cell files held, `status` counts every
cell done, `resume --deep` finds nothing to quarantine or run, and cells stored already
are refused with nothing written. Real cells, in process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest

import results_schema as rs
from pipeline.drivers.run import resume_campaign
from pipeline.drivers.status import campaign_status
from pipeline.execute.local import LocalExecutor
from pipeline.store import compaction
from pipeline.store.bulk_parts import write_compacted
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.names import PER_CELL
from support.store_campaigns import assert_same_rows, loaded_tables, raw_tables, run_local

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def per_cell_tables(campaign: Path) -> dict:
    return {
        t: pads.dataset(campaign / t, schema=rs.schema_of(t)).to_table()
        for t in PER_CELL
        if (campaign / t).exists() and any((campaign / t).iterdir())
    }


def test_cells_written_compacted_are_the_cells_committed_one_by_one(
    tmp_path, stripe_spec, monkeypatch
):
    spec = stripe_spec(name="bulk", flow={"max_steps": 60}, grid={"seed": [0, 1]})
    committed = Path(run_local(spec, tmp_path / "one-by-one").campaign)
    bulk = tmp_path / "bulk" / "bulk"
    bulk.mkdir(parents=True)
    for name in ("spec.json", "spec.toml", "manifest.parquet"):
        shutil.copy(committed / name, bulk / name)
    tables = per_cell_tables(committed)
    ids = tables["cells"]["cell_id"].to_pylist()
    monkeypatch.setattr(compaction, "CELLS_PER_PART", 3)
    chunks = [
        {
            t: table.filter(pc.is_in(table["cell_id"], pa.array(ids[i : i + 3])))
            for t, table in tables.items()
        }
        for i in (0, 3, 6)
    ]
    store = ParquetStore.open(str(bulk))
    with store.lock():
        run, written = write_compacted(store.location, chunks)
    assert written == 8
    assert sorted(p.name for p in (bulk / "cells").iterdir()) == [
        compaction.part_name(run, k) for k in range(3)
    ]
    assert_same_rows(raw_tables(committed), raw_tables(bulk))
    assert_same_rows(loaded_tables(committed), loaded_tables(bulk))
    status = campaign_status(str(bulk))
    assert (status.total, status.done, status.pending, status.corrupt) == (8, 8, 0, ())
    summary = resume_campaign(str(bulk), executor=LocalExecutor(), deep=True)
    assert (summary.already_done, summary.done, summary.quarantined) == (8, 0, ())
    with store.lock(), pytest.raises(ValueError, match="stored already"):
        write_compacted(store.location, chunks[:1])
    assert len(list((bulk / "cells").iterdir())) == 3
    assert not any((bulk / "_compact").iterdir())
