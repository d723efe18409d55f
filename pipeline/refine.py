"""`phasegrid refine`: rounds of plan → run → re-plan until every boundary point of a
campaign is bracketed within the tolerance, or the cell budget is spent.

One round, all state read back from the store:
1. the cells of the manifest (with the spec's settings) that have no cells record yet are
   run — so a refine killed part-way resumes where it stopped when run again;
2. ensembles are recomputed from the done cells (`pipeline.aggregate.ensemble_table`);
3. `pipeline.refine_plan.plan_refinement` proposes one grid point per unresolved
   boundary point, as many as the budget pays for (all seeds of each point);
4. their cells go through the campaign runner (manifest extended, scheduler, store),
   exactly like the cells of the coarse grid.
It stops when nothing is left to add; then `aggregate` rewrites ensembles and boundaries.

The budget `max_cells` counts every cell of the campaign's manifest, coarse grid included
(default: [refine] max_cells, else [resources] max_cells). The last target refined is
kept in `<campaign>/refine.json`, so that `status` can show its brackets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.aggregate import aggregate_campaign, done_cells, ensemble_table
from pipeline.refine_plan import (
    AXES,
    bracket_status,
    matching_rows,
    plan_refinement,
    uniform_grid_cells,
)
from pipeline.rows import cell_parameters, spec_from_config
from pipeline.spec import CampaignSpec, load_campaign, parse_campaign
from pipeline.spec_schema import REFINE_LEVELS, Refinement, Resources
from pipeline.store import ParquetStore
from results_schema.tables import SETTINGS
from tasks.specs import CellSpec

if TYPE_CHECKING:
    from pipeline.campaign import Progress, RunSummary

RunCells = Callable[[list[CellSpec]], object]  # adds cells to the manifest and runs them
TARGET_FILE = "refine.json"
POINT_AXES = ("width", "alpha_tilde", "train_size", "depth")


class RefineTargetError(ValueError):
    """The boundary, level or tolerance asked for cannot be refined; says what to pass."""


@dataclass(frozen=True)
class RefineReport:
    """What `refine_campaign` did. `stop`: resolved (every boundary point bracketed) |
    budget (max_cells reached) | stuck (unresolved points that cannot move: see the
    `action` column of `brackets`) | max_rounds | no_data (no done cells yet)."""

    campaign: str
    target: Refinement
    rounds: int
    cells_added: int
    cells_total: int
    stop: str
    failed: int  # failed cells of the campaign (with the spec's settings)
    uniform_cells: int  # a uniform grid at the same resolution over the same span
    brackets: pd.DataFrame = field(repr=False, compare=False)

    def describe(self) -> str:
        resolved = int(self.brackets["resolved"].sum()) if len(self.brackets) else 0
        return (
            f"{self.campaign}: refined the {self.target.boundary} at level "
            f"{self.target.level:g} in {self.rounds} rounds, +{self.cells_added} cells "
            f"({self.cells_total} in all, against {self.uniform_cells} for a uniform grid "
            f"as fine); {resolved}/{len(self.brackets)} boundary points bracketed within "
            f"x{self.target.tolerance:g} (stopped: {self.stop})"
        )


def default_target(
    boundary: str | None,
    level: float | None = None,
    tolerance: float | None = None,
    max_cells: int | None = None,
    base: Refinement | None = None,
) -> Refinement:
    """The Refinement asked for: the values given, else those of `base` (the spec's
    [refine]) when it is for the same boundary, else the boundary's defaults. With no
    boundary, `base`'s. Raises RefineTargetError saying what to pass."""
    boundary = boundary or (base.boundary if base else None)
    if boundary not in AXES:
        raise RefineTargetError(
            f"boundary must be one of {', '.join(AXES)}, got {boundary!r}: pass --boundary "
            "crossover or --boundary jamming (or add a [refine] section to the spec)"
        )
    base = base if base is not None and base.boundary == boundary else None
    level = level if level is not None else base.level if base else REFINE_LEVELS[boundary]
    tolerance = tolerance or (base.tolerance if base else Refinement.tolerance)
    max_cells = max_cells or (base.max_cells if base else None)
    if tolerance <= 1:
        raise RefineTargetError(f"tolerance must be a factor > 1, got {tolerance}: e.g. 1.25")
    if boundary == "jamming" and not 0 < level < 1:
        raise RefineTargetError(
            f"the jamming level is a fraction of seeds fitted, got {level}: use 0.5"
        )
    return Refinement(boundary, float(level), float(tolerance), max_cells)


# --- the spec's own rows of the store ------------------------------------------------------


def spec_settings(spec: CampaignSpec) -> dict:
    """The fixed settings columns (results_schema SETTINGS) shared by the spec's cells."""
    params = cell_parameters(spec.cells()[0])
    return {f.name: params[f.name] for f in SETTINGS}


def spec_rows(frame: pd.DataFrame, spec: CampaignSpec) -> pd.DataFrame:
    """Rows of a cells / manifest table that have the spec's settings."""
    return frame.loc[matching_rows(frame, spec_settings(spec))]


def spec_ensembles(cells: pd.DataFrame, spec: CampaignSpec) -> pd.DataFrame:
    """Ensembles (per grid point over seeds) of the done cells with the spec's settings;
    no predictions are read, so ensemble_test_error and fluctuation are NaN."""
    done = spec_rows(done_cells(cells), spec)
    return ensemble_table(done, None)


def cells_at(spec: CampaignSpec, points: pd.DataFrame) -> list[CellSpec]:
    """All seeds of each grid point (rows with width, alpha_tilde and, if present,
    train_size and depth), with the campaign's fixed settings."""
    cells = []
    for point in points.to_dict("records"):
        data = replace(spec.data, train_size=int(point.get("train_size", spec.data.train_size)))
        model = replace(
            spec.model, width=int(point["width"]), depth=int(point.get("depth", spec.model.depth))
        )
        grid = replace(
            spec.grid,
            width=(model.width,),
            alpha_tilde=(float(point["alpha_tilde"]),),
            train_size=None,
            depth=None,
        )
        cells += replace(spec, data=data, model=model, grid=grid).cells()
    return cells


def stored_spec(store: ParquetStore) -> CampaignSpec:
    """The campaign's resolved spec, as `run` stored it (spec.json)."""
    return parse_campaign(store.read_spec(), f"{store.uri}/spec.json")


def planned_points(manifest: pd.DataFrame, spec: CampaignSpec) -> pd.DataFrame:
    """Grid points of the manifest with the spec's settings (queued, run or failed)."""
    return spec_rows(manifest, spec)[[a for a in POINT_AXES if a in manifest]]


def store_tables(store: ParquetStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, cells) of the store as DataFrames."""
    return store.manifest().to_pandas(), store.read_table("cells").to_pandas()


def pending_specs(
    manifest: pd.DataFrame, cells: pd.DataFrame, spec: CampaignSpec
) -> list[CellSpec]:
    """Cells of the manifest with the spec's settings and no cells record yet."""
    waiting = spec_rows(manifest, spec)
    waiting = waiting.loc[~waiting["cell_id"].isin(cells["cell_id"])]
    return [spec_from_config(config) for config in waiting["config"]]


# --- the rounds ---------------------------------------------------------------------------


def refine_campaign(
    campaign: str,
    run_cells: RunCells,
    target: Refinement | None = None,
    spec: CampaignSpec | None = None,
    max_rounds: int = 40,
) -> RefineReport:
    """Refine `target` (default: the spec's [refine]) in the campaign at `campaign`, running
    new cells with `run_cells`; see the module docstring. `spec` defaults to the campaign's
    stored spec. Writes refine.json, the cells (through run_cells), ensembles and
    boundaries."""
    store = ParquetStore.open(campaign)
    spec = spec or stored_spec(store)
    target = target or spec.refine
    if target is None:
        raise RefineTargetError(
            f"no boundary to refine in {campaign}: pass --boundary "
            "crossover|jamming, or add a [refine] section to the spec"
        )
    if target.boundary == "crossover" and not spec.observables.ntk:
        raise RefineTargetError(
            f"{campaign} does not measure the NTK ([observables] ntk = "
            "false), so it has no ntk_change: refine --boundary jamming"
        )
    store.location.write_bytes(TARGET_FILE, json.dumps(asdict(target)).encode())
    cap = target.max_cells or spec.resources.max_cells
    seeds, start, rounds = len(spec.grid.seed), None, 0
    for rounds in range(max_rounds + 1):
        manifest, cells = store_tables(store)
        start = len(manifest) if start is None else start
        if waiting := pending_specs(manifest, cells, spec):
            run_cells(waiting)
            manifest, cells = store_tables(store)
        planned = planned_points(manifest, spec)
        ensembles = spec_ensembles(cells, spec)
        plan = plan_refinement(ensembles, target, seeds, cap - len(manifest), planned)
        if plan.empty or rounds == max_rounds:
            break
        run_cells(cells_at(spec, plan))
    aggregate_campaign(campaign)
    brackets = bracket_status(ensembles, target, planned)
    failed = spec_rows(cells.loc[cells["status"] == "failed"], spec)["cell_id"].nunique()
    return RefineReport(
        campaign,
        target,
        rounds,
        len(manifest) - start,
        len(manifest),
        _stop_reason(brackets, plan, cap - len(manifest) < seeds),
        failed,
        uniform_grid_cells(planned, target, seeds),
        brackets,
    )


def _stop_reason(brackets: pd.DataFrame, plan: pd.DataFrame, spent: bool) -> str:
    if brackets.empty:
        return "no_data"
    if not plan.empty:
        return "max_rounds"
    if brackets["resolved"].all():
        return "resolved"
    movable = brackets["action"].isin(("bisect", "extend")).any()
    return "budget" if movable and spent else "stuck"


# --- on Ray, through the campaign runner ---------------------------------------------------


class CampaignRunner:
    """RunCells through `pipeline.campaign.run_cells` (manifest, scheduler, store), on one
    Ray session for every round, started at the first call; `close()` ends it."""

    def __init__(
        self,
        campaign: str,
        resources: Resources,
        address: str | None = None,
        progress: Progress | None = None,
    ):
        self.campaign, self.resources = campaign, resources
        self.address, self.progress, self.session = address, progress, None

    def __call__(self, cells: list[CellSpec]) -> RunSummary:
        from pipeline.campaign import run_cells
        from pipeline.ray_setup import start_ray

        if self.session is None:
            self.session = start_ray(self.address)
        return run_cells(self.campaign, cells, self.resources, self.address, self.progress)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def refine_on_ray(
    campaign: str,
    boundary: str | None = None,
    level: float | None = None,
    tolerance: float | None = None,
    max_cells: int | None = None,
    address: str | None = None,
    progress: Progress | None = None,
) -> RefineReport:
    """`phasegrid refine`: refine the campaign's boundary (arguments not given come from
    its [refine] section, then the defaults), running new cells on Ray."""
    store = ParquetStore.open(campaign)
    spec = stored_spec(store)
    target = default_target(boundary, level, tolerance, max_cells, spec.refine)
    runner = CampaignRunner(campaign, spec.resources, address, progress)
    try:
        return refine_campaign(campaign, runner, target, spec)
    finally:
        runner.close()


@dataclass(frozen=True)
class RunAndRefineSummary:
    """`phasegrid run` of a spec with [refine]: the coarse grid's run, then the refinement."""

    run: RunSummary
    refine: RefineReport

    @property
    def campaign(self) -> str:
        return self.run.campaign

    @property
    def failed(self) -> int:
        return self.refine.failed

    def describe(self) -> str:
        return f"{self.run.describe()}\n{self.refine.describe()}"


def run_and_refine(
    spec_path: str,
    store: str = "results",
    address: str | None = None,
    progress: Progress | None = None,
) -> RunSummary | RunAndRefineSummary:
    """`phasegrid run`: the spec's grid (pipeline.campaign.run_campaign), then, when the spec
    has a [refine] section, its refinement; one Ray session for both."""
    from pipeline.campaign import run_campaign
    from pipeline.ray_setup import start_ray

    spec = load_campaign(spec_path, check_data=False)
    if spec.refine is None:
        return run_campaign(spec_path, store, address, progress)
    session = start_ray(address)
    try:
        summary = run_campaign(spec_path, store, address, progress)
        return RunAndRefineSummary(
            summary, refine_on_ray(summary.campaign, address=address, progress=progress)
        )
    finally:
        session.close()
