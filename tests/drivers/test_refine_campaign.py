"""`refine_campaign` on a real ParquetStore: rounds, budget, resume after a killed run,
status lines. Cells are "trained" in process by the known-boundary oracle of
tests/analysis/test_refine.py (the test's ground truth standing in for training); the real
scheduler and trainer are exercised by the stripe campaign test at the end."""

from __future__ import annotations

import dataclasses
import math
import tomllib

import numpy as np
import pandas as pd
import pytest

from pipeline.drivers.refine import CampaignRunner, cells_at, default_target, refine_campaign
from pipeline.drivers.refine_status import bracket_lines, campaign_brackets
from pipeline.execute.local import LocalExecutor
from pipeline.spec.campaign import parse_campaign
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.frames import read_table
from pipeline.store.rows import Provenance, done_tables, manifest_table, utc_now
from tasks.records import CellResult
from tasks.specs import CellSpec

WIDTHS, COARSE_ALPHAS, SEEDS = (8, 16, 32, 64), (1e-2, 1.0, 1e2), (0, 1)


def alpha_star(width: float) -> float:
    return 0.5 * math.sqrt(width)


def width_star(alpha_tilde: float) -> float:
    return 20.0 * alpha_tilde**0.1


def oracle_result(cell: CellSpec) -> CellResult:
    """What the known boundaries say this cell does."""
    fitted = cell.width >= width_star(cell.alpha_tilde)
    return CellResult(
        stop_reason="fitted" if fitted else "max_steps",
        fitted=fitted,
        steps=10,
        flow_time=1.0,
        wall_seconds=0.0,
        gradient_evaluations=10,
        n_params=6 * cell.width,
        train_loss=0.0,
        train_error=0.0,
        n_unsatisfied=0 if fitted else 3,
        test_loss=0.0,
        test_error=0.1,
        ntk_change=alpha_star(cell.width) / cell.alpha_tilde,
        ntk_norm_initial=1.0,
        ntk_norm_final=1.0,
        test_outputs=np.ones(4),
        test_labels=np.ones(4),
        h0_eigenvalues=np.zeros(0),
    )


class OracleRunner:
    """Adds cells to the manifest and commits the oracle's results, skipping done cells;
    raises after `crash_after` commits (a killed driver)."""

    def __init__(self, campaign: str, crash_after: int | None = None):
        self.store, self.crash_after, self.commits = ParquetStore.open(campaign), crash_after, 0

    def __call__(self, cells: list[CellSpec]) -> None:
        self.store.extend_manifest(manifest_table(cells))
        done = self.store.cell_states()
        for cell in cells:
            if cell.cell_id in done:
                continue
            if self.commits == self.crash_after:
                raise KeyboardInterrupt("driver killed")
            run = Provenance("a", 1, None, None, "test", None, utc_now())
            self.store.commit(cell.cell_id, done_tables(cell, oracle_result(cell), [], run))
            self.commits += 1


def new_campaign(tmp_path, refine: dict | None = None) -> str:
    with open("campaigns/stripe_small.toml", "rb") as file:
        raw = tomllib.load(file)
    raw["grid"] = {"width": list(WIDTHS), "alpha_tilde": list(COARSE_ALPHAS), "seed": list(SEEDS)}
    spec = parse_campaign({**raw, **({"refine": refine} if refine else {})})
    campaign = str(tmp_path / "campaign")
    store = ParquetStore.open(campaign, create=True)
    store.write_spec(spec.to_dict(), "")
    store.extend_manifest(manifest_table(spec.cells()))
    OracleRunner(campaign)(spec.cells())
    return campaign


def test_crossover_is_refined_within_tolerance_and_aggregated(tmp_path):
    campaign = new_campaign(tmp_path, {"boundary": "crossover", "tolerance": 1.25})
    report = refine_campaign(campaign, OracleRunner(campaign))
    print(report.describe())
    assert report.stop == "resolved" and report.rounds == 5
    brackets = report.brackets
    truth = brackets["width"].map(alpha_star)
    assert ((brackets["lower"] < truth) & (truth <= brackets["upper"])).all()
    assert (brackets["ratio"] <= 1.25).all()
    manifest = ParquetStore.open(campaign).manifest()
    assert report.cells_total == manifest.num_rows == 24 + report.cells_added
    boundaries = read_table(campaign, "boundaries")
    line = boundaries.loc[(boundaries["boundary"] == "crossover") & (boundaries["level"] == 1.0)]
    np.testing.assert_allclose(
        line.sort_values("width")["value"], [alpha_star(h) for h in WIDTHS], rtol=1e-6
    )


def test_jamming_refinement_adds_widths_with_all_seeds(tmp_path):
    campaign = new_campaign(tmp_path)
    target = default_target("jamming", tolerance=1.05)
    report = refine_campaign(campaign, OracleRunner(campaign), target)
    assert report.stop == "resolved"
    truth = report.brackets["alpha_tilde"].map(width_star)
    assert ((report.brackets["lower"] < truth) & (truth <= report.brackets["upper"])).all()
    cells = read_table(campaign, "cells")
    assert (cells.groupby(["width", "alpha_tilde"]).size() == len(SEEDS)).all()


def test_max_cells_stops_refinement_at_the_budget(tmp_path):
    campaign = new_campaign(tmp_path, {"boundary": "crossover", "max_cells": 24 + 13})
    report = refine_campaign(campaign, OracleRunner(campaign))
    assert report.stop == "budget" and report.cells_total == 24 + 12
    assert not report.brackets["resolved"].all()


def test_refine_killed_mid_round_resumes_to_the_same_cells(tmp_path):
    reference = new_campaign(tmp_path / "a", {"boundary": "crossover"})
    refine_campaign(reference, OracleRunner(reference))
    campaign = new_campaign(tmp_path / "b", {"boundary": "crossover"})
    with pytest.raises(KeyboardInterrupt):
        refine_campaign(campaign, OracleRunner(campaign, crash_after=11))
    store = ParquetStore.open(campaign)
    assert len(store.cell_states()) < store.manifest().num_rows  # a round left unfinished
    report = refine_campaign(campaign, OracleRunner(campaign))
    assert report.stop == "resolved"
    ids = lambda c: set(ParquetStore.open(c).manifest()["cell_id"].to_pylist())
    assert ids(campaign) == ids(reference)
    cells = read_table(campaign, "cells")
    assert len(cells) == cells["cell_id"].nunique() == len(ids(reference))
    assert (cells["status"] == "done").all()


def test_status_shows_each_boundary_points_bracket(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    campaign = new_campaign(tmp_path)
    before = campaign_brackets(campaign)  # no refine yet: crossover c=1 and jamming ½
    assert set(before["boundary"]) == {"crossover", "jamming"} and not before["resolved"].any()
    refine_campaign(campaign, OracleRunner(campaign), default_target("crossover"))
    after = campaign_brackets(campaign)
    assert list(after["boundary"].unique()) == ["crossover"] and after["resolved"].all()
    lines = bracket_lines(after)
    assert len(lines) == len(WIDTHS) and "< alpha_tilde* <=" in lines[0]
    assert lines[0].startswith("crossover ntk_change=1 at width=8") and "resolved" in lines[0]
    result = CliRunner().invoke(app, ["status", campaign])
    assert result.exit_code == 0, result.output
    assert "boundary brackets" in result.output and result.output.count("resolved") == 4
    assert "crossover c=1" in result.output and "width=64" in result.output


def test_new_points_become_cells_with_every_seed_and_the_campaigns_settings(tmp_path):
    with open("campaigns/stripe_small.toml", "rb") as file:
        spec = parse_campaign(tomllib.load(file))
    points = pd.DataFrame({"width": [12], "alpha_tilde": [3.5], "train_size": [64], "depth": [1]})
    cells = cells_at(spec, points)
    template = spec.cells()[0]
    assert [c.seed for c in cells] == list(spec.grid.seed)
    assert all(c.width == 12 and c.alpha_tilde == 3.5 for c in cells)
    assert cells[0] == dataclasses.replace(
        template, alpha_tilde=3.5, model=dataclasses.replace(template.model, width=12)
    )


# --- the CLI ----------------------------------------------------------------------------


def test_command_line_values_override_the_specs_refine_section():
    from pipeline.drivers.refine import RefineTargetError
    from pipeline.spec.schema import Refinement

    spec_refine = Refinement("crossover", 0.1, 1.5, 50)
    assert default_target(None, base=spec_refine) == spec_refine
    assert default_target("crossover", tolerance=1.1, base=spec_refine) == Refinement(
        "crossover", 0.1, 1.1, 50
    )
    assert default_target("jamming", base=spec_refine) == Refinement("jamming", 0.5, 1.25, None)
    for bad in (
        {"boundary": None},
        {"boundary": "jamming", "level": 2.0},
        {"boundary": "crossover", "tolerance": 0.9},
    ):
        with pytest.raises(RefineTargetError):
            default_target(**bad)


def test_refine_command_rejects_an_unknown_boundary_and_stops_when_resolved(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    campaign = new_campaign(tmp_path, {"boundary": "crossover"})
    bad = CliRunner().invoke(app, ["refine", campaign, "--boundary", "jammin"])
    assert bad.exit_code == 2
    assert "--boundary crossover or --boundary jamming" in " ".join(bad.output.split())
    refine_campaign(campaign, OracleRunner(campaign))
    again = CliRunner().invoke(app, ["refine", campaign])  # nothing to run: Ray not started
    assert again.exit_code == 0, again.output
    text = " ".join(again.output.split())  # rich wraps long lines
    assert "+0 cells" in text and "stopped: resolved" in text


# --- a real stripe campaign -----------------------------------------------------------------

STRIPE_REFINE = "campaigns/stripe_refine.toml"


def check_refined_crossover(campaign: str, brackets: pd.DataFrame, summary: str) -> None:
    """Every width resolved within ×1.25, the measured ntk_change straddles 1 across each
    bracket and falls monotonically with α̃; far fewer cells than the uniform grid."""
    from pipeline.drivers.refine import spec_ensembles, store_tables, stored_spec

    store = ParquetStore.open(campaign)
    spec = stored_spec(store)
    ensembles = spec_ensembles(store_tables(store)[1], spec)
    assert len(brackets) == 4 and brackets["resolved"].all() and (brackets["ratio"] <= 1.25).all()
    assert (brackets["status"] == "bracketed").all()  # one crossing: monotone in α̃
    for row in brackets.itertuples():
        at = ensembles.loc[ensembles["width"] == row.width].set_index("alpha_tilde")["ntk_change"]
        assert at[row.lower] > 1.0 >= at[row.upper]
    used = store.manifest().num_rows
    uniform = 4 * (math.ceil(math.log(1e4) / math.log(1.25)) + 1) * len(spec.grid.seed)
    print(
        f"\nrefined crossover: {used} cells vs {uniform} for the uniform grid at x1.25 "
        f"({used / uniform:.0%})\n{summary}\n" + "\n".join(bracket_lines(brackets))
    )
    assert used <= uniform / 4
    assert f"against {uniform} for a uniform grid" in " ".join(summary.split())


def test_real_stripe_crossover_is_refined_within_a_factor_1_25_at_every_width(tmp_path):
    """campaigns/stripe_refine.toml with a 150-step budget (ntk_change where the flow stops),
    trained in this process by the real engine."""
    import torch

    with open(STRIPE_REFINE, "rb") as file:
        raw = tomllib.load(file)
    raw["flow"]["max_steps"] = 150
    spec = parse_campaign(raw)
    campaign = str(tmp_path / spec.name)
    store = ParquetStore.open(campaign, create=True)
    store.write_spec(spec.to_dict(), "")
    store.extend_manifest(manifest_table(spec.cells()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: more threads only add contention
    try:
        report = refine_campaign(
            campaign, CampaignRunner(campaign, spec.resources, LocalExecutor())
        )
    finally:
        torch.set_num_threads(threads)
    check_refined_crossover(campaign, report.brackets, report.describe())


@pytest.mark.slow
def test_phasegrid_run_of_the_refine_spec_refines_on_ray(tmp_path):
    """`phasegrid run campaigns/stripe_refine.toml`: the coarse grid, then [refine], on Ray,
    with the converged (2,000-step) ntk_change."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["run", STRIPE_REFINE, "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    campaign = str(tmp_path / "stripe-refine")
    check_refined_crossover(campaign, campaign_brackets(campaign), result.output)


def test_phase_diagram_of_a_refined_campaign_has_no_holes_between_points():
    """Refinement gives each width its own α̃: the colour map fills a grid point missing at
    one width from the nearest α̃ of that width, and leaves points beyond the range empty."""
    import matplotlib
    from matplotlib.colors import Normalize

    from pipeline.figures import phase_colours

    ensembles = pd.DataFrame(
        {
            "width": [8, 8, 8, 16, 16, 16, 16],
            "alpha_tilde": [0.01, 1.0, 100.0, 1.0, 2.0, 3.0, 1000.0],
            "fitted_fraction": 1.0,
            "ensemble_test_error": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        }
    )
    norm = Normalize(0.1, 0.7)
    _, alphas, rgba = phase_colours(ensembles, norm)
    colour = lambda error: matplotlib.colormaps["viridis"](norm(error))
    assert list(alphas) == [0.01, 1.0, 2.0, 3.0, 100.0, 1000.0]
    np.testing.assert_allclose(rgba[2, 0], colour(0.2))  # h=8, α̃=2: nearest is α̃=1
    np.testing.assert_allclose(rgba[3, 0], colour(0.2))  # α̃=3: log-nearer to 1 than 100
    np.testing.assert_allclose(rgba[4, 1], colour(0.7))  # h=16, α̃=100: ×10 to 1000, ×33 to 3
    assert rgba[5, 0, 3] == 0 and rgba[0, 1, 3] == 0  # beyond each width's range
