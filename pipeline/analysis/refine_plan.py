"""Where to add grid points so that a phase boundary gets bracketed finely (pure: no I/O).

A boundary point is the crossing of a level by an ensemble quantity along one grid axis,
at fixed values of the other axes (`pipeline.analysis.boundaries.locate_crossing` finds it):

- crossover α̃*(h): at each width, the geometric-mean `ntk_change`, decreasing in α̃,
  crosses c between grid points lo < hi. Next point: √(lo·hi) (bisection in log α̃),
  until hi/lo ≤ r.
- jamming h*(α̃): at each α̃, the `fitted_fraction` (seeds with N_Δ = 0 within the
  campaign's budget), increasing in h, crosses ½ between widths lo < hi. Next width:
  round(√(lo·hi)) (bisection in log h on integers), until the widths are adjacent
  integers or hi/lo ≤ r.

Not bracketed (every point on one side): the next point extends the axis outwards by a
factor (×10 in α̃, ×2 in h) up to fixed bounds (AXES[kind].bounds); at a bound the point is
given up ("at_bound").

Non-monotone data: the bracket refined is that of the *first crossing in the expected
direction*, the one `locate_crossing` interpolates in, so the boundary that `aggregate`
reports always lies inside the refined bracket. Bisection keeps that bracket consistent:
a new point inside [lo, hi] is either past the level (the first crossing is then in
[lo, mid]) or not (then in [mid, hi]). Data that only crosses in the wrong direction is
reported ("wrong_direction") and not refined.

A proposed point that is already planned (e.g. in the manifest) but has no finite value
(all its seeds failed, or the quantity is not measured) is never proposed again: the
bracket is "stalled". Proposals cost `n_seeds` cells each; with a budget too small for
all, extensions go first, then the widest brackets (largest hi/lo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.analysis.boundaries import groups_by, locate_crossing
from pipeline.analysis.ensembles import GRID_AXES
from pipeline.spec.schema import Refinement

PROPOSAL_DIGITS = 6  # proposed α̃ are rounded so that cell ids stay readable and stable
STATUS_COLUMNS = (
    "boundary",
    "quantity",
    "level",
    "along",
    "value",
    "lower",
    "upper",
    "ratio",
    "status",
    "resolved",
    "action",
    "next_value",
    "n_points",
)


@dataclass(frozen=True)
class BoundaryAxis:
    """How one kind of boundary is located: the axis it lies along, the quantity that
    crosses the level there, and how that axis is extended and bisected."""

    along: str
    quantity: str
    increasing: bool  # the quantity grows along the axis (past = above the level)
    log_quantity: bool  # interpolate log(quantity) (needs quantity > 0)
    integer: bool  # the axis takes integer values
    extend_factor: float  # the step outwards when the grid does not bracket
    bounds: tuple[float, float]  # never propose outside these


AXES = {
    "crossover": BoundaryAxis(
        "alpha_tilde",
        "ntk_change",
        increasing=False,
        log_quantity=True,
        integer=False,
        extend_factor=10.0,
        bounds=(1e-6, 1e8),
    ),
    "jamming": BoundaryAxis(
        "width",
        "fitted_fraction",
        increasing=True,
        log_quantity=False,
        integer=True,
        extend_factor=2.0,
        bounds=(1, 2**16),
    ),
}


def fixed_axes(ensembles: pd.DataFrame, along: str) -> list[str]:
    """The grid axes of `ensembles` other than `along`: one boundary point per value."""
    return [a for a in GRID_AXES if a in ensembles and a != along]


def matching_rows(frame: pd.DataFrame, coords: dict) -> np.ndarray:
    """Rows of `frame` equal to `coords` on every key present (null matches null)."""
    mask = np.ones(len(frame), bool)
    for key, value in coords.items():
        if key in frame:
            column = frame[key]
            mask &= (column.isna() if pd.isna(value) else column == value).to_numpy()
    return mask


def midpoint(lower: float, upper: float, axis: BoundaryAxis) -> float:
    """√(lower·upper), rounded: to an integer strictly inside (lower, upper) on an integer
    axis, else to PROPOSAL_DIGITS digits; NaN if no such value lies strictly inside."""
    mid = math.sqrt(lower * upper)
    if axis.integer:
        mid = min(max(round(mid), lower + 1), upper - 1)
    else:
        mid = float(f"{mid:.{PROPOSAL_DIGITS}g}")
    return float(mid) if lower < mid < upper else math.nan


def extension(edge: float, outwards: int, axis: BoundaryAxis) -> float:
    """The next point beyond the grid's `edge` (outwards = -1 below, +1 above), clipped to
    the axis bounds; NaN if the edge is already at (or past) the bound."""
    low, high = axis.bounds
    step = edge * axis.extend_factor**outwards
    if axis.integer:
        step = math.floor(step) if outwards < 0 else math.ceil(step)
    else:
        step = float(f"{step:.{PROPOSAL_DIGITS}g}")
    step = min(max(step, low), high)
    return float(step) if (step < edge if outwards < 0 else step > edge) else math.nan


def is_resolved(lower: float, upper: float, tolerance: float, axis: BoundaryAxis) -> bool:
    """A bracket is fine enough when upper/lower ≤ tolerance (or, on an integer axis,
    when no integer lies strictly between lower and upper)."""
    if not (np.isfinite(lower) and np.isfinite(upper)):
        return False
    return upper / lower <= tolerance or (axis.integer and upper - lower <= 1)


def _already_planned(value: float, planned: np.ndarray) -> bool:
    return bool(np.isclose(planned, value, rtol=1e-9, atol=0).any())


def _next_point(
    crossing, tolerance: float, axis: BoundaryAxis, planned: np.ndarray
) -> tuple[bool, str, float]:
    """(resolved, action, next value) for one boundary point. Actions: resolved | bisect |
    extend (a point to add) | stalled | at_bound | wrong_direction | no_data (nothing to add)."""
    lower, upper, status = crossing.lower, crossing.upper, crossing.status
    if np.isfinite(lower) and np.isfinite(upper):
        if is_resolved(lower, upper, tolerance, axis):
            return True, "resolved", math.nan
        action, value = "bisect", midpoint(lower, upper, axis)
    elif status in ("below_grid", "above_grid"):
        outwards, edge = (-1, upper) if status == "below_grid" else (1, lower)
        action, value = "extend", extension(edge, outwards, axis)
        if not np.isfinite(value):
            return False, "at_bound", math.nan
    else:
        return False, "no_data" if status == "no_data" else "wrong_direction", math.nan
    if not np.isfinite(value) or _already_planned(value, planned):
        return False, "stalled", math.nan
    return False, action, value


def bracket_status(
    ensembles: pd.DataFrame, target: Refinement, planned: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per boundary point (per value of the axes other than the one the boundary
    lies along): its fixed coordinates, then STATUS_COLUMNS — the interpolated `value`,
    the bracket `lower`/`upper` and `ratio` = upper/lower, `status` as in
    pipeline.analysis.boundaries (bracketed | below_grid | above_grid | not_monotone | no_data),
    `resolved`, and the `action` and `next_value` the next refinement round takes.

    `planned`: grid points already queued or tried (e.g. the manifest), with the same axis
    columns; points of `ensembles` count as planned anyway. Pure."""
    axis = AXES[target.boundary]
    fixed = fixed_axes(ensembles, axis.along)
    rows = []
    for coords, sub in groups_by(ensembles, fixed):
        tried = sub[axis.along].to_numpy(float)
        if planned is not None and len(planned):
            tried = np.concatenate(
                [tried, planned.loc[matching_rows(planned, coords), axis.along].to_numpy(float)]
            )
        y = sub[axis.quantity].to_numpy(float)
        crossing = locate_crossing(
            sub[axis.along],
            y,
            target.level,
            increasing=axis.increasing,
            log_x=True,
            log_y=axis.log_quantity,
        )
        resolved, action, value = _next_point(crossing, target.tolerance, axis, tried)
        usable = np.isfinite(y) & ((y > 0) if axis.log_quantity else True)
        rows.append(
            {
                **coords,
                "boundary": target.boundary,
                "quantity": axis.quantity,
                "level": target.level,
                "along": axis.along,
                "value": crossing.value,
                "lower": crossing.lower,
                "upper": crossing.upper,
                "ratio": crossing.upper / crossing.lower,
                "status": crossing.status,
                "resolved": resolved,
                "action": action,
                "next_value": value,
                "n_points": int(usable.sum()),
            }
        )
    return pd.DataFrame(rows, columns=[*fixed, *STATUS_COLUMNS])


def plan_refinement(
    ensembles: pd.DataFrame,
    target: Refinement,
    n_seeds: int,
    budget_cells: float = math.inf,
    planned: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The grid points to add in the next round: one per unresolved boundary point that
    can move (action bisect or extend), each costing `n_seeds` cells, as many as
    `budget_cells` pays for — extensions first, then the widest brackets.

    Returns the points' grid coordinates (the fixed axes of `bracket_status` and the axis
    the boundary lies along, holding the new value) plus `action` and `ratio`. Pure."""
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds}")
    axis = AXES[target.boundary]
    status = bracket_status(ensembles, target, planned)
    fixed = [c for c in status.columns if c not in STATUS_COLUMNS]
    moves = status.loc[status["action"].isin(("bisect", "extend"))]
    moves = moves.assign(
        _first=(moves["action"] != "extend").astype(int),
        _width=-np.log(moves["ratio"].fillna(np.inf)),
    )
    moves = moves.sort_values(["_first", "_width", *fixed], kind="stable")
    affordable = int(budget_cells // n_seeds) if np.isfinite(budget_cells) else len(moves)
    moves = moves.head(max(affordable, 0))
    points = moves[fixed].assign(**{axis.along: moves["next_value"]})
    if axis.integer:
        points[axis.along] = points[axis.along].astype(int)
    points = points.assign(action=moves["action"], ratio=moves["ratio"])
    return points.reset_index(drop=True)


def uniform_grid_cells(points: pd.DataFrame, target: Refinement, n_seeds: int) -> int:
    """Cells a uniform grid of the same resolution would need: for each boundary point, a
    geometric grid over the span of `points` along the boundary's axis with neighbours
    within `target.tolerance` (on integer axes, the distinct rounded values), times n_seeds.
    `points`: grid points with the axis columns (e.g. the manifest's). Pure."""
    axis = AXES[target.boundary]
    total = 0
    for _, sub in groups_by(points, fixed_axes(points, axis.along)):
        lower, upper = sub[axis.along].min(), sub[axis.along].max()
        n = math.ceil(math.log(upper / lower) / math.log(target.tolerance) - 1e-9) + 1
        values = np.geomspace(lower, upper, n)
        total += len(np.unique(np.round(values))) if axis.integer else n
    return total * n_seeds
