"""`[data] perpendicular_scale = {from_campaign = "…", at = "fitted"}`: the compressed-data
control (paper Fig. 9 right, dashed) with the factor Λ(P) measured by another campaign.

For each train size P of this campaign, the factor is the geometric mean over seeds of the
final `weight_alignment` Λ of the other campaign's done cells at that P (``at = "fitted"``:
only the cells that fitted; ``at = "end"``: every done cell), at its widest width and at
``alpha_tilde`` (default: its smallest α̃, the feature-learning end).

Three wings share the work, as the wing table wants: this module holds the source and the
checks of the measured factors (pure), `pipeline.analysis.alignment.measured_alignment`
computes Λ(P) from the other campaign's tables, and `pipeline.drivers.sources` reads them
through the store and resolves the spec when the campaign is run, so each cell's id holds
its concrete factor: re-running after the source changed gives new cells, not stale ones.
A P the source did not measure is an error naming it, before anything runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.spec.errors import SpecError, problem

KEY = "data.perpendicular_scale"


@dataclass(frozen=True)
class PerpendicularSource:
    """Where a campaign's perpendicular_scale comes from (the TOML table's keys)."""

    from_campaign: str
    at: str = "fitted"  # fitted | end
    alpha_tilde: float | None = None  # None: the source's smallest α̃

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def unreadable_source(source: PerpendicularSource, err: Exception, where: str) -> SpecError:
    """The SpecError for a source campaign that cannot be read (absent, or unreadable)."""
    return SpecError(
        [
            problem(
                KEY,
                f"cannot read the campaign {source.from_campaign!r} that perpendicular_scale "
                f"comes from ({err}): run it first, or fix from_campaign",
                where,
            )
        ],
        where,
    )


def measured_scales(
    source: PerpendicularSource,
    measured: Mapping[int, float],
    train_sizes: Sequence[int],
    where: str,
) -> tuple[tuple[int, float], ...]:
    """((P, Λ(P)), ...) for every train size of the campaign, from the source's `measured`
    {P: Λ}. SpecError naming the P the source lacks, or a factor that is not positive."""
    missing = [p for p in train_sizes if p not in measured]
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
    scales = tuple((p, measured[p]) for p in train_sizes)
    if not all(math.isfinite(v) and v > 0 for _, v in scales):
        raise SpecError(
            [problem(KEY, f"measured factors {scales} are not all positive", where)], where
        )
    return scales
