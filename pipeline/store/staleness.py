"""Stored aggregates older than the cells: `load_results` warns, it does not recompute
(recomputing reads every prediction, and a reader should not write): the warning names
the command that brings `ensembles` and `boundaries` up to date."""

from __future__ import annotations

import pandas as pd


class StaleAggregatesWarning(UserWarning):
    """`ensembles` / `boundaries` were computed from other done cells than the store has."""


def stale_aggregates(campaign: str, cells: pd.DataFrame, ensembles: pd.DataFrame) -> str | None:
    """Why the stored aggregates are out of date: each done cell is in exactly one
    ensembles row, so the rows' n_seeds (+ n_stalled) add up to the done cells they were
    computed from.
    None when they match (or there is nothing to compare)."""
    if ensembles.empty or "n_seeds" not in ensembles or "status" not in cells:
        return None
    done = int(cells.loc[cells["status"] == "done", "cell_id"].nunique())
    used = int(ensembles["n_seeds"].sum())
    if "n_stalled" in ensembles:  # stalled cells are done, counted apart from the seeds
        used += int(ensembles["n_stalled"].fillna(0).sum())
    if used == done:
        return None
    return (
        f"{campaign}: ensembles and boundaries were computed from {used} done cells, the "
        f"campaign now has {done} (n_seeds and the boundaries are out of date): run "
        f"`phasegrid aggregate {campaign}`"
    )
