"""Ensemble averages over seeds and learning-curve exponents (design.md §2 "Aggregation").

Pure functions DataFrame -> DataFrame; `pipeline.drivers.aggregate.aggregate_campaign`
reads a campaign's tables through the store and writes `ensembles` and `boundaries`.

Per grid point (width, alpha_tilde, train_size and every other grid / settings column,
constant or swept: GRID_AXES), over the done cells (seeds) s = 1..M with test outputs
f_s(x) and labels y(x):
    ensemble_test_error = mean_x [ y(x)·⟨f⟩(x) <= 0 ],   ⟨f⟩ = (1/M) Σ_s f_s
    ensemble_gain       = mean_test_error − ensemble_test_error  (~N^{-1/2}: ensemble_gain)
    fluctuation         = (1/M) Σ_s sqrt(mean_x (f_s(x) − ⟨f⟩(x))²)   (NaN if M < 2)
    output_norm         = (1/M) Σ_s sqrt(mean_x f_s(x)²)   (‖f‖ on the test set)
    ntk_change          = exp(mean_s log ‖ΔΘ‖/‖Θ₀‖)  over seeds where it is finite.
Learning-curve exponents β fit ε(P) ~ P^{-β} by least squares in log-log (pipeline.analysis.fits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from pipeline.analysis.boundaries import boundaries_table, order_columns, without_stalled
from pipeline.analysis.ensemble_gain import ensemble_gain_exponents
from pipeline.analysis.fits import fit_log_log
from results_schema.tables import SETTINGS

# Cells that agree on all of these are seeds of one grid point (constant ones split nothing).
GRID_AXES = ("width", "alpha_tilde", "train_size", "depth", *(f.name for f in SETTINGS))
ENSEMBLE_METRICS = (
    "n_seeds",
    "n_stalled",
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


def with_groups(done: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """`done` with a `group` column: the index of its grid point (cells equal on `axes`)."""
    return done.assign(group=done.groupby(list(axes), dropna=False, sort=True).ngroup())


ReadPredictions = Callable[[pd.DataFrame], pd.DataFrame]


def streamed_output_statistics(
    done: pd.DataFrame, axes: Sequence[str], read: ReadPredictions, max_rows: int
) -> pd.DataFrame:
    """`_output_statistics` computed grid point by grid point: `read(cells)` returns the
    predictions rows of those done cells; consecutive grid points are read together up
    to about `max_rows` rows (by each cell's test_size), so memory is bounded by
    max(max_rows, the largest grid point), not the campaign. Stalled cells are left out,
    as in `ensemble_table`."""
    done = without_stalled(with_groups(done, axes))
    rows = done["test_size"].fillna(1).astype(float) if "test_size" in done else 1.0
    per_group = done.assign(rows=rows).groupby("group")["rows"].sum()
    chunk = (per_group.cumsum() // max(max_rows, 1)).rename("chunk")
    parts = []
    for _, groups in chunk.groupby(chunk):
        cells = done.loc[done["group"].isin(groups.index)]
        predictions = read(cells)
        if len(predictions):
            parts.append(_output_statistics(cells, predictions))
    if not parts:
        return pd.DataFrame(
            columns=["ensemble_test_error", "fluctuation", "output_norm"], dtype=float
        )
    return pd.concat(parts)


def ensemble_table(
    cells: pd.DataFrame,
    predictions: pd.DataFrame | None,
    axes: Sequence[str] | None = None,
    outputs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per grid point over the done cells' seeds: axes, alpha, ENSEMBLE_METRICS.
    `outputs` (per group: ensemble_test_error, fluctuation, e.g. from
    `streamed_output_statistics`) replaces reading them off `predictions`.

    Cells without predictions rows contribute to every column except
    ensemble_test_error and fluctuation (NaN when no seed has predictions). Stalled cells
    are only counted (n_stalled): a grid point whose cells all stalled has n_seeds = 0
    and NaN metrics."""
    done = done_cells(cells)
    axes = list(axes) if axes is not None else grid_axes(done)
    done = with_groups(done, axes).assign(fitted=done["fitted"].astype(float))
    table = done.groupby("group")[axes + ["n_params"]].first()
    valid = without_stalled(done)  # stalled cells: counted, never averaged
    grouped = valid.groupby("group")
    table = table.assign(
        alpha=done.groupby("group")["alpha"].first() if "alpha" in done else np.nan,
        n_seeds=grouped.size().reindex(table.index, fill_value=0),
        n_stalled=(
            done.groupby("group").size() - grouped.size().reindex(table.index, fill_value=0)
        ),
        fitted_fraction=grouped["fitted"].mean(),
        mean_test_error=grouped["test_error"].mean(),
        ntk_change=grouped["ntk_change"].agg(geometric_mean),
        mean_train_loss=grouped["train_loss"].mean(),
        mean_n_unsatisfied=grouped["n_unsatisfied"].mean(),
    )
    if outputs is None:
        outputs = (
            _output_statistics(valid, predictions)
            if predictions is not None
            else pd.DataFrame(
                columns=["ensemble_test_error", "fluctuation", "output_norm"], dtype=float
            )
        )
    table = table.join(outputs, how="left")
    table["ensemble_gain"] = table["mean_test_error"] - table["ensemble_test_error"]
    return table[axes + ["alpha", *ENSEMBLE_METRICS]].reset_index(drop=True)


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


def aggregate_tables(
    cells: pd.DataFrame,
    predictions: pd.DataFrame | None,
    measurements: pd.DataFrame | None = None,
    outputs: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ensembles, boundaries) of a campaign's raw tables; learning-curve and
    ensemble-gain exponents are rows of boundaries (boundary == "learning_curve",
    "ensemble_gain"). `outputs`: see ensemble_table."""
    done = done_cells(cells)
    axes = grid_axes(done)
    ensembles = ensemble_table(done, predictions, axes, outputs)
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
