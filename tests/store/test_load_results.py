"""`load_results(campaign, tables=, columns=, filters=)` returns exactly the rows and
columns that a full read followed by the same pandas selection returns, on a campaign of
compacted parts and per-cell files together."""

from __future__ import annotations

import shutil
import tomllib
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pytest
from conftest import STRIPE_SMALL, to_toml

from pipeline import load_results
from pipeline.drivers.compact import compact_campaign
from pipeline.store import compaction
from pipeline.store.quarantine import CorruptFileWarning
from support.store_campaigns import TABLES, run_local, sorted_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    """12 cells: 8 compacted into parts of 3 cells, then 4 more stored per cell."""
    root = tmp_path_factory.mktemp("load")
    base = tomllib.loads(STRIPE_SMALL.read_text())

    def spec(seeds: list[int]) -> Path:
        text = {
            **base,
            "name": "loads",
            "grid": {"width": [8, 16], "alpha_tilde": [0.1, 100.0], "seed": seeds},
            "flow": {"max_steps": 100},
            "resources": {**base["resources"], "compact_when_done": False},
        }
        path = root / f"loads-{len(seeds)}.toml"
        path.write_text(to_toml(text))
        return path

    first = Path(run_local(spec([0, 1]), root / "results").campaign)
    saved, compaction.CELLS_PER_PART = compaction.CELLS_PER_PART, 3
    try:
        compact_campaign(str(first))
    finally:
        compaction.CELLS_PER_PART = saved
    run_local(spec([0, 1, 2]), root / "results")
    assert len(list((first / "cells").glob("part-*"))) == 3
    assert len(list((first / "cells").glob("*.parquet"))) == 3 + 4
    return first


FILTERS = [
    ([("width", "=", 16)], "width == 16"),
    ([("alpha_tilde", ">", 1.0), ("seed", "in", [0, 2])], "alpha_tilde > 1 and seed in [0, 2]"),
    (
        [[("width", "=", 8), ("seed", "=", 1)], [("seed", "=", 2)]],
        "(width == 8 and seed == 1) or seed == 2",
    ),
]


@pytest.mark.parametrize("filters, query", FILTERS)
def test_filters_return_the_rows_of_a_full_read_and_the_same_pandas_filter(
    campaign, filters, query
):
    full = load_results(str(campaign))
    for table in TABLES:
        expected = sorted_table(getattr(full, table).query(query), table)
        got = load_results(str(campaign), tables=[table], filters=filters)
        assert 0 < len(expected) < len(getattr(full, table)), (table, query)
        pd.testing.assert_frame_equal(sorted_table(getattr(got, table), table), expected)
        assert all(getattr(got, t).empty for t in TABLES if t != table)


def test_columns_and_an_expression_filter_read_only_what_is_asked(campaign):
    full = load_results(str(campaign))
    got = load_results(
        str(campaign),
        tables=["cells", "measurements"],
        columns=["cell_id", "step", "train_loss"],
        filters=pc.field("width") == 8,
    )
    assert list(got.cells.columns) == ["cell_id", "train_loss"]
    assert list(got.measurements.columns) == ["cell_id", "step", "train_loss"]
    want = full.measurements.loc[full.measurements.width == 8, ["cell_id", "step", "train_loss"]]
    pd.testing.assert_frame_equal(
        sorted_table(got.measurements, "measurements"), sorted_table(want, "measurements")
    )
    by_table = load_results(
        str(campaign), columns={"kernels": ["cell_id", "ntk_change"]}, tables=["kernels"]
    )
    assert (
        list(by_table.kernels.columns) == ["cell_id", "ntk_change"] and len(by_table.kernels) == 12
    )


def test_default_read_is_unchanged_and_bad_arguments_name_the_fix(campaign):
    full = load_results(str(campaign))
    assert len(full.cells) == 12 and full.cells.cell_id.is_unique
    assert not full.manifest.empty and len(full.manifest) == 12
    with pytest.raises(ValueError, match="in none of the tables"):
        load_results(str(campaign), columns=["widht"])
    with pytest.raises(ValueError, match="restrict tables"):
        load_results(str(campaign), tables=["cells", "measurements"], filters=[("step", ">", 3)])
    with pytest.raises(ValueError, match="unknown tables"):
        load_results(str(campaign), tables=["cell"])


def test_a_table_not_asked_for_is_not_checked_for_damage(campaign, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(campaign, copy)
    part = sorted((copy / "predictions").glob("part-*"))[0]
    part.write_bytes(part.read_bytes()[:100])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptFileWarning)
        assert len(load_results(str(copy), tables=["cells"]).cells) == 12
    with pytest.warns(CorruptFileWarning, match=part.name):
        assert len(load_results(str(copy), tables=["predictions"]).predictions) > 0
