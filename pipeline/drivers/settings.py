"""Settings are part of a campaign's identity: `run` of a spec whose fixed settings differ
from the stored campaign's is refused with the diff and the two ways on (issue 13, case 5).

The fixed settings are the spec's [data], [model], [loss], [flow] and [observables]
(where a cell runs, `data_dir` and `device`, are not settings; [grid], [resources] and
[refine] may change freely: a grown grid runs only its new cells). The ways on:
- a new `name`: a new campaign, or
- `run --add-settings-group`: the new cells join the campaign as a second settings group.
  Allowed only when every changed setting is a column of the tables (results_schema
  SETTINGS: dataset, budgets, loss, ...), because `ensembles` and `boundaries` are
  computed per distinct value of those columns and so never average across groups.
"""

from __future__ import annotations

from typing import Any

from pipeline.spec.campaign import CampaignSpec

SECTIONS = ("data", "model", "loss", "flow", "observables")
WHERE_NOT_WHAT = {("data", "data_dir"), ("observables", "device")}
# spec key -> the column of cells / ensembles / boundaries that tells its groups apart
COLUMN_OF = {
    **{
        ("data", k): k
        for k in (
            "dataset",
            "dimension",
            "test_size",
            "kernel_size",
            "train_seed",
            "test_seed",
            "kernel_seed",
            "train_size",
        )
    },
    **{("model", k): k for k in ("arch", "activation", "activation_beta", "bias", "depth")},
    ("loss", "kind"): "loss",
    ("loss", "beta"): "loss_beta",
    **{("flow", k): k for k in ("max_steps", "max_time", "max_wall_seconds")},
    ("observables", "dtype"): "dtype",
}
GROUP_FLAG = "--add-settings-group"


class SettingsChangedError(ValueError):
    """The spec's fixed settings differ from the stored campaign's; says the ways on."""


def fixed_settings(spec: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """(section, key) -> value of every fixed setting of a resolved spec (`to_dict()`)."""
    return {
        (section, key): value
        for section in SECTIONS
        for key, value in spec.get(section, {}).items()
        if (section, key) not in WHERE_NOT_WHAT
    }


def settings_diff(stored: dict[str, Any], new: dict[str, Any]) -> dict[tuple[str, str], tuple]:
    """(section, key) -> (stored value, new value) of each fixed setting that differs."""
    old, now = fixed_settings(stored), fixed_settings(new)
    keys = sorted(old.keys() | now.keys())
    return {k: (old.get(k), now.get(k)) for k in keys if old.get(k) != now.get(k)}


def _show(diff: dict[tuple[str, str], tuple]) -> str:
    return "; ".join(f"{s}.{k}: {a!r} -> {b!r}" for (s, k), (a, b) in diff.items())


def check_settings(
    stored: dict[str, Any] | None, spec: CampaignSpec, campaign: str, add_group: bool
) -> bool:
    """Raise SettingsChangedError (one line: the diff and the ways on) when `spec` changes
    a fixed setting of the `stored` spec of `campaign` and `add_group` is not set, or is
    set but a changed setting has no column to tell the groups apart. Returns whether
    the run adds a settings group."""
    diff = settings_diff(stored, spec.to_dict()) if stored is not None else {}
    if not diff:
        return False
    unlabelled = [f"{s}.{k}" for s, k in diff if (s, k) not in COLUMN_OF]
    if add_group and not unlabelled:
        return True
    why = (
        f"; {', '.join(unlabelled)} has no column in the tables, so a second group could "
        "not be told apart: give the spec a new `name`"
        if add_group
        else f": give the spec a new `name` (a new campaign), or pass {GROUP_FLAG} to add "
        "these cells as a second settings group (aggregates and boundaries per group)"
    )
    raise SettingsChangedError(
        f"campaign {campaign} was run with other fixed settings ({_show(diff)}){why}"
    )
