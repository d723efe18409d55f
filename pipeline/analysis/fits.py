"""Power laws fitted in log-log: learning curves ε(P) ~ P^{-β} (pipeline.analysis.ensembles)
and the ensemble gain against N (pipeline.analysis.ensemble_gain)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LogLogFit:
    """log y = intercept + slope·log x, least squares; slope_error is its standard
    error (NaN with two points)."""

    slope: float
    slope_error: float
    intercept: float
    n_points: int


def fit_log_log(x: Sequence[float], y: Sequence[float]) -> LogLogFit:
    """Least-squares line through (log x, log y), over points with x, y > 0 finite."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = np.log(x[keep]), np.log(y[keep])
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return LogLogFit(math.nan, math.nan, math.nan, n)
    from scipy import stats  # here: importing scipy.stats costs `status` seconds

    fit = stats.linregress(x, y)
    return LogLogFit(
        float(fit.slope), float(fit.stderr) if n > 2 else math.nan, float(fit.intercept), n
    )
