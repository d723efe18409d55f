"""Phase boundaries land where constructed, and unbracketed ones are flagged, not extrapolated."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.boundaries import (
    crossover_line,
    first_fit_step,
    fitted_within,
    jamming_line,
    locate_crossing,
    n_star,
    step_budgets,
)
from pipeline.analysis.ensembles import ensemble_table, grid_axes


def test_jamming_width_is_the_geometric_midpoint_of_a_zero_to_one_jump():
    crossing = locate_crossing([10, 20, 40, 80], [0, 0, 1, 1], 0.5)
    assert crossing.status == "bracketed"
    assert crossing.value == pytest.approx(math.sqrt(20 * 40), rel=1e-12)
    assert (crossing.lower, crossing.upper) == (20, 40)


def test_jamming_interpolation_is_linear_in_log_width():
    # fraction 0.25 -> 0.75 between h = 16 and 64: 1/2 is halfway in log h, i.e. h = 32
    assert locate_crossing([16, 64], [0.25, 0.75], 0.5).value == pytest.approx(32.0)
    # 0 -> 2/3 between 10 and 1000: 1/2 is 3/4 of the way in log h: 10^(1 + 2*3/4)
    assert locate_crossing([10, 1000], [0, 2 / 3], 0.5).value == pytest.approx(10**2.5)


@pytest.mark.parametrize("c", [0.01, 0.1, 1.0, 10.0])
def test_crossover_of_inverse_alpha_is_exactly_one_over_c(c):
    alphas = np.geomspace(1e-3, 1e3, 13) * 1.07  # grid points never equal 1/c
    crossing = locate_crossing(alphas, 1 / alphas, c, increasing=False, log_y=True)
    assert crossing.status == "bracketed"
    assert crossing.value == pytest.approx(1 / c, rel=1e-12)
    assert crossing.lower < 1 / c < crossing.upper


def test_crossings_outside_the_grid_are_flagged_not_extrapolated():
    all_fitted = locate_crossing([10, 20, 40], [0.6, 1, 1], 0.5)
    assert (all_fitted.status, all_fitted.upper) == ("below_grid", 10)
    assert math.isnan(all_fitted.value) and math.isnan(all_fitted.lower)
    none_fitted = locate_crossing([10, 20, 40], [0, 0, 0.4], 0.5)
    assert (none_fitted.status, none_fitted.lower) == ("above_grid", 40)
    assert math.isnan(none_fitted.value)
    # ntk_change = 1/α̃ on [1, 100] crosses 10 at α̃ = 0.1 and 0.001 at α̃ = 1000
    alphas = np.array([1.0, 10.0, 100.0])
    assert (
        locate_crossing(alphas, 1 / alphas, 10, increasing=False, log_y=True).status == "below_grid"
    )
    assert (
        locate_crossing(alphas, 1 / alphas, 1e-3, increasing=False, log_y=True).status
        == "above_grid"
    )
    assert locate_crossing([], [], 0.5).status == "no_data"


def test_several_crossings_are_reported_as_not_monotone():
    crossing = locate_crossing([10, 20, 40, 80], [0, 1, 0, 1], 0.5)
    assert crossing.status == "not_monotone"
    assert crossing.value == pytest.approx(math.sqrt(200))  # the first crossing


def test_a_grid_point_exactly_at_the_level_is_the_crossing():
    crossing = locate_crossing([10, 20, 40, 80], [0, 0.5, 0.5, 1], 0.5)
    assert (crossing.status, crossing.value) == ("bracketed", pytest.approx(20))


def _cells(rows):
    base = dict(
        status="done",
        train_size=100,
        depth=2,
        n_params=1,
        stop_reason="max_steps",
        train_loss=0.1,
        n_unsatisfied=1,
        test_error=0.1,
        ntk_change=1.0,
        max_steps=1000,
    )
    return pd.DataFrame([{**base, **r} for r in rows])


def test_fitted_within_a_budget_uses_first_zero_and_knows_what_it_cannot_know():
    cells = _cells(
        [
            dict(cell_id="a", fitted=True, steps=50, stop_reason="fitted"),
            dict(cell_id="b", fitted=False, steps=1000),  # ran the full budget
            dict(cell_id="c", fitted=False, steps=30, stop_reason="max_time"),  # stopped early
            dict(cell_id="d", fitted=False, steps=20, stop_reason="nan"),  # never fits
            dict(cell_id="e", fitted=False, steps=1000),
        ]
    )
    # e had N_Δ = 0 at a checkpoint (step 400) and lost it again
    measurements = pd.DataFrame(
        dict(cell_id=["e", "e", "a"], step=[100, 400, 10], n_unsatisfied=[3, 0, 2])
    )
    first = first_fit_step(cells, measurements)
    assert first.to_dict() == {"a": 50, "b": np.inf, "c": np.inf, "d": np.inf, "e": 400}
    np.testing.assert_array_equal(fitted_within(cells, first, 40), [0, 0, np.nan, 0, 0])
    np.testing.assert_array_equal(fitted_within(cells, first, 500), [1, 0, np.nan, 0, 1])


def test_step_budgets_are_fractions_of_the_campaign_budget_and_each_cell_budget():
    cells = _cells(
        [
            dict(cell_id="a", fitted=False, steps=1000),
            dict(cell_id="b", fitted=False, steps=3000, max_steps=3000),
        ]
    )
    assert step_budgets(cells) == [30.0, 300.0, 1000.0, 3000.0]


def _jamming_grid(fit_steps_by_width, alpha_tilde=1.0, train_size=100, n_params=None):
    """Two seeds per width; seed k fits at fit_steps_by_width[h][k] (None = never)."""
    rows = []
    for width, fit_steps in fit_steps_by_width.items():
        for seed, step in enumerate(fit_steps):
            rows.append(
                dict(
                    cell_id=f"{alpha_tilde}-{train_size}-{width}-{seed}",
                    width=width,
                    alpha_tilde=alpha_tilde,
                    train_size=train_size,
                    seed=seed,
                    fitted=step is not None,
                    steps=step or 1000,
                    stop_reason="fitted" if step else "max_steps",
                    n_params=(n_params or (lambda h: 2 * h * h))(width),
                )
            )
    return _cells(rows)


def test_jamming_line_moves_to_larger_width_at_smaller_budget():
    cells = _jamming_grid({10: [None, None], 20: [None, None], 40: [5, 500], 80: [5, 5]})
    rows = jamming_line(cells, ["width", "alpha_tilde", "train_size"])
    by_budget = rows.set_index("budget_steps")
    # budget 1000: 0, 0, 1, 1 -> sqrt(20*40); budget 100: 0, 0, 1/2, 1 -> exactly 40
    assert by_budget.loc[1000.0, "value"] == pytest.approx(math.sqrt(800))
    assert by_budget.loc[100.0, "value"] == pytest.approx(40)
    assert by_budget.loc[10.0, "value"] == pytest.approx(40)
    assert set(rows["status"]) == {"bracketed"}
    assert "width" not in rows or rows["width"].isna().all()  # width is what is located


def test_n_star_is_the_parameter_count_at_the_jamming_width_for_each_p():
    widths = {10: [None, None], 20: [None, None], 40: [5, 5], 80: [5, 5]}
    cells = pd.concat(
        [
            _jamming_grid(widths, train_size=100),
            _jamming_grid({10: [None] * 2, 20: [5, 5], 40: [5, 5], 80: [5, 5]}, train_size=50),
        ],
        ignore_index=True,
    )
    axes = ["width", "alpha_tilde", "train_size"]
    rows = n_star(jamming_line(cells, axes), cells, axes)
    top = rows.loc[rows["budget_steps"] == 1000].set_index("train_size")
    # N = 2h² is a power law, so log-log interpolation at h* = sqrt(h1 h2) gives 2 h1 h2
    assert top.loc[100, "value"] == pytest.approx(2 * 20 * 40)
    assert top.loc[50, "value"] == pytest.approx(2 * 10 * 20)
    assert (top.loc[100, "lower"], top.loc[100, "upper"]) == (800, 3200)
    assert set(rows["along"]) == {"n_params"}


def test_crossover_line_per_width_from_geometric_mean_ntk_change():
    rows = []
    for width in (32, 64):
        for alpha in (0.05, 0.5, 5.0, 50.0):
            for seed, factor in enumerate((0.5, 2.0)):  # geometric mean: factor 1
                rows.append(
                    dict(
                        cell_id=f"{width}-{alpha}-{seed}",
                        width=width,
                        alpha_tilde=alpha,
                        seed=seed,
                        fitted=True,
                        steps=10,
                        ntk_change=factor / alpha,
                        alpha=alpha / np.sqrt(width),
                    )
                )
    cells = _cells(rows)
    ensembles = ensemble_table(cells, None)
    crossover = crossover_line(ensembles, grid_axes(cells))
    for width in (32, 64):
        at = crossover.loc[crossover["width"] == width].set_index("level")
        assert at.loc[1.0, "value"] == pytest.approx(1.0)
        assert at.loc[0.1, "value"] == pytest.approx(10.0)
        assert at.loc[10.0, "value"] == pytest.approx(0.1)
        assert at.loc[0.01, "status"] == "above_grid" and math.isnan(at.loc[0.01, "value"])


def test_time_budgets_add_the_jamming_line_as_run():
    cells = _jamming_grid({10: [None, None], 20: [None, None], 40: [5, 5], 80: [5, 5]})
    cells.loc[cells["width"] <= 20, ["stop_reason", "steps"]] = ["max_time", 30]
    cells["max_time"] = 50.0
    rows = jamming_line(cells, ["width", "alpha_tilde", "train_size", "max_time"])
    as_run = rows.loc[rows["budget_steps"].isna()]
    assert len(as_run) == 1 and as_run["value"].iloc[0] == pytest.approx(math.sqrt(800))
    # at 1000 steps the time-stopped widths are unknown: the grid no longer brackets h*
    at_1000 = rows.loc[rows["budget_steps"] == 1000].iloc[0]
    assert (at_1000["status"], at_1000["n_points"]) == ("below_grid", 2)
