"""Phase boundaries located on the campaign grid (design.md §2 "Aggregation").

All boundaries are found the same way: along one grid axis, find the two grid
points between which a quantity crosses a level, and interpolate between them.
A crossing that the grid does not bracket is reported with a status, never
extrapolated.

- jamming line h*(α̃) per step budget B: the fraction of seeds with N_Δ = 0 within
  B steps crosses 1/2; linear in the fraction, linear in log h;
- N*(P) (when P is swept): the number of parameters N at h*, log-log in (h, N);
- lazy/feature crossover α̃*(h): the geometric-mean ‖ΔΘ‖/‖Θ₀‖ crosses c for each
  c in CROSSOVER_LEVELS; log-log interpolation.

Rows are long format (`BOUNDARY_COLUMNS` plus the fixed grid coordinates):
`along` names the axis the value lies on, the fixed coordinates are the other
axes' columns (the `along` axis column itself is absent or NaN on that row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

BOUNDARY_COLUMNS = (
    "boundary",
    "quantity",
    "level",
    "budget_steps",
    "along",
    "value",
    "value_error",
    "lower",
    "upper",
    "status",
    "n_points",
)
BUDGET_AXES = ("max_steps", "max_time", "max_wall_seconds")
JAMMING_LEVEL = 0.5
CROSSOVER_LEVELS = (0.01, 0.1, 1.0, 10.0)
BUDGET_FRACTIONS = (0.01, 0.1, 1.0)  # step budgets as fractions of the campaign's
TERMINAL_STOPS = ("nan", "zero_gradient")  # trajectories that will never fit later
STALLED = "stalled"  # the integrator failed: not a result, left out of every boundary


@dataclass(frozen=True)
class Crossing:
    """Where y(x) crosses a level. `status`: bracketed | below_grid (the crossing is
    below the smallest x) | above_grid | not_monotone (several crossings: the first
    one in the expected direction is given) | no_data. `lower`/`upper` are the
    bracketing grid points (or the grid edge that the crossing lies beyond)."""

    value: float
    lower: float
    upper: float
    status: str


def locate_crossing(
    x: Sequence[float],
    y: Sequence[float],
    level: float,
    *,
    increasing: bool = True,
    log_x: bool = True,
    log_y: bool = False,
) -> Crossing:
    """Crossing of `level` by y(x), expected increasing (or decreasing) in x.

    Interpolates linearly in (log x if log_x, log y if log_y) between the bracketing
    grid points. Points with non-finite y (or y <= 0 when log_y) are ignored."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)
    order = np.argsort(x[keep])
    x, y = x[keep][order], y[keep][order]
    nan = math.nan
    if len(x) == 0:
        return Crossing(nan, nan, nan, "no_data")
    past = (y >= level) if increasing else (y <= level)  # beyond the boundary
    steps = np.diff(past.astype(int))
    ups, downs = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    if len(ups) == 0 and len(downs) == 0:
        if past[0]:
            return Crossing(nan, nan, float(x[0]), "below_grid")
        return Crossing(nan, float(x[-1]), nan, "above_grid")
    status = "bracketed" if (len(ups) == 1 and len(downs) == 0) else "not_monotone"
    if len(ups) == 0:
        return Crossing(nan, nan, nan, status)
    i = int(ups[0])
    tx = np.log if log_x else (lambda v: v)
    ty = np.log if log_y else (lambda v: v)
    u0, u1, v0, v1 = tx(x[i]), tx(x[i + 1]), ty(y[i]), ty(y[i + 1])
    u = u0 + (ty(level) - v0) / (v1 - v0) * (u1 - u0)
    return Crossing(float(np.exp(u) if log_x else u), float(x[i]), float(x[i + 1]), status)


def _row(
    kind: str,
    quantity: str,
    level: float,
    along: str,
    crossing: Crossing,
    n_points: int,
    coords: dict,
    budget_steps: float = math.nan,
) -> dict:
    return {
        "boundary": kind,
        "quantity": quantity,
        "level": level,
        "budget_steps": budget_steps,
        "along": along,
        "value": crossing.value,
        "value_error": math.nan,
        "lower": crossing.lower,
        "upper": crossing.upper,
        "status": crossing.status,
        "n_points": n_points,
        **coords,
    }


def groups_by(frame: pd.DataFrame, keys: list[str]):
    """(coords dict, sub-frame) for each combination of `keys` (NaN keys kept)."""
    if not keys:
        yield {}, frame
        return
    for key, sub in frame.groupby(keys, dropna=False, sort=True):
        yield dict(zip(keys, key if isinstance(key, tuple) else (key,))), sub


# --- jamming --------------------------------------------------------------------------


def first_fit_step(cells: pd.DataFrame, measurements: pd.DataFrame | None = None) -> pd.Series:
    """Per cell_id, the first step at which N_Δ = 0 (inf if never).

    A fitted cell stops when N_Δ hits 0, so its `steps` is that step; checkpoints
    with n_unsatisfied == 0 in `measurements` are also taken into account."""
    steps = pd.Series(
        np.where(cells["fitted"].astype(bool), cells["steps"], np.inf),
        index=cells["cell_id"].to_numpy(),
        dtype=float,
    )
    if measurements is not None and len(measurements):
        zero = measurements.loc[measurements["n_unsatisfied"] == 0]
        seen = zero.groupby("cell_id")["step"].min()
        steps = np.fmin(steps, seen.reindex(steps.index).astype(float).fillna(np.inf))
    return steps


def fitted_within(cells: pd.DataFrame, first_fit: pd.Series, budget: float) -> np.ndarray:
    """1.0 if the cell had N_Δ = 0 within `budget` steps, 0.0 if it provably did not
    (it ran past the budget, or stopped for good on NaN / zero gradient), NaN if
    unknown (it stopped earlier on a time or wall-clock budget)."""
    fit_step = first_fit.reindex(cells["cell_id"]).to_numpy()
    ran_past = cells["steps"].to_numpy(float) >= budget
    terminal = (
        cells["stop_reason"].isin(TERMINAL_STOPS).to_numpy()
        if "stop_reason" in cells
        else np.zeros(len(cells), bool)
    )
    out = np.where(ran_past | terminal, 0.0, np.nan)
    return np.where(fit_step <= budget, 1.0, out)


def step_budgets(cells: pd.DataFrame, fractions: Sequence[float] = BUDGET_FRACTIONS) -> list[float]:
    """Step budgets at which to draw jamming lines: fractions of the campaign's
    largest `max_steps` (or of the most steps any cell ran), plus every distinct
    `max_steps` when cells had different budgets."""
    caps = (
        cells["max_steps"].dropna().astype(float)
        if "max_steps" in cells
        else pd.Series([], dtype=float)
    )
    top = caps.max() if len(caps) else float(cells["steps"].max())
    if not np.isfinite(top) or top <= 0:
        return []
    budgets = {float(max(1, round(f * top))) for f in fractions} | set(caps.unique())
    return sorted(budgets)


def _jamming_rows(known: pd.DataFrame, fixed: list[str], budget: float) -> list[dict]:
    """One jamming row per combination of `fixed`, from the 0/1 column `fit`."""
    rows = []
    for coords, sub in groups_by(known, fixed):
        frac = sub.groupby("width")["fit"].mean()
        crossing = locate_crossing(frac.index, frac.to_numpy(), JAMMING_LEVEL, log_x=True)
        rows.append(
            _row(
                "jamming",
                "fitted_fraction",
                JAMMING_LEVEL,
                "width",
                crossing,
                len(frac),
                coords,
                budget,
            )
        )
    return rows


def jamming_line(
    cells: pd.DataFrame,
    axes: Sequence[str],
    measurements: pd.DataFrame | None = None,
    fractions: Sequence[float] = BUDGET_FRACTIONS,
) -> pd.DataFrame:
    """Rows of h*(fixed axes, budget): the width where the fraction of done cells
    fitted within the budget crosses 1/2 (log h). `cells` must hold done cells only.

    Step budgets come from `step_budgets`. When some cell stopped on a flow-time or
    wall-clock budget, the line "as run" (each cell's own budgets, its `fitted`
    column, split by the budget axes) is added with budget_steps = NaN."""
    fixed = [a for a in axes if a != "width" and a not in BUDGET_AXES]
    cells = without_stalled(cells)
    first = first_fit_step(cells, measurements)
    rows = []
    for budget in step_budgets(cells, fractions):
        known = cells.assign(fit=fitted_within(cells, first, budget)).dropna(subset=["fit"])
        rows += _jamming_rows(known, fixed, budget)
    if cells["stop_reason"].isin(("max_time", "max_wall")).any():
        as_run = cells.assign(fit=cells["fitted"].astype(float))
        rows += _jamming_rows(as_run, [a for a in axes if a != "width"], math.nan)
    return pd.DataFrame(rows)


def without_stalled(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells whose flow did not stall: a stalled cell is neither fitted nor jammed."""
    if "stop_reason" not in cells:
        return cells
    return cells.loc[cells["stop_reason"] != STALLED]


def _matching(frame: pd.DataFrame, coords: dict) -> np.ndarray:
    """Rows of `frame` equal to `coords` on every key (null matches null)."""
    mask = np.ones(len(frame), bool)
    for axis, value in coords.items():
        column = frame[axis]
        mask &= (column.isna() if pd.isna(value) else column == value).to_numpy()
    return mask


def n_star(jamming: pd.DataFrame, cells: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """N*(P): for each jamming row, the parameter count at h*, interpolated log-log
    between the bracketing widths' n_params. Empty unless train_size is swept."""
    if jamming.empty or "train_size" not in axes or cells["train_size"].nunique() < 2:
        return pd.DataFrame()
    fixed = [a for a in axes if a != "width" and a not in BUDGET_AXES]
    rows = []
    for _, row in jamming.iterrows():
        coords = {a: row[a] for a in fixed}
        same = cells.loc[_matching(cells, coords)]

        def count(width: float) -> float:
            at = same.loc[same["width"] == width, "n_params"]
            return float(at.iloc[0]) if np.isfinite(width) and len(at) else math.nan

        lo, hi = count(row["lower"]), count(row["upper"])
        value = math.nan
        if np.isfinite(row["value"]):
            t = math.log(row["value"] / row["lower"]) / math.log(row["upper"] / row["lower"])
            value = math.exp(math.log(lo) + t * math.log(hi / lo))
        crossing = Crossing(value, lo, hi, row["status"])
        rows.append(
            _row(
                "n_star",
                "fitted_fraction",
                JAMMING_LEVEL,
                "n_params",
                crossing,
                int(row["n_points"]),
                coords,
                row["budget_steps"],
            )
        )
    return pd.DataFrame(rows)


# --- lazy / feature crossover -----------------------------------------------------------


def crossover_line(
    ensembles: pd.DataFrame, axes: Sequence[str], levels: Sequence[float] = CROSSOVER_LEVELS
) -> pd.DataFrame:
    """Rows of α̃*(fixed axes, c): where the geometric-mean ntk_change, decreasing
    in α̃, crosses c (log-log)."""
    fixed = [a for a in axes if a != "alpha_tilde"]
    rows = []
    for coords, sub in groups_by(ensembles, fixed):
        n_points = int(np.isfinite(sub["ntk_change"].to_numpy(float)).sum())
        for level in levels:
            crossing = locate_crossing(
                sub["alpha_tilde"],
                sub["ntk_change"],
                level,
                increasing=False,
                log_x=True,
                log_y=True,
            )
            rows.append(
                _row("crossover", "ntk_change", level, "alpha_tilde", crossing, n_points, coords)
            )
    return pd.DataFrame(rows)


def boundaries_table(
    cells: pd.DataFrame,
    ensembles: pd.DataFrame,
    axes: Sequence[str],
    measurements: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Jamming lines, N*(P) and crossover lines of a campaign, long format.
    `cells`: done cells only; `axes`: the grouping axes of `ensembles`."""
    jamming = jamming_line(cells, axes, measurements)
    parts = [jamming, n_star(jamming, cells, axes), crossover_line(ensembles, axes)]
    parts = [p for p in parts if not p.empty]
    return order_columns(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())


def order_columns(table: pd.DataFrame) -> pd.DataFrame:
    """BOUNDARY_COLUMNS first (created empty if missing), then the coordinates."""
    for column in BOUNDARY_COLUMNS:
        if column not in table:
            table[column] = pd.Series(
                dtype=object if column in ("boundary", "quantity", "along", "status") else float
            )
    rest = [c for c in table.columns if c not in BOUNDARY_COLUMNS]
    return table[list(BOUNDARY_COLUMNS) + rest]
