"""How much ensembling helps, against the number of parameters N (paper Sec. 4, Fig. 7):
⟨ε(f)⟩ − ε(⟨f⟩) ~ N^{-γ} past jamming, the paper's γ ≈ 1/2 (fluctuations of f ~ N^{-1/4}
enter the test error squared).

`ensemble_gain_exponents(ensembles, axes)` fits log(gain) against log N per grid point of
the axes other than width (the regime α̃, the train size P, …): rows of `boundaries` with
boundary = "ensemble_gain", value = γ, value_error its standard error, lower/upper the N
range fitted. Points with gain ≤ 0 (ensembling did not help, or one seed) are left out of
the log-log fit, and their count shows in n_points; nothing is extrapolated."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from pipeline.analysis.fits import fit_log_log

STATUS = {0: "too_few_points", 1: "too_few_points", 2: "two_points"}


def ensemble_gain_exponents(ensembles: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Rows (boundary="ensemble_gain") of γ with ⟨ε⟩ − ε(⟨f⟩) ~ N^{-γ}; empty unless the
    width is swept. status: fitted | two_points (no error bar) | too_few_points."""
    if ensembles.empty or ensembles["width"].nunique() < 2:
        return pd.DataFrame()
    fixed = [a for a in axes if a != "width"]
    rows = []
    groups = ensembles.groupby(fixed, dropna=False, sort=True) if fixed else [((), ensembles)]
    for key, sub in groups:
        coords = dict(zip(fixed, key if isinstance(key, tuple) else (key,)))
        fit = fit_log_log(sub["n_params"], sub["ensemble_gain"])
        used = sub.loc[sub["ensemble_gain"] > 0, "n_params"]
        rows.append(
            {
                "boundary": "ensemble_gain",
                "quantity": "ensemble_gain",
                "level": math.nan,
                "budget_steps": math.nan,
                "along": "n_params",
                "value": -fit.slope,
                "value_error": fit.slope_error,
                "lower": float(used.min()) if len(used) else math.nan,
                "upper": float(used.max()) if len(used) else math.nan,
                "status": STATUS.get(fit.n_points, "fitted"),
                "n_points": fit.n_points,
                **coords,
            }
        )
    return pd.DataFrame(rows)
