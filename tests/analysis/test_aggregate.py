"""Ensembles over seeds equal hand-computed values; exponents are recovered; the campaign
wrapper works on a running campaign with failed cells and writes readable tables."""

import math
import os

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import results_schema as rs
from pipeline.analysis.ensembles import (
    done_cells,
    ensemble_table,
    fit_log_log,
    geometric_mean,
    grid_axes,
    learning_curve_exponents,
    streamed_output_statistics,
)
from pipeline.drivers.aggregate import aggregate_campaign
from pipeline.store.campaign_store import CampaignNotFoundError
from pipeline.store.frames import read_table
from results_schema.aggregates import BOUNDARIES, ENSEMBLES

LABELS = [1, -1]
# depth 2: three done seeds; depth 3: three more; one failed cell with absurd outputs
OUTPUTS = {
    "s0": [1, 4],
    "s1": [2, -2],
    "s2": [6, 1],
    "t0": [1, -1],
    "t1": [1, -1],
    "t2": [1, -1],
    "bad": [-100, 100],
}


def _cell(cell_id, depth, seed, **kw):
    return {
        **dict(
            cell_id=cell_id,
            width=16,
            alpha_tilde=1.0,
            alpha=0.25,
            train_size=10,
            seed=seed,
            depth=depth,
            dataset="stripe",
            n_params=300 if depth == 2 else 560,
            status="done",
            stop_reason="fitted",
            fitted=True,
            train_loss=0.0,
            n_unsatisfied=0,
            test_error=0.0,
            ntk_change=1.0,
            steps=10,
            max_steps=100,
        ),
        **kw,
    }


def hand_cells() -> pd.DataFrame:
    rows = [
        _cell("s0", 2, 0, test_error=0.5, ntk_change=0.1, train_loss=0.1),
        _cell(
            "s1",
            2,
            1,
            test_error=0.0,
            ntk_change=1.0,
            train_loss=0.2,
            fitted=False,
            n_unsatisfied=3,
        ),
        _cell("s2", 2, 2, test_error=0.5, ntk_change=10.0, train_loss=0.3),
        _cell("t0", 3, 0, ntk_change=2.0),
        _cell("t1", 3, 1, ntk_change=8.0),
        _cell("t2", 3, 2, ntk_change=float("nan")),
        _cell("bad", 2, 7, status="failed", test_error=1.0, ntk_change=1e9),
    ]
    return pd.DataFrame(rows)


def hand_predictions() -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(cell_id=c, test_index=i, test_output=float(f), test_label=LABELS[i])
            for c, outputs in OUTPUTS.items()
            for i, f in enumerate(outputs)
        ]
    )


@pytest.fixture
def ensembles() -> pd.DataFrame:
    return ensemble_table(hand_cells(), hand_predictions()).set_index("depth")


def test_ensemble_error_is_the_error_of_the_seed_mean_output(ensembles):
    # depth 2: <f> = (3, 1), y<f> = (3, -1): one of two test points wrong
    assert ensembles.loc[2, "ensemble_test_error"] == 0.5
    assert ensembles.loc[2, "mean_test_error"] == pytest.approx(1 / 3)
    assert ensembles.loc[3, "ensemble_test_error"] == 0.0


def test_fluctuation_is_rms_deviation_from_the_seed_mean_averaged_over_seeds(ensembles):
    # residuals f_s - <f>: (-2, 3), (-1, -3), (3, 0)
    expected = (math.sqrt(13 / 2) + math.sqrt(10 / 2) + math.sqrt(9 / 2)) / 3
    assert ensembles.loc[2, "fluctuation"] == pytest.approx(expected, rel=1e-12)
    assert ensembles.loc[3, "fluctuation"] == 0.0  # identical seeds


def test_ntk_change_is_the_geometric_mean_over_seeds_ignoring_unmeasured(ensembles):
    assert ensembles.loc[2, "ntk_change"] == pytest.approx(1.0)  # (0.1 * 1 * 10)^(1/3)
    assert ensembles.loc[3, "ntk_change"] == pytest.approx(4.0)  # (2 * 8)^(1/2), NaN left out
    assert math.isnan(geometric_mean([np.nan, np.nan]))
    assert geometric_mean([0.0, 5.0]) == 0.0


def test_only_done_cells_count_and_swept_axes_are_not_mixed(ensembles):
    assert list(ensembles.index) == [2, 3]  # depth split the seeds
    assert list(ensembles["n_seeds"]) == [3, 3]  # the failed cell is left out
    assert ensembles.loc[2, "fitted_fraction"] == pytest.approx(2 / 3)
    assert ensembles.loc[2, "mean_train_loss"] == pytest.approx(0.2)
    assert ensembles.loc[2, "mean_n_unsatisfied"] == pytest.approx(1.0)
    assert list(ensembles["n_params"]) == [300, 560]
    assert list(ensembles["alpha"]) == [0.25, 0.25]


def test_single_seed_has_no_fluctuation_and_no_predictions_give_no_ensemble_error():
    cells = hand_cells().iloc[:1]
    one = ensemble_table(cells, hand_predictions()).iloc[0]
    assert math.isnan(one["fluctuation"]) and one["ensemble_test_error"] == 0.5
    blind = ensemble_table(hand_cells(), None)
    assert blind["ensemble_test_error"].isna().all() and list(blind["n_seeds"]) == [3, 3]


def test_log_log_fit_recovers_a_constructed_exponent():
    p = np.array([64, 128, 256, 512, 1024, 2048])
    exact = fit_log_log(p, 3.0 * p**-0.4)
    assert exact.slope == pytest.approx(-0.4, abs=1e-12)
    assert exact.intercept == pytest.approx(math.log(3.0))
    assert exact.slope_error == pytest.approx(0.0, abs=1e-12)
    noisy = fit_log_log(p, 3.0 * p**-0.4 * np.exp(0.05 * np.random.default_rng(0).normal(size=6)))
    assert abs(noisy.slope + 0.4) < 3 * noisy.slope_error and 0 < noisy.slope_error < 0.05
    assert math.isnan(fit_log_log([1, 2], [1, 0.5]).slope_error)


def test_learning_curve_exponent_per_regime():
    rows = [
        dict(
            width=64,
            alpha_tilde=alpha,
            train_size=p,
            ensemble_test_error=0.5 * p**-beta,
            mean_test_error=0.6 * p**-beta,
        )
        for alpha, beta in ((0.01, 0.5), (100.0, 0.25))
        for p in (100, 200, 400, 800)
    ]
    rows.append(
        dict(
            width=64, alpha_tilde=1.0, train_size=100, ensemble_test_error=0.1, mean_test_error=0.1
        )
    )
    fits = learning_curve_exponents(pd.DataFrame(rows), ["width", "alpha_tilde", "train_size"])
    ens = fits.loc[fits["quantity"] == "ensemble_test_error"].set_index("alpha_tilde")
    assert ens.loc[0.01, "value"] == pytest.approx(0.5)
    assert ens.loc[100.0, "value"] == pytest.approx(0.25)
    assert ens.loc[0.01, "status"] == "fitted" and ens.loc[0.01, "n_points"] == 4
    assert (ens.loc[0.01, "lower"], ens.loc[0.01, "upper"]) == (100, 800)
    assert ens.loc[1.0, "status"] == "too_few_points" and math.isnan(ens.loc[1.0, "value"])
    assert set(fits["boundary"]) == {"learning_curve"}


def _write(root, table, frame):
    os.makedirs(root / table, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), root / table / "part-0.parquet"
    )


def test_aggregate_on_a_running_campaign_with_failed_cells(tmp_path):
    cells = hand_cells()
    _write(tmp_path, "cells", cells)
    _write(tmp_path, "predictions", hand_predictions())
    manifest = pd.DataFrame({"cell_id": [*cells["cell_id"], "queued-1", "queued-2"]})
    pq.write_table(pa.Table.from_pandas(manifest), tmp_path / "manifest.parquet")
    report = aggregate_campaign(str(tmp_path))
    assert (report.cells_used, report.cells_failed, report.cells_pending) == (6, 1, 2)
    assert report.ensemble_rows == 2 and "used 6 done cells" in report.summary()
    stored = pd.read_parquet(tmp_path / "ensembles").set_index("depth")
    assert stored.loc[2, "ensemble_test_error"] == 0.5 and list(stored["n_seeds"]) == [3, 3]
    boundaries = pd.read_parquet(tmp_path / "boundaries")
    assert set(boundaries["boundary"]) == {"jamming", "crossover"}
    for table, schema in (("ensembles", ENSEMBLES), ("boundaries", BOUNDARIES)):
        files = os.listdir(tmp_path / table)
        assert files == ["part-0.parquet"]  # no temp file left behind
        written = pq.read_table(tmp_path / table / "part-0.parquet")
        assert written.schema.equals(schema, check_metadata=False)
        assert written.schema.metadata[rs.VERSION_KEY] == str(rs.SCHEMA_VERSION).encode()
        count = duckdb.sql(f"select count(*) from '{tmp_path / table}/*.parquet'").fetchall()[0][0]
        assert count == len(written)
    aggregate_campaign(str(tmp_path))  # recomputable: same table
    pd.testing.assert_frame_equal(read_table(str(tmp_path), "ensembles").set_index("depth"), stored)


def test_aggregate_before_any_cell_finished_writes_nothing(tmp_path):
    manifest = pd.DataFrame({"cell_id": ["queued-1"]})
    pq.write_table(pa.Table.from_pandas(manifest), tmp_path / "manifest.parquet")
    report = aggregate_campaign(str(tmp_path))
    assert (report.cells_used, report.cells_pending, report.tables_written) == (0, 1, ())
    assert not (tmp_path / "ensembles").exists()


def test_aggregate_of_a_directory_that_is_no_campaign_says_how_to_start_one(tmp_path):
    with pytest.raises(CampaignNotFoundError, match="phasegrid run"):
        aggregate_campaign(str(tmp_path / "typo"))


@pytest.mark.parametrize("max_rows", [1, 5, 1000])
def test_streamed_grid_point_by_grid_point_equals_the_whole_table(max_rows):
    """Predictions read a few grid points at a time give the same ensembles; no read holds
    more than max(max_rows, the largest grid point's rows) or splits a grid point."""
    cells = hand_cells().assign(test_size=2)
    predictions = hand_predictions()
    done = done_cells(cells)
    reads: list[pd.DataFrame] = []

    def read(asked: pd.DataFrame) -> pd.DataFrame:
        reads.append(asked)
        return predictions.loc[predictions.cell_id.isin(asked.cell_id)]

    axes = grid_axes(done)
    outputs = streamed_output_statistics(done, axes, read, max_rows)
    whole = ensemble_table(cells, predictions, axes)
    pd.testing.assert_frame_equal(ensemble_table(cells, None, axes, outputs), whole)
    assert whole["ensemble_test_error"].notna().all()
    largest = done.groupby(axes).size().max() * 2
    assert all(len(r) * 2 <= max(max_rows, largest) for r in reads)
    assert len(reads) == (2 if max_rows < 12 else 1)  # two grid points (depth 2 and 3)
    for asked in reads:  # whole grid points only
        assert set(done.loc[done.depth.isin(asked.depth), "cell_id"]) == set(asked.cell_id)
