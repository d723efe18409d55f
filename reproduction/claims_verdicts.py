"""What every claim returns: the `Claim` record, the four verdicts and how verdicts combine.

The verdicts: reproduced, partly, not reproduced, and "not resolved" (the data cannot decide:
an effect under 3 standard errors, too short a range, too few qualifying nets); "not run"
when the campaign a claim needs is not in the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REPRODUCED, PARTLY, NOT, NOT_RUN = "reproduced", "partly", "not reproduced", "not run"
NOT_RESOLVED = "not resolved"
VERDICTS = (REPRODUCED, PARTLY, NOT, NOT_RESOLVED, NOT_RUN)


@dataclass(frozen=True)
class Claim:
    """One claim: the paper's statement, what we measured (markdown), the verdict."""

    key: str
    title: str
    paper: str
    measured: str
    verdict: str
    rule: str
    numbers: dict = field(default_factory=dict)


def not_run(key: str, title: str, paper: str, rule: str, missing: str) -> Claim:
    return Claim(
        key,
        title,
        paper,
        f"not measured: {missing} not in the store (run `python -m reproduction`)",
        NOT_RUN,
        rule,
    )


def g(value: float | None, digits: int = 2) -> str:
    """A number for the report: 3 significant digits, '—' for NaN."""
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits + 1}g}"


def combine(verdicts: list[str]) -> str:
    """Verdicts of the parts (data sets, α̃ lines) into one: all reproduced -> reproduced;
    all not resolved -> not resolved; only 'not reproduced' and 'not resolved' (at least one
    not) -> not reproduced; none -> not reproduced; any other mix -> partly."""
    if not verdicts:
        return NOT
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if all(v == NOT_RESOLVED for v in verdicts):
        return NOT_RESOLVED
    if all(v in (NOT, NOT_RESOLVED) for v in verdicts):
        return NOT
    return PARTLY


def all_hold(tests: list[str]) -> str:
    """Tests that must all pass for one verdict: reproduced when every test is, not
    reproduced when any is not, else not resolved."""
    if all(t == REPRODUCED for t in tests):
        return REPRODUCED
    return NOT if NOT in tests else NOT_RESOLVED


def majority(verdicts: list[str]) -> str:
    """Over the α̃ lines of one campaign: the verdict of more than half of them, else partly
    when some line reproduces, else not resolved when some line is, else not reproduced."""
    for v in (REPRODUCED, NOT, NOT_RESOLVED):
        if verdicts.count(v) > len(verdicts) / 2:
            return v
    if REPRODUCED in verdicts:
        return PARTLY
    return NOT_RESOLVED if NOT_RESOLVED in verdicts else NOT
