"""The DataFrame door of the store (what aggregate, plot, refine and reproduction use):
aggregates are written with page CRCs, and a damaged page is caught on read, warned about
with the file's path and left out, never averaged in as wrong numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import results_schema as rs
from pipeline.store.frames import AGGREGATE_FILE, read_table, write_table
from pipeline.store.reading import CorruptFileWarning


def ensembles_frame(n: int = 400) -> pd.DataFrame:
    """`n` rows of the ensembles schema: every number distinct, every string set."""
    rng = np.random.default_rng(0)
    columns = {}
    for field in rs.ENSEMBLES:
        if pa.types.is_floating(field.type):
            columns[field.name] = rng.random(n)
        elif pa.types.is_boolean(field.type):
            columns[field.name] = rng.random(n) > 0.5
        elif pa.types.is_integer(field.type):
            columns[field.name] = rng.integers(1, 1000, n)
        else:
            columns[field.name] = ["x"] * n
    return pd.DataFrame(columns)


def damage_a_value(path, offset_fraction: float = 0.3) -> None:
    """Flip one byte inside the first column's data page (values, not the page header)."""
    meta = pq.ParquetFile(path).metadata.row_group(0).column(0)
    start, size = meta.data_page_offset, meta.total_compressed_size
    data = bytearray(path.read_bytes())
    data[start + int(size * (1 - offset_fraction))] ^= 0xFF
    path.write_bytes(bytes(data))


def test_an_aggregate_round_trips_with_its_schema(tmp_path):
    frame = ensembles_frame()
    write_table(str(tmp_path), "ensembles", frame)
    back = read_table(str(tmp_path), "ensembles")
    assert list(back.columns) == list(pd.read_parquet(tmp_path / "ensembles").columns)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert not list(tmp_path.glob("ensembles/*.tmp"))  # temp name renamed away


def test_a_damaged_page_of_an_aggregate_is_named_and_left_out(tmp_path):
    write_table(str(tmp_path), "ensembles", ensembles_frame())
    path = tmp_path / "ensembles" / AGGREGATE_FILE
    damage_a_value(path)
    with pytest.warns(CorruptFileWarning, match=AGGREGATE_FILE):
        back = read_table(str(tmp_path), "ensembles")
    assert back.empty


def test_without_page_crcs_the_same_damage_reads_as_numbers(tmp_path):
    """The oracle for the test above: the damage is one a plain Parquet write cannot see."""
    path = tmp_path / "plain.parquet"
    frame = ensembles_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="none", use_dictionary=False)
    damage_a_value(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = pq.read_table(path).to_pandas()
    first = frame.columns[0]
    assert len(back) == len(frame) and not back[first].equals(frame[first])
