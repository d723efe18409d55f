"""`[data] perpendicular_scale = {from_campaign = "…", at = "fitted"}`: the compressed-data
control (paper Fig. 9 right, dashed) with the factor Λ(P) measured by another campaign.

For each train size P of this campaign, the factor is the geometric mean over seeds of the
final `weight_alignment` Λ of the other campaign's done cells at that P (``at = "fitted"``:
only the cells that fitted; ``at = "end"``: every done cell), at its widest width and at
``alpha_tilde`` (default: its smallest α̃, the feature-learning end). `load_campaign`
resolves it when the campaign is run (reading the other campaign), so each cell's id holds
its concrete factor: re-running after the source changed gives new cells, not stale ones.
A P the source did not measure is an error naming it, before anything runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pipeline.spec_errors import SpecError, problem

if TYPE_CHECKING:
    from pipeline.spec import CampaignSpec

KEY = "data.perpendicular_scale"


@dataclass(frozen=True)
class PerpendicularSource:
    """Where a campaign's perpendicular_scale comes from (the TOML table's keys)."""

    from_campaign: str
    at: str = "fitted"  # fitted | end
    alpha_tilde: float | None = None  # None: the source's smallest α̃

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def measured_alignment(source: PerpendicularSource) -> dict[int, float]:
    """{P: geometric mean of the final Λ over the selected seeds} of the source campaign.
    Raises FileNotFoundError-like errors of `load_results` for a missing campaign."""
    import numpy as np

    from pipeline.results import load_results

    results = load_results(source.from_campaign)
    cells, measured = results.cells, results.measurements
    if cells.empty or measured.empty or "weight_alignment" not in measured:
        return {}
    cells = cells.loc[cells["status"] == "done"]
    if source.at == "fitted":
        cells = cells.loc[cells["fitted"].fillna(False).astype(bool)]
    if cells.empty:
        return {}
    alpha = source.alpha_tilde if source.alpha_tilde is not None else cells["alpha_tilde"].min()
    cells = cells.loc[np.isclose(cells["alpha_tilde"], alpha, rtol=1e-9)]
    cells = cells.loc[cells["width"] == cells["width"].max()] if not cells.empty else cells
    final = measured.sort_values("step").groupby("cell_id")["weight_alignment"].last()
    values = cells.join(final, on="cell_id")
    values = values.loc[np.isfinite(values["weight_alignment"]) & (values["weight_alignment"] > 0)]
    return {
        int(p): float(np.exp(np.log(group).mean()))
        for p, group in values.groupby("train_size")["weight_alignment"]
    }


def resolve_perpendicular_scales(spec: "CampaignSpec") -> "CampaignSpec":
    """``spec`` with `perpendicular_scales` {P: Λ(P)} read from its source campaign;
    ``spec`` itself when its perpendicular_scale is a number. SpecError if the source is
    absent or lacks a P of this campaign."""
    source, where = spec.perpendicular_source, spec.source_path or "<spec>"
    if source is None:
        return spec
    try:
        measured = measured_alignment(source)
    except (FileNotFoundError, OSError, ValueError) as err:
        raise SpecError(
            [
                problem(
                    KEY,
                    f"cannot read the campaign {source.from_campaign!r} "
                    f"that perpendicular_scale comes from ({err}): run it first, "
                    "or fix from_campaign",
                    where,
                )
            ],
            where,
        ) from None
    missing = [p for p in spec.axes["train_size"] if p not in measured]
    if missing:
        what, other = ("fitted ", ', use at = "end"') if source.at == "fitted" else ("", "")
        raise SpecError(
            [
                problem(
                    KEY,
                    f"campaign {source.from_campaign!r} has no {what}done "
                    f"cell with a measured weight_alignment at train_size "
                    f"{', '.join(map(str, missing))} (it has "
                    f"{sorted(measured) or 'none'}): run those{other} or drop "
                    "these P from the grid",
                    where,
                )
            ],
            where,
        )
    scales = tuple((p, measured[p]) for p in spec.axes["train_size"])
    if not all(math.isfinite(v) and v > 0 for _, v in scales):
        raise SpecError(
            [problem(KEY, f"measured factors {scales} are not all positive", where)], where
        )
    return replace(spec, perpendicular_scales=scales)
