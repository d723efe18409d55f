"""Small real campaigns for the store's tests (in-process executor, real training), and
the tables of a campaign as sorted DataFrames to compare row for row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import load_results
from pipeline.drivers.run import RunSummary, run_spec
from pipeline.execute.local import LocalExecutor
from pipeline.spec.campaign import load_campaign_text

TABLES = ("cells", "measurements", "predictions", "kernels")
ROW_KEYS = {
    "cells": ["cell_id"],
    "measurements": ["cell_id", "step"],
    "predictions": ["cell_id", "test_index"],
    "kernels": ["cell_id"],
}


def run_local(spec_path: Path, store: Path) -> RunSummary:
    """`phasegrid run SPEC --store STORE` in this process (LocalExecutor)."""
    spec, text = load_campaign_text(spec_path)
    return run_spec(spec, text, str(store), LocalExecutor())


def sorted_table(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """`frame` in a canonical row order (by cell and step / test index), index reset."""
    return frame.sort_values(ROW_KEYS[table]).reset_index(drop=True)


def raw_tables(campaign: Path) -> dict[str, pd.DataFrame]:
    """Each per-cell table as `pandas.read_parquet(table_dir)` reads it, sorted."""
    return {t: sorted_table(pd.read_parquet(campaign / t), t) for t in TABLES}


def loaded_tables(campaign: Path) -> dict[str, pd.DataFrame]:
    """Each per-cell table as `load_results` reads it, sorted."""
    results = load_results(str(campaign))
    return {t: sorted_table(getattr(results, t), t) for t in TABLES}


def assert_same_rows(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    """Every table holds the same rows, each exactly once (row for row, every column)."""
    for table in TABLES:
        keys = ROW_KEYS[table]
        assert not after[table].duplicated(keys).any(), f"{table}: a row is there twice"
        pd.testing.assert_frame_equal(
            before[table][sorted(before[table].columns)],
            after[table][sorted(after[table].columns)],
            check_dtype=False,
            obj=table,
        )
