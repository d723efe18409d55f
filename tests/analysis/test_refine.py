"""Adaptive refinement of phase boundaries (issue 8).

The planner tests refine against a known ground truth: an "oracle" function standing in
for training, ntk_change(h, α̃) = (α̃/α*(h))^-1 (crossover at α̃ = α*(h) for c = 1) and a
fitted fraction that steps from 0 to 1 at h*(α̃) (jamming). The planner must bracket
each boundary point within the tolerance with far fewer points than a uniform grid of
the same resolution.
"""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.analysis.boundaries import crossover_line
from pipeline.analysis.refine_plan import (
    AXES,
    bracket_status,
    extension,
    is_resolved,
    midpoint,
    plan_refinement,
    uniform_grid_cells,
)
from pipeline.spec.campaign import SpecError, parse_campaign
from pipeline.spec.schema import Refinement

CROSSOVER, JAMMING = AXES["crossover"], AXES["jamming"]


# --- oracles: the test's ground truth, evaluated where the planner asks --------------------


def alpha_star(width):
    """Known crossover line α̃*(h) = 0.5·√h."""
    return 0.5 * np.sqrt(np.asarray(width, float))


def width_star(alpha_tilde):
    """Known jamming line h*(α̃) = 20·α̃^0.1 (not an integer)."""
    return 20.0 * np.asarray(alpha_tilde, float) ** 0.1


def crossover_oracle(points: pd.DataFrame, star=alpha_star) -> pd.DataFrame:
    return points.assign(
        ntk_change=(points["alpha_tilde"] / star(points["width"])) ** -1.0, n_seeds=1
    )


def jamming_oracle(points: pd.DataFrame, star=width_star) -> pd.DataFrame:
    fitted = (points["width"] >= star(points["alpha_tilde"])).astype(float)
    return points.assign(fitted_fraction=fitted, n_seeds=1)


def grid(widths, alphas) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"width": int(h), "alpha_tilde": float(a), "train_size": 64}
            for h in widths
            for a in alphas
        ]
    )


def refine_with(
    oracle,
    points: pd.DataFrame,
    target: Refinement,
    n_seeds: int = 1,
    max_cells: float = math.inf,
    max_rounds: int = 100,
) -> tuple[pd.DataFrame, int]:
    """Rounds of plan → evaluate, as the campaign driver does; returns (points, rounds)."""
    for rounds in range(max_rounds):
        budget = max_cells - len(points) * n_seeds
        plan = plan_refinement(oracle(points), target, n_seeds, budget)
        if plan.empty:
            return points, rounds
        points = pd.concat([points, plan[points.columns]], ignore_index=True)
    raise AssertionError(f"refinement did not stop within {max_rounds} rounds")


def uniform_count(lower: float, upper: float, tolerance: float, integer: bool) -> int:
    """Points of a geometric grid from lower to upper with neighbours within `tolerance`
    (integer axes: rounded, repeats dropped): the uniform grid of the same resolution."""
    n = math.ceil(math.log(upper / lower) / math.log(tolerance)) + 1
    values = np.geomspace(lower, upper, n)
    return len(np.unique(np.round(values))) if integer else n


# --- the planner locates known boundaries with few points ---------------------------------


def test_crossover_is_bracketed_within_tolerance_with_a_fraction_of_the_uniform_grid():
    widths, coarse = [8, 16, 32, 64, 128, 256, 512, 1024], [1e-2, 1, 1e2, 1e4]
    target = Refinement("crossover", level=1.0, tolerance=1.1)
    points, rounds = refine_with(crossover_oracle, grid(widths, coarse), target)
    status = bracket_status(crossover_oracle(points), target)
    truth = alpha_star(status["width"])
    assert status["resolved"].all() and (status["ratio"] <= 1.1).all()
    assert ((status["lower"] < truth) & (truth <= status["upper"])).all()
    # the oracle is a power law, so log-log interpolation recovers α̃* exactly
    np.testing.assert_allclose(status["value"], truth, rtol=1e-9)
    uniform = len(widths) * uniform_count(1e-2, 1e4, 1.1, integer=False)
    assert uniform_grid_cells(points, target, n_seeds=3) == 3 * uniform
    print(f"crossover: {len(points)} points in {rounds} rounds vs {uniform} uniform")
    assert len(points) <= uniform / 10


def test_jamming_is_bracketed_by_adjacent_widths_with_a_fraction_of_the_uniform_grid():
    alphas, coarse = np.logspace(-2, 4, 7), [2, 8, 32, 128, 512]
    target = Refinement("jamming", level=0.5, tolerance=1.05)
    points, rounds = refine_with(jamming_oracle, grid(coarse, alphas), target)
    status = bracket_status(jamming_oracle(points), target)
    truth = width_star(status["alpha_tilde"])
    assert status["resolved"].all()
    assert ((status["lower"] < truth) & (truth <= status["upper"])).all()
    assert ((status["upper"] - status["lower"] == 1) | (status["ratio"] <= 1.05)).all()
    uniform = len(alphas) * uniform_count(2, 512, 1.05, integer=True)
    assert uniform_grid_cells(points, target, n_seeds=1) == uniform
    print(f"jamming: {len(points)} points in {rounds} rounds vs {uniform} uniform")
    assert len(points) <= uniform / 4


@settings(max_examples=25, deadline=None)
@given(log_star=st.lists(st.floats(-5, 7), min_size=3, max_size=3), tolerance=st.floats(1.02, 3.0))
def test_any_crossover_inside_the_bounds_is_found_from_a_two_point_grid(log_star, tolerance):
    widths = [10, 100, 1000]
    star = dict(zip(widths, 10.0 ** np.asarray(log_star)))
    oracle = lambda p: crossover_oracle(p, lambda h: np.vectorize(star.get)(h))
    target = Refinement("crossover", 1.0, tolerance)
    points, rounds = refine_with(oracle, grid(widths, [1.0, 10.0]), target)
    status = bracket_status(oracle(points), target)
    truth = np.vectorize(star.get)(status["width"])
    assert status["resolved"].all()
    assert ((status["lower"] < truth) & (truth <= status["upper"])).all()
    # extensions ×10 up to 7 decades away, then bisection of one decade
    assert rounds <= 7 + math.ceil(math.log2(math.log(10) / math.log(tolerance))) + 1


# --- edge cases --------------------------------------------------------------------------


def test_an_unbracketed_boundary_is_extended_outwards_but_never_past_the_bounds():
    target = Refinement("crossover", 1.0, 1.5)
    below = grid([16], [1.0, 10.0]).assign(ntk_change=[0.5, 0.05])  # lazy everywhere
    above = grid([32], [1.0, 10.0]).assign(ntk_change=[50.0, 5.0])  # feature everywhere
    status = bracket_status(pd.concat([below, above]), target)
    assert list(status["status"]) == ["below_grid", "above_grid"]
    assert list(status["next_value"]) == [0.1, 100.0]
    points, _ = refine_with(
        lambda p: crossover_oracle(p, lambda h: np.full(len(h), 1e-9)), grid([16], [1.0]), target
    )
    assert points["alpha_tilde"].min() == CROSSOVER.bounds[0]
    last = bracket_status(crossover_oracle(points, lambda h: np.full(len(h), 1e-9)), target)
    assert list(last["action"]) == ["at_bound"] and not last["resolved"].any()


def test_widths_extend_by_factors_of_two_down_to_one():
    assert extension(8, -1, JAMMING) == 4 and extension(3, -1, JAMMING) == 1
    assert math.isnan(extension(1, -1, JAMMING)) and extension(5, 1, JAMMING) == 10
    assert math.isnan(extension(JAMMING.bounds[1], 1, JAMMING))
    assert midpoint(8, 10, JAMMING) == 9 and math.isnan(midpoint(8, 9, JAMMING))
    assert midpoint(1e-2, 1e2, CROSSOVER) == 1.0
    assert is_resolved(8, 9, 1.01, JAMMING) and not is_resolved(8, 10, 1.01, JAMMING)


def test_non_monotone_data_refines_the_crossing_that_aggregate_reports():
    """A bump past the level after the first crossing: the first crossing (in the
    expected, decreasing direction) is refined, and the aggregate's interpolated
    boundary lies inside the refined bracket."""

    def bumpy(points):
        a = points["alpha_tilde"]
        return points.assign(ntk_change=np.where((a > 300) & (a < 3000), 5.0, 3.0 / a))

    target = Refinement("crossover", 1.0, 1.1)
    points, _ = refine_with(bumpy, grid([64], [1e-2, 1, 1e2, 1e3, 1e4]), target)
    status = bracket_status(bumpy(points), target).iloc[0]
    assert status["status"] == "not_monotone" and status["resolved"]
    assert status["lower"] < 3.0 <= status["upper"]
    line = crossover_line(bumpy(points), ["width", "alpha_tilde", "train_size"], [1.0]).iloc[0]
    assert status["lower"] <= line["value"] <= status["upper"]


def test_a_quantity_that_crosses_the_wrong_way_is_reported_not_refined():
    target = Refinement("crossover", 1.0, 1.1)
    ensembles = grid([8], [0.1, 1, 10]).assign(ntk_change=[0.1, 1.0, 10.0])  # increasing
    status = bracket_status(ensembles, target)
    assert list(status["action"]) == ["wrong_direction"]
    assert plan_refinement(ensembles, target, n_seeds=2).empty


def test_a_midpoint_tried_without_data_stalls_instead_of_repeating():
    target = Refinement("crossover", 1.0, 1.1)
    ensembles = grid([8], [0.01, 0.1, 1.0]).assign(ntk_change=[10.0, np.nan, 0.1])
    assert list(bracket_status(ensembles, target)["action"]) == ["stalled"]
    # a point in the manifest that has no ensemble row yet (all its seeds failed)
    ensembles = ensembles.drop(index=1)
    assert list(bracket_status(ensembles, target)["action"]) == ["bisect"]
    planned = grid([8, 16], [0.1])
    assert list(bracket_status(ensembles, target, planned)["action"]) == ["stalled"]
    assert plan_refinement(ensembles, target, 3, planned=planned).empty


def test_resolved_points_add_nothing():
    target = Refinement("jamming", 0.5, 1.25)
    ensembles = grid([20, 21], [1.0, 10.0]).assign(fitted_fraction=[0.0, 0.0, 1.0, 1.0])
    status = bracket_status(ensembles, target)
    assert status["resolved"].all() and list(status["ratio"]) == [1.05, 1.05]
    assert plan_refinement(ensembles, target, n_seeds=4).empty


def test_the_budget_buys_extensions_first_then_the_widest_brackets():
    target = Refinement("crossover", 1.0, 1.1)
    ensembles = pd.concat(
        [
            grid([8], [1, 10]).assign(ntk_change=[2.0, 0.5]),  # bracket ×10
            grid([16], [1, 1e3]).assign(ntk_change=[2.0, 0.5]),  # bracket ×1000
            grid([32], [1, 10]).assign(ntk_change=[0.5, 0.05]),  # needs an extension
        ]
    )
    plan = plan_refinement(ensembles, target, n_seeds=3, budget_cells=7)
    assert list(plan["width"]) == [32, 16] and list(plan["action"]) == ["extend", "bisect"]
    assert plan_refinement(ensembles, target, n_seeds=3, budget_cells=2).empty
    everything = plan_refinement(ensembles, target, n_seeds=3)
    assert list(everything["width"]) == [32, 16, 8]


def test_max_cells_caps_the_whole_refinement():
    target = Refinement("crossover", 1.0, 1.01)
    coarse = grid([8, 16, 32], [1e-2, 1e4])
    points, _ = refine_with(crossover_oracle, coarse, target, n_seeds=4, max_cells=60)
    assert len(points) * 4 <= 60 and len(points) == 15
    assert not bracket_status(crossover_oracle(points), target)["resolved"].all()


def test_other_swept_axes_get_their_own_boundary_points():
    target = Refinement("crossover", 1.0, 1.2)
    points = pd.concat([grid([8], [1e-2, 1e2]).assign(train_size=p) for p in (64, 256)])
    oracle = lambda p: p.assign(ntk_change=p["train_size"] / 64 / p["alpha_tilde"])
    points, _ = refine_with(oracle, points.reset_index(drop=True), target)
    status = bracket_status(oracle(points), target)
    assert list(status["train_size"]) == [64, 256] and status["resolved"].all()
    assert (
        (status["lower"] < status["train_size"] / 64)
        & (status["train_size"] / 64 <= status["upper"])
    ).all()


# --- [refine] in the campaign spec -------------------------------------------------------


def stripe_spec_data() -> dict:
    with open("campaigns/stripe_small.toml", "rb") as file:
        return tomllib.load(file)


def test_refine_section_fills_the_boundarys_default_level_and_round_trips():
    spec = parse_campaign({**stripe_spec_data(), "refine": {"boundary": "jamming"}})
    assert spec.refine == Refinement("jamming", 0.5, 1.25, None)
    spec = parse_campaign(
        {**stripe_spec_data(), "refine": {"boundary": "crossover", "max_cells": 40}}
    )
    assert spec.refine == Refinement("crossover", 1.0, 1.25, 40)
    assert parse_campaign(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    "refine, path, fix",
    [
        ({"boundary": "jamming", "level": 2.0}, "refine", "use 0.5"),
        ({"boundary": "crossover", "tolerance": 1}, "refine.tolerance", "> 1"),
        ({"boundary": "crossover", "max_cells": 8}, "refine.max_cells", "raise it above 8"),
        ({"level": 1.0}, "refine.boundary", 'add boundary = "crossover"'),
        ({"boundary": "both"}, "refine.boundary", "one of crossover, jamming"),
    ],
)
def test_a_bad_refine_section_names_the_field_and_the_fix(refine, path, fix):
    with pytest.raises(SpecError) as error:
        parse_campaign({**stripe_spec_data(), "refine": refine}, "x.toml")
    assert f"({path} in x.toml)" in str(error.value) and fix in str(error.value)


def test_refining_the_crossover_needs_the_ntk_measured():
    data = stripe_spec_data()
    data["observables"]["ntk"] = False
    with pytest.raises(SpecError, match=r"set ntk = true.*\(refine.boundary in x.toml\)"):
        parse_campaign({**data, "refine": {"boundary": "crossover"}}, "x.toml")
    assert parse_campaign({**data, "refine": {"boundary": "jamming"}}).refine.boundary == "jamming"
