"""`phasegrid status`, boundary part: per boundary point, its bracket and whether it is
resolved — for the boundary last refined (`<campaign>/refine.json`) and the spec's
[refine], or else for the crossover at ntk_change = 1 and the jamming line at ½.
Reads the store only (the cells table, not predictions: cheap on a running campaign).
"""

from __future__ import annotations

import json

import pandas as pd

from pipeline.analysis.refine_plan import STATUS_COLUMNS, bracket_status
from pipeline.drivers.refine_state import (
    TARGET_FILE,
    default_target,
    planned_points,
    spec_ensembles,
    store_tables,
    stored_spec,
)
from pipeline.spec.campaign import CampaignSpec
from pipeline.spec.schema import Refinement
from pipeline.store.campaign_store import ParquetStore

BRACKET_TABLE = ("boundary", "at", "along", "lower", "upper", "ratio", "state")
LEVEL_NAMES = {"crossover": "c", "jamming": "f"}  # c: ntk_change; f: fitted fraction


def refine_targets(store: ParquetStore, spec: CampaignSpec) -> list[Refinement]:
    """The boundaries `status` shows: the last one refined, the spec's [refine], or else
    the crossover at c = 1 and the jamming line at ½ (default tolerance)."""
    targets = []
    if store.location.exists(TARGET_FILE):
        targets.append(Refinement(**json.loads(store.location.read_bytes(TARGET_FILE))))
    if spec.refine is not None and spec.refine not in targets:
        targets.append(spec.refine)
    return targets or [default_target("crossover"), default_target("jamming")]


def campaign_brackets(campaign: str) -> pd.DataFrame:
    """Per boundary point of each of `refine_targets`: the columns of
    pipeline.analysis.refine_plan.bracket_status (bracket lower/upper, ratio, resolved, …)."""
    store = ParquetStore.open(campaign)
    spec = stored_spec(store)
    manifest, cells = store_tables(store)
    planned, ensembles = planned_points(manifest, spec), spec_ensembles(cells, spec)
    parts = [bracket_status(ensembles, t, planned) for t in refine_targets(store, spec)]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=STATUS_COLUMNS)


def _where(row: dict, varying: set[str]) -> str:
    """The fixed coordinates of a boundary point that differ between points."""
    return ", ".join(
        f"{a}={row[a]:g}"
        for a in ("width", "alpha_tilde", "train_size", "depth")
        if a != row["along"] and a in varying and pd.notna(row[a])
    )


def bracket_table(brackets: pd.DataFrame) -> pd.DataFrame:
    """`brackets` as short text, one row per boundary point, columns BRACKET_TABLE, e.g.
    crossover c=1 | width=64 | alpha_tilde | 2.1 | 2.5 | 1.19 | resolved (coordinates that are
    the same for every point are left out). Status words replace a missing bracket end."""
    varying = {c for c in brackets.columns if brackets[c].nunique(dropna=False) > 1}
    rows = []
    for row in brackets.to_dict("records"):
        kind = row["boundary"]
        end = lambda v: f"{v:.4g}" if pd.notna(v) else row["status"].replace("_", " ")
        rows.append(
            {
                "boundary": f"{kind} {LEVEL_NAMES.get(kind, 'level')}={row['level']:g}",
                "at": _where(row, varying) or "-",
                "along": row["along"],
                "lower": end(row["lower"]),
                "upper": end(row["upper"]) if pd.notna(row["upper"]) else "",
                "ratio": f"{row['ratio']:.3g}" if pd.notna(row["ratio"]) else "",
                "state": "resolved" if row["resolved"] else row["action"].replace("_", " "),
            }
        )
    return pd.DataFrame(rows, columns=list(BRACKET_TABLE))


def bracket_lines(brackets: pd.DataFrame) -> list[str]:
    """One line per boundary point, e.g.
    `crossover ntk_change=1 at width=64: 2.1 < alpha_tilde* <= 2.5 (x1.19) resolved`."""
    lines = []
    for row in brackets.to_dict("records"):
        lo, hi, along = row["lower"], row["upper"], row["along"]
        bracket = (
            f"{lo:.4g} < {along}* <= {hi:.4g} (x{row['ratio']:.3g})"
            if pd.notna(lo) and pd.notna(hi)
            else row["status"].replace("_", " ")
        )
        state = "resolved" if row["resolved"] else row["action"].replace("_", " ")
        at = _where(row, set(brackets.columns))
        lines.append(
            f"{row['boundary']} {row['quantity']}={row['level']:g} at {at}: {bracket} {state}"
        )
    return lines
