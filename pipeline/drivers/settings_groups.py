"""The settings groups of a campaign's cells (`run --add-settings-group`): what tells them
apart and how figures name them. A campaign run under one set of fixed settings is one
group; figures, like the aggregates, are made per group and never mix two.

Groups differ in the settings columns of pipeline/drivers/settings.py COLUMN_OF (the only
changes `--add-settings-group` accepts), less the grid axes (train_size and depth may be
fixed in [data] / [model], but figures slice them as axes)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.drivers.settings import COLUMN_OF
from pipeline.spec.axes import AXES

GROUP_COLUMNS = tuple(sorted(set(COLUMN_OF.values()) - set(AXES)))
UNSAFE = re.compile(r"[^A-Za-z0-9.+-]")  # characters kept out of a file name


@dataclass(frozen=True)
class SettingsGroup:
    """One group: its values of the columns that differ between the campaign's groups
    (empty when the campaign holds one group), a label and a file-name suffix."""

    settings: dict[str, Any]
    label: str  # "max_steps = 2,000"; "" for a campaign of one group
    suffix: str  # "max_steps-2000"; "" for a campaign of one group


def _plain(value: Any) -> Any:
    """A cell's value as Python: NaN / None -> None, numpy scalars -> int / float / str."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def settings_groups(cells: pd.DataFrame) -> list[SettingsGroup]:
    """The groups of `cells` (done cells), ordered by their values (None last)."""
    columns = [c for c in GROUP_COLUMNS if c in cells and cells[c].nunique(dropna=False) > 1]
    if not columns:
        return [SettingsGroup({}, "", "")]
    combos = {
        tuple(_plain(v) for v in row)
        for row in cells[columns].astype(object).itertuples(index=False, name=None)
    }
    ordered = sorted(combos, key=lambda vs: [(v is None, str(type(v)), v or 0) for v in vs])
    groups = []
    for values in ordered:
        raw = ["none" if v is None else str(v) for v in values]
        shown = [
            f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else s
            for v, s in zip(values, raw)
        ]
        groups.append(
            SettingsGroup(
                dict(zip(columns, values)),
                ", ".join(f"{c} = {s}" for c, s in zip(columns, shown)),
                ".".join(f"{c}-{UNSAFE.sub('_', s)}" for c, s in zip(columns, raw)),
            )
        )
    return groups
