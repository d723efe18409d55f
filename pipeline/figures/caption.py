"""The caption under every figure `phasegrid plot` writes: which campaign, under which
budget, integrator and loss, and (in a campaign of several) which settings group, so a
figure read on its own says what it shows."""

from __future__ import annotations

import textwrap

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.text import Text

from pipeline.figures.numbers import number

CAPTION_GID = "phasegrid-caption"
CHARS_PER_INCH = 16  # at the caption's 7 pt: where to wrap it


def _digits(value: float) -> str:
    """2,000 (never 2e+03 or 2×10³: a budget is read exactly)."""
    return f"{int(value):,}" if float(value).is_integer() else number(value)


def _values(cells: pd.DataFrame, column: str) -> list:
    return sorted(cells[column].dropna().unique()) if column in cells else []


def budget_text(cells: pd.DataFrame) -> str:
    """ "300 steps or flow time 1,000" (whichever ends a cell first); "none" without one."""
    parts = []
    for column, unit in (
        ("max_steps", "{} steps"),
        ("max_time", "flow time {}"),
        ("max_wall_seconds", "{} s wall clock"),
    ):
        values = _values(cells, column)
        if values:
            parts.append(" / ".join(unit.format(_digits(v)) for v in values))
    return " or ".join(parts) or "none"


def loss_text(cells: pd.DataFrame) -> str:
    """ "softhinge (β = 20)", "hinge"; "/"-joined if several."""
    shown = []
    for loss in _values(cells, "loss"):
        betas = _values(cells.loc[cells["loss"] == loss], "loss_beta")
        beta = f" (β = {' / '.join(number(b) for b in betas)})" if loss == "softhinge" else ""
        shown.append(f"{loss}{beta if betas else ''}")
    return " / ".join(shown)


def caption_text(campaign: str, cells: pd.DataFrame, group: str = "") -> str:
    """ "campaign demo · budget 300 steps · integrator euler-heun · loss softhinge (β = 20)"
    and " · settings group max_steps = 150" when `group` names one of several."""
    parts = [f"campaign {campaign}", f"budget {budget_text(cells)}"]
    integrators = " / ".join(map(str, _values(cells, "integrator")))
    if integrators:
        parts.append(f"integrator {integrators}")
    losses = loss_text(cells)
    if losses:
        parts.append(f"loss {losses}")
    if group:
        parts.append(f"settings group {group}")
    return " · ".join(parts)


def add_caption(fig: Figure, text: str) -> Figure:
    """`text` under the figure's axes (constrained layout makes room), wrapped to the
    figure's width, as plain text (a `$` in a campaign name is no mathtext)."""
    width = int(fig.get_figwidth() * CHARS_PER_INCH)
    fig.supxlabel(
        "\n".join(textwrap.wrap(text, width)),
        fontsize=7,
        color="0.3",
        gid=CAPTION_GID,
        parse_math=False,
    )
    return fig


def caption_of(fig: Figure) -> str | None:
    """The caption `add_caption` gave `fig` (line breaks of the wrapping undone)."""
    texts = [t for t in fig.findobj(Text) if t.get_gid() == CAPTION_GID]
    return " ".join(texts[0].get_text().split("\n")) if texts else None
