"""`phasegrid run --dry-run`: what a run would do, after the same pre-flight, writing
nothing and starting no Ray: its cells (new, done already, to run), its tasks, and an
upper bound of its cost from the budgets.

Cost bound: a cell takes at most `max_steps` accepted steps; an accepted full-batch step
is one forward and one backward pass, about 3 · P · N multiply-adds for N parameters
(N ≈ d·h + (L−1)·h² + h for an FC net). Rejected steps and measurements add to it; a
campaign budgeted in flow time or wall seconds only has no step bound ("unbounded").
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.drivers.preflight import check_run
from pipeline.drivers.run import bundles_of
from pipeline.drivers.settings import check_settings
from pipeline.spec.campaign import CampaignSpec
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.location import Location, join_uri
from tasks.specs import CellSpec


@dataclass(frozen=True)
class DryRun:
    campaign: str
    cells: int
    new: int  # not in the stored campaign yet
    done: int  # done already: skipped
    to_run: int
    tasks: int
    max_steps: int | None  # Σ max_steps over the cells to run (None: no step budget)
    max_multiply_adds: float | None

    def describe(self) -> str:
        cost = (
            "no step budget: cost unbounded by steps (budgeted in flow time / wall seconds)"
            if self.max_steps is None
            else f"at most {self.max_steps:,} flow steps, ≈ {self.max_multiply_adds:.2g} "
            "multiply-adds (accepted full-batch steps)"
        )
        return (
            f"dry run of {self.campaign} (nothing written): {self.cells} cells "
            f"({self.new} new, {self.done} done already), would run {self.to_run} in "
            f"{self.tasks} tasks; {cost}"
        )


def step_cost(cell: CellSpec) -> float:
    """Multiply-adds of one accepted full-batch step (forward + backward ≈ 3 · P · N)."""
    d, h, depth = cell.data.dimension, cell.model.width, cell.model.depth
    n_params = d * h + (depth - 1) * h * h + h
    return 3.0 * cell.data.train_size * n_params


def dry_run(
    spec: CampaignSpec, store: str, address: str | None, add_settings_group: bool = False
) -> DryRun:
    """The pre-flight and the settings check of `run`, then the plan. Reads only."""
    campaign = join_uri(store, spec.name)
    check_run(spec.observables.device, spec.resources, campaign, address)
    stored = ParquetStore(Location.open(campaign))
    check_settings(stored.stored_spec_or_none(), spec, campaign, add_settings_group)
    exists = stored.location.exists("spec.json")
    states = stored.cell_states() if exists else {}
    known = set(stored.manifest()["cell_id"].to_pylist()) if exists else set()
    cells = list({c.cell_id: c for c in spec.cells()}.values())
    todo = [c for c in cells if states.get(c.cell_id, ("", 0))[0] != "done"]
    steps = [c.flow.max_steps for c in todo]
    bounded = all(s is not None for s in steps)
    return DryRun(
        campaign,
        len(cells),
        sum(c.cell_id not in known for c in cells),
        len(cells) - len(todo),
        len(todo),
        len(bundles_of(todo, spec.resources.bundle_size)),
        sum(s for s in steps if s is not None) if bounded else None,
        sum(step_cost(c) * (c.flow.max_steps or 0) for c in todo) if bounded else None,
    )
