"""Ensemble averages over seeds and learning-curve exponents (design.md §2 "Aggregation").

Pure functions DataFrame -> DataFrame, then `aggregate_campaign`, the thin I/O
wrapper that reads a campaign's tables and writes `ensembles` and `boundaries`.

Per grid point (width, alpha_tilde, train_size and every other grid / settings column,
constant or swept: GRID_AXES), over the done cells (seeds) s = 1..M with test outputs
f_s(x) and labels y(x):
    ensemble_test_error = mean_x [ y(x)·⟨f⟩(x) <= 0 ],   ⟨f⟩ = (1/M) Σ_s f_s
    ensemble_gain       = mean_test_error − ensemble_test_error  (~N^{-1/2}: ensemble_gain.py)
    fluctuation         = (1/M) Σ_s sqrt(mean_x (f_s(x) − ⟨f⟩(x))²)   (NaN if M < 2)
    output_norm         = (1/M) Σ_s sqrt(mean_x f_s(x)²)   (‖f‖ on the test set)
    ntk_change          = exp(mean_s log ‖ΔΘ‖/‖Θ₀‖)  over seeds where it is finite.
Learning-curve exponents β fit ε(P) ~ P^{-β} by least squares in log-log.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from scipy import stats

import results_schema as rs
from pipeline.boundaries import boundaries_table, order_columns
from pipeline.storage import Location, join_uri
from pipeline.store import CampaignNotFoundError
from results_schema.tables import SETTINGS

# Cells that agree on all of these are seeds of one grid point (constant ones split nothing).
GRID_AXES = ("width", "alpha_tilde", "train_size", "depth", *(f.name for f in SETTINGS))
ENSEMBLE_METRICS = (
    "n_seeds",
    "n_params",
    "fitted_fraction",
    "mean_test_error",
    "ensemble_test_error",
    "ensemble_gain",
    "fluctuation",
    "output_norm",
    "ntk_change",
    "mean_train_loss",
    "mean_n_unsatisfied",
)
ENSEMBLE_VALUES = ("alpha", *ENSEMBLE_METRICS)  # the non-axis columns of ensembles
LEARNING_CURVE_METRICS = ("ensemble_test_error", "mean_test_error")


def done_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells with status "done" (one row per cell_id, the last one if repeated)."""
    done = cells.loc[cells["status"] == "done"]
    return done.drop_duplicates("cell_id", keep="last").reset_index(drop=True)


def grid_axes(cells: pd.DataFrame) -> list[str]:
    """The GRID_AXES columns present in `cells`: what ensembles group by."""
    return [a for a in GRID_AXES if a in cells]


def geometric_mean(values: Sequence[float]) -> float:
    """exp(mean log v) over the finite values (NaN if none; 0 if any is 0)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(v))))


def _output_statistics(done: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Per group id: ensemble_test_error and fluctuation from the long predictions."""
    p = predictions[["cell_id", "test_index", "test_output", "test_label"]].merge(
        done[["cell_id", "group"]], on="cell_id"
    )
    points = p.groupby(["group", "test_index"]).agg(
        mean_output=("test_output", "mean"), label=("test_label", "first")
    )
    wrong = (points["mean_output"] * points["label"] <= 0).astype(float)
    p = p.join(points["mean_output"], on=["group", "test_index"])
    p["residual2"] = (p["test_output"] - p["mean_output"]) ** 2
    p["output2"] = p["test_output"] ** 2
    per_seed = p.groupby(["group", "cell_id"])[["residual2", "output2"]].mean() ** 0.5
    per_group = per_seed.groupby("group")
    fluctuation = per_group["residual2"].mean().where(per_group.size() >= 2)
    return pd.DataFrame(
        {
            "ensemble_test_error": wrong.groupby("group").mean(),
            "fluctuation": fluctuation,
            "output_norm": per_group["output2"].mean(),
        }
    )


def ensemble_table(
    cells: pd.DataFrame, predictions: pd.DataFrame | None, axes: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per grid point over the done cells' seeds: axes, alpha, ENSEMBLE_METRICS.

    Cells without predictions rows contribute to every column except
    ensemble_test_error and fluctuation (NaN when no seed has predictions)."""
    done = done_cells(cells)
    axes = list(axes) if axes is not None else grid_axes(done)
    done = done.assign(
        group=done.groupby(axes, dropna=False, sort=True).ngroup(),
        fitted=done["fitted"].astype(float),
    )
    grouped = done.groupby("group")
    table = grouped[axes].first()
    table = table.assign(
        alpha=grouped["alpha"].first() if "alpha" in done else np.nan,
        n_seeds=grouped.size(),
        n_params=grouped["n_params"].first(),
        fitted_fraction=grouped["fitted"].mean(),
        mean_test_error=grouped["test_error"].mean(),
        ntk_change=grouped["ntk_change"].agg(geometric_mean),
        mean_train_loss=grouped["train_loss"].mean(),
        mean_n_unsatisfied=grouped["n_unsatisfied"].mean(),
    )
    outputs = (
        _output_statistics(done, predictions)
        if predictions is not None
        else pd.DataFrame(
            columns=["ensemble_test_error", "fluctuation", "output_norm"], dtype=float
        )
    )
    table = table.join(outputs, how="left")
    table["ensemble_gain"] = table["mean_test_error"] - table["ensemble_test_error"]
    return table[axes + ["alpha", *ENSEMBLE_METRICS]].reset_index(drop=True)


@dataclass(frozen=True)
class LogLogFit:
    """log y = intercept + slope·log x, least squares; slope_error is its standard
    error (NaN with two points)."""

    slope: float
    slope_error: float
    intercept: float
    n_points: int


def fit_log_log(x: Sequence[float], y: Sequence[float]) -> LogLogFit:
    """Least-squares line through (log x, log y), over points with x, y > 0 finite."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = np.log(x[keep]), np.log(y[keep])
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return LogLogFit(math.nan, math.nan, math.nan, n)
    fit = stats.linregress(x, y)
    return LogLogFit(
        float(fit.slope), float(fit.stderr) if n > 2 else math.nan, float(fit.intercept), n
    )


def learning_curve_exponents(
    ensembles: pd.DataFrame, axes: Sequence[str], metrics: Sequence[str] = LEARNING_CURVE_METRICS
) -> pd.DataFrame:
    """Rows (boundary="learning_curve") of β with ε(P) ~ P^{-β}, per grid point of
    the other axes (the regime is α̃) and per metric; empty unless P is swept.
    value = β, value_error = its standard error, lower/upper = the P range fitted.
    status: fitted | two_points (no error bar) | too_few_points (ε > 0 at < 2 P)."""
    if ensembles.empty or ensembles["train_size"].nunique() < 2:
        return pd.DataFrame()
    fixed = [a for a in axes if a != "train_size"]
    rows = []
    for key, sub in ensembles.groupby(fixed, dropna=False, sort=True):
        coords = dict(zip(fixed, key if isinstance(key, tuple) else (key,)))
        for metric in metrics:
            fit = fit_log_log(sub["train_size"], sub[metric])
            used = sub.loc[sub[metric] > 0, "train_size"]
            status = {0: "too_few_points", 1: "too_few_points", 2: "two_points"}.get(
                fit.n_points, "fitted"
            )
            rows.append(
                {
                    "boundary": "learning_curve",
                    "quantity": metric,
                    "level": math.nan,
                    "budget_steps": math.nan,
                    "along": "train_size",
                    "value": -fit.slope,
                    "value_error": fit.slope_error,
                    "lower": float(used.min()) if len(used) else math.nan,
                    "upper": float(used.max()) if len(used) else math.nan,
                    "status": status,
                    "n_points": fit.n_points,
                    **coords,
                }
            )
    return pd.DataFrame(rows)


# --- campaign I/O -------------------------------------------------------------------------


def campaign_path(campaign: str, name: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path of `name` inside the campaign) for a local path or a URI, as the
    store resolves them (pipeline.storage.Location)."""
    location = Location.open(campaign)
    return location.fs, location.path(name)


def read_table(
    campaign: str, table: str, columns: Sequence[str] | None = None
) -> pd.DataFrame | None:
    """A campaign table (a directory of Parquet files, or a single .parquet file) as a
    DataFrame read with its results_schema schema (files written before a column
    existed read it as null), or None if the table does not exist yet."""
    fs, path = campaign_path(campaign, table)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    schema = rs.TABLES.get(table.removesuffix(".parquet"))
    dataset = pads.dataset(path, filesystem=fs, format="parquet", schema=schema)
    try:
        return dataset.to_table(columns=list(columns) if columns else None).to_pandas()
    except (pa.ArrowException, OSError):
        if table not in rs.TABLES:
            raise
        from pipeline.quarantine import read_readable_files  # an unreadable file: warn, skip

        return read_readable_files(
            Location.open(campaign), table, list(columns) if columns else None
        ).to_pandas()


def write_table(campaign: str, table: str, frame: pd.DataFrame) -> str:
    """Write `frame` as <campaign>/<table>/part-0.parquet, cast to the table's schema
    (missing columns null), atomically: a dot-prefixed temp name, which dataset
    readers skip, renamed over the target. Returns the file's path or URI."""
    schema = rs.TABLES.get(table)
    if schema is not None:
        frame = frame.reindex(columns=schema.names)
    arrow = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    fs, path = campaign_path(campaign, table)
    fs.create_dir(path, recursive=True)
    target, temp = f"{path}/part-0.parquet", f"{path}/.part-0.{uuid.uuid4().hex}.tmp"
    pq.write_table(arrow, temp, filesystem=fs)
    fs.move(temp, target)
    return join_uri(campaign, f"{table}/part-0.parquet")


def require_campaign(campaign: str) -> None:
    """Raise CampaignNotFoundError unless `campaign` holds a manifest or a cells table."""
    for name in ("manifest.parquet", "cells"):
        fs, path = campaign_path(campaign, name)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            return
    raise CampaignNotFoundError(
        f"no campaign at {campaign} (no manifest.parquet or cells/); "
        f"start one with `phasegrid run SPEC.toml --store DIR`"
    )


def pending_cells(campaign: str, cells: pd.DataFrame) -> int:
    """Cells of the manifest without a cells record yet (queued or running)."""
    manifest = read_table(campaign, "manifest.parquet", ["cell_id"])
    if manifest is None:
        return 0
    return int((~manifest["cell_id"].isin(cells["cell_id"])).sum())


@dataclass(frozen=True)
class AggregateReport:
    """What `aggregate_campaign` did: cells used (done), skipped (failed), pending
    (in the manifest, not finished yet), rows and paths written."""

    campaign: str
    cells_used: int
    cells_failed: int
    cells_pending: int
    ensemble_rows: int
    boundary_rows: int
    tables_written: tuple[str, ...]

    def summary(self) -> str:
        return (
            f"{self.campaign}: used {self.cells_used} done cells "
            f"(skipped {self.cells_failed} failed, {self.cells_pending} pending); "
            f"wrote ensembles ({self.ensemble_rows} rows), "
            f"boundaries ({self.boundary_rows} rows)"
        )


def ensemble_gain_exponents(ensembles: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """pipeline.ensemble_gain's fit (imported here: it uses this module's fit_log_log)."""
    from pipeline.ensemble_gain import ensemble_gain_exponents as fit

    return fit(ensembles, axes)


def aggregate_tables(
    cells: pd.DataFrame, predictions: pd.DataFrame | None, measurements: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ensembles, boundaries) of a campaign's raw tables; learning-curve exponents
    are rows of boundaries (boundary == "learning_curve")."""
    done = done_cells(cells)
    axes = grid_axes(done)
    ensembles = ensemble_table(done, predictions, axes)
    if done.empty:
        return ensembles, order_columns(pd.DataFrame())
    boundaries = boundaries_table(done, ensembles, axes, measurements)
    exponents = [
        e
        for e in (
            learning_curve_exponents(ensembles, axes),
            ensemble_gain_exponents(ensembles, axes),
        )
        if not e.empty
    ]
    if exponents:
        boundaries = order_columns(pd.concat([boundaries, *exponents], ignore_index=True))
    return ensembles, boundaries


def campaign_aggregates(campaign: str, done: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ensembles, boundaries) of the done cells `done`, reading only the columns of
    predictions and measurements that aggregation needs."""
    ids = set(done["cell_id"])
    keep = lambda t: None if t is None else t.loc[t["cell_id"].isin(ids)]
    predictions = keep(
        read_table(campaign, "predictions", ["cell_id", "test_index", "test_output", "test_label"])
    )
    measurements = keep(read_table(campaign, "measurements", ["cell_id", "step", "n_unsatisfied"]))
    return aggregate_tables(done, predictions, measurements)


def aggregate_campaign(campaign: str) -> AggregateReport:
    """Recompute and write <campaign>/ensembles and <campaign>/boundaries from the
    cells done so far (works while a campaign runs or after some cells failed).
    Raises CampaignNotFoundError when `campaign` is not a campaign directory."""
    require_campaign(campaign)
    cells = read_table(campaign, "cells")
    if cells is None:
        cells = pd.DataFrame({"cell_id": pd.Series(dtype=str), "status": pd.Series(dtype=str)})
    pending = pending_cells(campaign, cells)
    done = done_cells(cells)
    failed = int((cells.drop_duplicates("cell_id", keep="last")["status"] == "failed").sum())
    if done.empty:
        return AggregateReport(campaign, 0, failed, pending, 0, 0, ())
    ensembles, boundaries = campaign_aggregates(campaign, done)
    written = (
        write_table(campaign, "ensembles", ensembles),
        write_table(campaign, "boundaries", boundaries),
    )
    return AggregateReport(
        campaign, len(done), failed, pending, len(ensembles), len(boundaries), written
    )
