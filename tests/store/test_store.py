"""The Parquet store without Ray: the schema contract, atomic commits and their recovery,
failed cells replaced by done ones, and live rows of dead attempts never mixed in.

Cells are trained for real (in-process `train_cell`, via the scheduler's `run_cell`)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
import torch

import results_schema as rs
from pipeline.execute.sink import StoreSink
from pipeline.execute.stream import AttemptFinished, AttemptStarted, MeasurementBatch, run_cell
from pipeline.spec.campaign import load_campaign
from pipeline.store.campaign_store import (
    COMMIT,
    PENDING,
    CampaignLockedError,
    CampaignNotFoundError,
    ParquetStore,
)
from pipeline.store.rows import Provenance, done_tables, failed_cell_table, manifest_table, utc_now
from tasks.records import KERNEL_PCA_COLUMNS, CellResult, Measurement

REPO = Path(__file__).resolve().parents[2]
TABLES = ("cells", "measurements", "predictions", "kernels")


@pytest.fixture(scope="module")
def cells():
    """Two tiny stripe cells of campaigns/stripe_small.toml (d=5, P=64, h=8)."""
    spec = load_campaign(REPO / "campaigns" / "stripe_small.toml")
    return [
        dataclasses.replace(c, flow=dataclasses.replace(c.flow, max_steps=200))
        for c in spec.cells()[:2]
    ]


@pytest.fixture(scope="module")
def events(cells):
    """The real event stream of one attempt of each cell (a batch per measurement); one
    torch thread, as in a Ray worker (much faster on a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {c.cell_id: list(run_cell(c, flush_seconds=0.0)) for c in cells}
    finally:
        torch.set_num_threads(threads)


def provenance(attempt: str = "a", attempts: int = 1) -> Provenance:
    return Provenance(attempt, attempts, "host", "cpu", "test", utc_now(), utc_now())


def finished(events) -> AttemptFinished:
    return next(e for e in events if isinstance(e, AttemptFinished))


def read(campaign: str, table: str) -> pd.DataFrame:
    return pd.read_parquet(f"{campaign}/{table}")


def new_store(tmp_path, cells) -> ParquetStore:
    store = ParquetStore.open(str(tmp_path / "campaign"), create=True)
    store.extend_manifest(manifest_table(cells))
    return store


def test_readme_is_generated_from_the_schemas():
    generated = subprocess.run(
        [sys.executable, "-m", "results_schema"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (REPO / "results_schema" / "README.md").read_text() == generated
    for name, schema in rs.TABLES.items():
        assert schema.metadata[rs.VERSION_KEY] == str(rs.SCHEMA_VERSION).encode()
        for field in schema:
            assert field.metadata[b"description"].strip(), (name, field.name)
            assert f"| `{field.name}` |" in generated


def test_minimum_columns_of_the_issue_and_record_fields_are_in_the_schemas():
    minimum = {
        "cells": "cell_id width alpha_tilde alpha train_size seed depth n_params status "
        "stop_reason fitted train_loss n_unsatisfied test_error ntk_change steps "
        "flow_time wall_seconds error",
        "measurements": "cell_id step flow_time train_loss n_unsatisfied train_error test_error",
        "predictions": "cell_id test_index test_output test_label",
        "kernels": "cell_id ntk_norm_initial ntk_norm_final ntk_change h0_eigenvalues "
        + " ".join(KERNEL_PCA_COLUMNS),
    }
    for table, columns in minimum.items():
        assert set(columns.split()) <= set(rs.schema_of(table).names), table
    arrays = {
        "test_outputs",
        "test_labels",
        "h0_eigenvalues",
        *KERNEL_PCA_COLUMNS,
        "weights_initial",
        "weights_final",
    }
    result_fields = {f.name for f in dataclasses.fields(CellResult)} - arrays
    assert result_fields <= set(rs.CELLS.names)
    assert {f.name for f in dataclasses.fields(Measurement)} <= set(rs.MEASUREMENTS.names)


def test_validate_names_each_mismatch(cells, events):
    table = done_tables(cells[0], finished(events[cells[0].cell_id]).result, [], provenance())[
        "cells"
    ]
    rs.validate("cells", table)
    broken = table.drop_columns(["seed"]).append_column("sede", pa.array([0]))
    broken = broken.set_column(broken.schema.get_field_index("width"), "width", pa.array([8.0]))
    with pytest.raises(rs.SchemaError) as error:
        rs.validate("cells", broken)
    message = str(error.value)
    assert "missing columns ['seed']" in message and "unknown columns ['sede']" in message
    assert "'width' has type double" in message
    nulls = table.set_column(0, "cell_id", pa.array([None], pa.string()))
    with pytest.raises(rs.SchemaError, match="'cell_id' has 1 nulls"):
        rs.validate("cells", nulls)
    with pytest.raises(rs.SchemaError, match="known tables"):
        rs.validate("cell", table)


def test_committed_cell_reads_back_with_pandas_and_duckdb(tmp_path, cells, events):
    store = new_store(tmp_path, cells)
    cell = cells[0]
    end = finished(events[cell.cell_id])
    store.commit(cell.cell_id, done_tables(cell, end.result, list(end.measurements), provenance()))
    campaign = store.location.root
    for table in TABLES:
        frame = read(campaign, table)
        assert list(frame.columns) == rs.schema_of(table).names
        count = duckdb.sql(f"select count(*) from '{campaign}/{table}/*.parquet'").fetchall()
        assert count[0][0] == len(frame)
    measured = read(campaign, "measurements")
    assert measured["step"].tolist() == [m.step for m in end.measurements]
    assert measured["train_loss"].tolist() == [m.train_loss for m in end.measurements]
    predictions = read(campaign, "predictions")
    assert predictions["test_output"].tolist() == pytest.approx(end.result.test_outputs.tolist())
    assert len(predictions) == cell.data.test_size
    row = read(campaign, "cells").iloc[0]
    assert (row.status, row.width, row.alpha_tilde, row.seed) == ("done", 8, 0.1, 0)
    assert row.alpha == pytest.approx(0.1 / 8**0.5)


def test_crash_before_the_commit_marker_is_discarded_by_recovery(tmp_path, cells, events):
    store = new_store(tmp_path, cells)
    cell = cells[0]
    end = finished(events[cell.cell_id])
    store.write_pending(
        cell.cell_id, done_tables(cell, end.result, list(end.measurements), provenance())
    )
    for table in TABLES:  # nothing visible: pending files live under _pending/
        assert read(store.location.root, table).empty
    assert store.recover() == (0, 1)
    assert not store.location.listdir(PENDING)
    assert store.cell_states() == {}


def test_crash_in_the_middle_of_the_moves_is_finished_by_recovery(tmp_path, cells, events):
    store = new_store(tmp_path, cells)
    cell = cells[0]
    end = finished(events[cell.cell_id])
    tables = done_tables(cell, end.result, list(end.measurements), provenance())
    store.write_pending(cell.cell_id, tables)
    store.location.write_bytes(
        f"{PENDING}/{cell.cell_id}/{COMMIT}", b'["cells", "kernels", "measurements", "predictions"]'
    )
    store.location.move(
        f"{PENDING}/{cell.cell_id}/measurements.parquet", f"measurements/{cell.cell_id}.parquet"
    )  # then the driver died
    assert store.cell_states() == {}  # the cells record is the last file moved
    assert store.recover() == (1, 0)
    assert store.recover() == (0, 0)
    campaign = store.location.root
    assert store.cell_states() == {cell.cell_id: ("done", 1)}
    assert len(read(campaign, "measurements")) == len(end.measurements)
    assert len(read(campaign, "predictions")) == cell.data.test_size
    assert len(read(campaign, "kernels")) == 1


def test_failed_cell_is_replaced_by_its_done_rerun(tmp_path, cells, events):
    store = new_store(tmp_path, cells)
    cell = cells[1]
    store.commit(
        cell.cell_id,
        {"cells": failed_cell_table(cell, "Traceback ...\nOops: boom", provenance("first", 1))},
    )
    assert store.cell_states() == {cell.cell_id: ("failed", 1)}
    end = finished(events[cell.cell_id])
    store.commit(
        cell.cell_id, done_tables(cell, end.result, list(end.measurements), provenance("second", 2))
    )
    rows = read(store.location.root, "cells")
    assert len(rows) == 1 and rows.status.iloc[0] == "done" and rows.attempts.iloc[0] == 2
    assert rows.error.isna().all()
    assert len(read(store.location.root, "measurements")) == len(end.measurements)
    # and a failure recorded over a done cell leaves no stale data rows behind
    store.commit(cell.cell_id, {"cells": failed_cell_table(cell, "x", provenance("third", 3))})
    for table in ("measurements", "predictions", "kernels"):
        assert read(store.location.root, table).empty


def test_live_rows_of_a_dead_attempt_are_never_mixed_in(tmp_path, cells, events):
    """Attempt A streams some rows and dies; attempt B starts, A's late batch arrives, B
    finishes: the live view and the committed rows hold B's rows only."""
    store = new_store(tmp_path, cells)
    cell = cells[0]
    stream = events[cell.cell_id]
    batches = [e for e in stream if isinstance(e, MeasurementBatch)]
    start, end = stream[0], finished(stream)
    sink = StoreSink(store, {}, 1, None)
    dead = dataclasses.replace(start, attempt_id="dead-attempt")
    sink.started(dead, cell)
    for batch in batches[:3]:
        sink.batch(dataclasses.replace(batch, attempt_id="dead-attempt"), cell)
    assert store.read_live(cell.cell_id).num_rows == 3
    sink.started(start, cell)  # the retry
    sink.batch(dataclasses.replace(batches[3], attempt_id="dead-attempt"), cell)  # too late
    for batch in batches[:2]:
        sink.batch(batch, cell)
    live = store.read_live(cell.cell_id).to_pandas()
    assert set(live.attempt_id) == {start.attempt_id}
    assert live.step.tolist() == [m.step for b in batches[:2] for m in b.measurements]
    sink.finished(end, cell, attempts=2)
    assert store.read_live().num_rows == 0 and not store.live_attempts()
    stored = read(store.location.root, "measurements")
    assert stored.step.tolist() == [m.step for m in end.measurements]
    assert not stored.duplicated(["cell_id", "step"]).any()
    assert read(store.location.root, "cells").attempt_id.tolist() == [start.attempt_id]


def test_cell_exception_becomes_a_failed_record_with_its_traceback(tmp_path, cells):
    store = new_store(tmp_path, cells)
    bad = dataclasses.replace(
        cells[0], observables=dataclasses.replace(cells[0].observables, dtype="float16")
    )
    stream = list(run_cell(bad))
    assert isinstance(stream[0], AttemptStarted)
    end = finished(stream)
    assert end.result is None and "Traceback" in end.error and "float16" in end.error
    sink = StoreSink(store, {}, 1, None)
    sink.started(stream[0], bad)
    sink.finished(end, bad, attempts=1)
    row = read(store.location.root, "cells").iloc[0]
    assert row.status == "failed" and "dtype" in row.error and pd.isna(row.stop_reason)


def test_one_driver_per_campaign(tmp_path, cells):
    store = new_store(tmp_path, cells)
    with store.lock():
        with pytest.raises(CampaignLockedError, match="in use by another phasegrid driver"):
            with ParquetStore.open(store.uri).lock():
                pass
    with ParquetStore.open(store.uri).lock():  # released
        pass


def test_manifest_grows_without_duplicates_and_missing_campaign_is_explained(tmp_path, cells):
    store = new_store(tmp_path, cells[:1])
    assert store.extend_manifest(manifest_table(cells)) == 1
    assert store.extend_manifest(manifest_table(cells)) == 0
    assert store.manifest()["cell_id"].to_pylist() == [c.cell_id for c in cells]
    with pytest.raises(CampaignNotFoundError, match="phasegrid run"):
        ParquetStore.open(str(tmp_path / "nowhere"))
