"""`phasegrid refine`: rounds of plan → run → re-plan until every boundary point of a
campaign is bracketed within the tolerance, or the cell budget is spent.

One round, all state read back from the store:
1. the cells of the manifest (with the spec's settings) that have no cells record yet are
   run — so a refine killed part-way resumes where it stopped when run again;
2. ensembles are recomputed from the done cells (`pipeline.analysis.ensembles.ensemble_table`);
3. `pipeline.analysis.refine_plan.plan_refinement` proposes one grid point per unresolved
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
from dataclasses import asdict, dataclass, field

import pandas as pd

from pipeline.analysis.refine_plan import (
    bracket_status,
    plan_refinement,
    uniform_grid_cells,
)
from pipeline.drivers.aggregate import aggregate_campaign
from pipeline.drivers.preflight import check_run, cluster_preflight
from pipeline.drivers.refine_state import (
    TARGET_FILE,
    RefineTargetError,
    default_target,
    planned_points,
    spec_ensembles,
    spec_rows,
    store_tables,
    stored_spec,
)
from pipeline.drivers.run import RunSummary, run_cells, run_spec
from pipeline.drivers.settings import check_settings
from pipeline.execute.progress import Progress
from pipeline.execute.scheduler import RayExecutor
from pipeline.execute.stream import Executor
from pipeline.spec.campaign import CampaignSpec
from pipeline.spec.schema import Refinement, Resources
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.location import Location, join_uri
from pipeline.store.rows import spec_from_config
from tasks.specs import CellSpec

RunCells = Callable[[list[CellSpec]], object]  # adds cells to the manifest and runs them


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


def cells_at(spec: CampaignSpec, points: pd.DataFrame) -> list[CellSpec]:
    """All seeds of each grid point (rows with width, alpha_tilde and, if present,
    train_size and depth): the spec's own expansion, `CampaignSpec.cells_at`."""
    return spec.cells_at(points.to_dict("records"))


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
    seeds, start, rounds = len(spec.grid.seed), store.manifest().num_rows, 0
    for rounds in range(max_rounds + 1):
        manifest, cells = store_tables(store, configs=True)
        if waiting := pending_specs(manifest, cells, spec):
            run_cells(waiting)
            manifest, cells = store_tables(store, configs=True)
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


# --- through the campaign runner -----------------------------------------------------------


class CampaignRunner:
    """RunCells through `pipeline.drivers.run.run_cells` (manifest, executor, store): every
    round on the one executor the driver opened."""

    def __init__(
        self,
        campaign: str,
        resources: Resources,
        executor: Executor,
        progress: Progress | None = None,
    ):
        self.campaign, self.resources = campaign, resources
        self.executor, self.progress = executor, progress

    def __call__(self, cells: list[CellSpec]) -> RunSummary:
        return run_cells(self.campaign, cells, self.resources, self.executor, self.progress)


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
    check_run(spec.observables.device, spec.resources, campaign, address)
    with RayExecutor(address) as executor:
        cluster_preflight(executor, spec.resources)
        return refine_campaign(
            campaign, CampaignRunner(campaign, spec.resources, executor, progress), target, spec
        )


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

    @property
    def stalled(self) -> tuple[str, ...]:
        return self.run.stalled

    def describe(self) -> str:
        return f"{self.run.describe()}\n{self.refine.describe()}"


def run_and_refine(
    spec: CampaignSpec,
    toml_text: str,
    store: str = "results",
    address: str | None = None,
    progress: Progress | None = None,
    add_settings_group: bool = False,
) -> RunSummary | RunAndRefineSummary:
    """`phasegrid run` of the loaded `spec` (whose TOML is `toml_text`): the pre-flight
    (pipeline/drivers/preflight.py: nothing written, Ray not started, if it fails), the
    settings check (pipeline/drivers/settings.py: changed fixed settings need
    `add_settings_group`), the spec's grid (pipeline.drivers.run.run_spec), then, when
    the spec has a [refine] section, its refinement. One Ray session for both."""
    campaign = join_uri(store, spec.name)
    check_run(spec.observables.device, spec.resources, campaign, address)
    stored = ParquetStore(Location.open(campaign)).stored_spec_or_none()
    new_group = check_settings(stored, spec, campaign, add_settings_group)
    with RayExecutor(address) as executor:
        cluster_preflight(executor, spec.resources)
        if new_group:
            ParquetStore.open(campaign).archive_spec()
        summary = run_spec(spec, toml_text, store, executor, progress)
        if spec.refine is None:
            return summary
        stored = stored_spec(ParquetStore.open(campaign))
        target = default_target(None, None, None, None, stored.refine)
        runner = CampaignRunner(campaign, stored.resources, executor, progress)
        return RunAndRefineSummary(summary, refine_campaign(campaign, runner, target, stored))
