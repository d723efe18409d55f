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

import pandas as pd

from pipeline.aggregate import aggregate_campaign, done_cells, ensemble_table
from pipeline.refine_plan import (AXES, STATUS_COLUMNS, bracket_status, matching_rows,
                                  plan_refinement)
from pipeline.rows import cell_parameters, spec_from_config
from pipeline.spec import CampaignSpec, parse_campaign
from pipeline.spec_schema import REFINE_LEVELS, Refinement
from pipeline.store import ParquetStore
from results_schema.tables import SETTINGS
from tasks.specs import CellSpec

RunCells = Callable[[list[CellSpec]], object]   # adds cells to the manifest and runs them
TARGET_FILE = "refine.json"
POINT_AXES = ("width", "alpha_tilde", "train_size", "depth")


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
    brackets: pd.DataFrame = field(repr=False, compare=False)

    def summary(self) -> str:
        resolved = int(self.brackets["resolved"].sum())
        return (f"{self.campaign}: refined the {self.target.boundary} at level "
                f"{self.target.level:g} in {self.rounds} rounds, +{self.cells_added} cells "
                f"({self.cells_total} in all); {resolved}/{len(self.brackets)} boundary points "
                f"within ×{self.target.tolerance:g} (stopped: {self.stop})")


def default_target(boundary: str, level: float | None = None, tolerance: float | None = None,
                   max_cells: int | None = None) -> Refinement:
    """A Refinement with the boundary's default level and tolerance where not given."""
    if boundary not in AXES:
        raise ValueError(f"boundary must be one of {', '.join(AXES)}, got {boundary!r}")
    level = REFINE_LEVELS[boundary] if level is None else level
    tolerance = Refinement.tolerance if tolerance is None else tolerance
    if tolerance <= 1:
        raise ValueError(f"tolerance must be a factor > 1, got {tolerance}: e.g. 1.25")
    if boundary == "jamming" and not 0 < level < 1:
        raise ValueError(f"the jamming level is a fraction of seeds fitted, got {level}: use 0.5")
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
        model = replace(spec.model, width=int(point["width"]),
                        depth=int(point.get("depth", spec.model.depth)))
        grid = replace(spec.grid, width=(model.width,), alpha_tilde=(float(point["alpha_tilde"]),),
                       train_size=None, depth=None)
        cells += replace(spec, data=data, model=model, grid=grid).cells()
    return cells


def _tables(store: ParquetStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest, cells) of the store as DataFrames."""
    return store.manifest().to_pandas(), store.read_table("cells").to_pandas()


def pending_specs(manifest: pd.DataFrame, cells: pd.DataFrame, spec: CampaignSpec) -> list[CellSpec]:
    """Cells of the manifest with the spec's settings and no cells record yet."""
    waiting = spec_rows(manifest, spec)
    waiting = waiting.loc[~waiting["cell_id"].isin(cells["cell_id"])]
    return [spec_from_config(config) for config in waiting["config"]]


# --- the rounds ---------------------------------------------------------------------------

def refine_campaign(campaign: str, run_cells: RunCells, target: Refinement | None = None,
                    spec: CampaignSpec | None = None, max_rounds: int = 40,
                    on_round: Callable[[int, int, pd.DataFrame], None] | None = None) -> RefineReport:
    """Refine `target` (default: the spec's [refine]) in the campaign at `campaign`, running
    new cells with `run_cells`; see the module docstring. `spec` defaults to the campaign's
    stored spec. `on_round(round, cells_added, brackets)` is called before each round's
    cells run (progress). Writes refine.json, the cells (through run_cells), ensembles and
    boundaries."""
    store = ParquetStore.open(campaign)
    spec = spec or stored_spec(store)
    target = target or spec.refine
    if target is None:
        raise ValueError(f"no boundary to refine in {campaign}: pass --boundary crossover|"
                         "jamming, or add a [refine] section to the spec")
    store.location.write_bytes(TARGET_FILE, json.dumps(asdict(target)).encode())
    cap = target.max_cells or spec.resources.max_cells
    seeds, start, rounds = len(spec.grid.seed), None, 0
    for rounds in range(max_rounds + 1):
        manifest, cells = _tables(store)
        start = len(manifest) if start is None else start
        if waiting := pending_specs(manifest, cells, spec):
            run_cells(waiting)
            manifest, cells = _tables(store)
        planned = spec_rows(manifest, spec)[[a for a in POINT_AXES if a in manifest]]
        ensembles = spec_ensembles(cells, spec)
        plan = plan_refinement(ensembles, target, seeds, cap - len(manifest), planned)
        if plan.empty or rounds == max_rounds:
            break
        if on_round is not None:
            on_round(rounds + 1, len(plan) * seeds, bracket_status(ensembles, target, planned))
        run_cells(cells_at(spec, plan))
    aggregate_campaign(campaign)
    brackets = bracket_status(ensembles, target, planned)
    return RefineReport(campaign, target, rounds, len(manifest) - start, len(manifest),
                        _stop_reason(brackets, plan, cap - len(manifest) < seeds), brackets)


def _stop_reason(brackets: pd.DataFrame, plan: pd.DataFrame, spent: bool) -> str:
    if brackets.empty:
        return "no_data"
    if not plan.empty:
        return "max_rounds"
    if brackets["resolved"].all():
        return "resolved"
    movable = brackets["action"].isin(("bisect", "extend")).any()
    return "budget" if movable and spent else "stuck"


# --- status ---------------------------------------------------------------------------------

def stored_spec(store: ParquetStore) -> CampaignSpec:
    """The campaign's resolved spec, as `run` stored it (spec.json)."""
    return parse_campaign(store.read_spec(), f"{store.uri}/spec.json")


def refine_targets(store: ParquetStore, spec: CampaignSpec) -> list[Refinement]:
    """The boundaries `status` shows: the last one refined (refine.json), the spec's
    [refine], or else the crossover at c = 1 and the jamming line at ½."""
    targets = []
    if store.location.exists(TARGET_FILE):
        targets.append(Refinement(**json.loads(store.location.read_bytes(TARGET_FILE))))
    if spec.refine is not None and spec.refine not in targets:
        targets.append(spec.refine)
    return targets or [default_target("crossover"), default_target("jamming")]


def campaign_brackets(campaign: str) -> pd.DataFrame:
    """Per boundary point of each target of `refine_targets`: its bracket and whether it
    is resolved (columns of pipeline.refine_plan.bracket_status). Reads the store only."""
    store = ParquetStore.open(campaign)
    spec = stored_spec(store)
    manifest, cells = _tables(store)
    planned = spec_rows(manifest, spec)[[a for a in POINT_AXES if a in manifest]]
    ensembles = spec_ensembles(cells, spec)
    parts = [bracket_status(ensembles, t, planned) for t in refine_targets(store, spec)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=STATUS_COLUMNS)


def bracket_lines(brackets: pd.DataFrame) -> list[str]:
    """One line per boundary point, e.g.
    `crossover ntk_change=1 at width=64: 2.1 < alpha_tilde* <= 2.5 (x1.19) resolved`."""
    lines = []
    for row in brackets.to_dict("records"):
        along = row["along"]
        at = ", ".join(f"{a}={row[a]:g}" for a in ("width", "alpha_tilde", "train_size", "depth")
                       if a != along and a in row and pd.notna(row[a]))
        lo, hi = row["lower"], row["upper"]
        bracket = (f"{lo:.4g} < {along}* <= {hi:.4g} (x{row['ratio']:.3g})"
                   if pd.notna(lo) and pd.notna(hi)
                   else f"{row['status'].replace('_', ' ')}")
        state = "resolved" if row["resolved"] else row["action"].replace("_", " ")
        lines.append(f"{row['boundary']} {row['quantity']}={row['level']:g} at {at}: "
                     f"{bracket} {state}")
    return lines
