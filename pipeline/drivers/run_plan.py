"""What a `run` or `resume` has left to do, read from the store once.

- `read_records`: the cells table's state of every cell (status, attempts, and the done
  cells whose integrator stalled) in one read, which both planning and the summary use;
- `spec_done`: whether a `run` of a spec has nothing to do, decided without building the
  spec's cells: the stored spec is this spec and every manifest cell is done. Sound because
  `run` stores the spec only after the manifest holds every one of its cells
  (pipeline/drivers/run.py), so a stored spec implies its cells are in the manifest; at
  10⁵ cells this saves building 10⁵ CellSpecs and their ids (≈ 20 s here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from pipeline.spec.campaign import CampaignSpec
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.frames import read_cell_records
from pipeline.store.names import MANIFEST_FILE
from tasks.specs import CellSpec

STALLED_COLUMNS = ["cell_id", "width", "alpha_tilde", "train_size", "depth", "seed"]


@dataclass(frozen=True)
class CellRecords:
    """The cells table as planning needs it."""

    states: dict[str, tuple[str, int]]  # cell_id -> (status, attempts)
    stalled: pd.DataFrame  # STALLED_COLUMNS of the done cells whose integrator stalled

    def done(self) -> set[str]:
        return {cell for cell, (status, _) in self.states.items() if status == "done"}


def read_records(store: ParquetStore, cells: list[str] | None = None) -> CellRecords:
    """The records of every cell (or only of `cells`: a pushdown filter), one read."""
    columns = ["status", "attempts", "stop_reason", *STALLED_COLUMNS]
    table = read_cell_records(store, columns, cells)
    states = dict(
        zip(table["cell_id"].tolist(), zip(table["status"].tolist(), table["attempts"].tolist()))
    )
    stalled = table.loc[(table["status"] == "done") & (table["stop_reason"] == "stalled")]
    return CellRecords(states, stalled[STALLED_COLUMNS].reset_index(drop=True))


def describe_stalled(records: CellRecords, ids: set[str]) -> tuple[str, ...]:
    """The stalled cells among `ids`, each as "cell_id (h=.. α̃=.. P=.. seed ..)"."""
    stalled = records.stalled.loc[records.stalled.cell_id.isin(ids)]
    return tuple(
        f"{c.cell_id} (h={c.width} α̃={c.alpha_tilde:g} P={c.train_size} seed {c.seed})"
        for c in stalled.itertuples()
    )


def stalled_of_spec(records: CellRecords, spec: CampaignSpec) -> tuple[str, ...]:
    """The stalled cells that are cells of `spec` (each checked by rebuilding its id from
    its grid point: stalled cells are few, the spec's cells many)."""
    mine = {
        c.cell_id for c in records.stalled.itertuples() if _cell_of(spec, c).cell_id == c.cell_id
    }
    return describe_stalled(records, mine)


def _cell_of(spec: CampaignSpec, record) -> CellSpec:
    point = (record.width, record.alpha_tilde, record.train_size, record.depth, record.seed)
    width, alpha_tilde, train_size, depth, seed = point
    return spec.cell(int(width), float(alpha_tilde), int(train_size), int(depth), int(seed))


def spec_done(store: ParquetStore, spec: CampaignSpec, records: CellRecords) -> bool:
    """True when a `run` of `spec` has nothing to do (see the module docstring): the
    stored spec.json is `spec` and every cell of the manifest is done."""
    try:
        stored = store.stored_spec_or_none()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if stored is None or not store.location.exists(MANIFEST_FILE):
        return False
    if stored != json.loads(json.dumps(spec.to_dict(), default=str)):  # as write_spec stores
        return False
    manifest = store.manifest_columns(["cell_id"])["cell_id"].to_pylist()
    return len(manifest) >= spec.n_cells and set(manifest) <= records.done()
