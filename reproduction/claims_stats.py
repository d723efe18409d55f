"""The statistics every claim's rule shares: 3-standard-error tests, seed means with their
errors, a located peak, a fitted exponent over a stated range.

Pure and small, so that the rules in reproduction.claims* read as what they test:
`verdict_of(effect, error)` is the single place that says an effect is "reproduced" (at least
SIGMAS standard errors in the paper's direction), "not reproduced" (as far the other way, or
resolved as absent: exactly zero with zero error) or "not resolved" (neither).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.analysis.ensembles import fit_log_log
from reproduction.claims_verdicts import NOT, NOT_RESOLVED, REPRODUCED

SIGMAS = 3.0  # an effect is resolved when it is at least this many standard errors


def significant(effect: float, error: float, sigmas: float = SIGMAS) -> bool:
    """effect > 0 and effect ≥ sigmas · error (error finite and ≥ 0)."""
    if not (np.isfinite(effect) and np.isfinite(error)) or error < 0:
        return False
    return bool(effect > 0 and effect >= sigmas * error)


def verdict_of(effect: float, error: float, sigmas: float = SIGMAS) -> str:
    """REPRODUCED if the effect (signed in the paper's direction) is ≥ sigmas s.e. above 0,
    NOT if it is as far below or resolved as absent (effect ≤ 0 with error 0),
    NOT_RESOLVED otherwise (too few points for an error, or within sigmas s.e. of 0)."""
    if significant(effect, error, sigmas):
        return REPRODUCED
    if significant(-effect, error, sigmas) or (np.isfinite(effect) and error == 0 and effect <= 0):
        return NOT
    return NOT_RESOLVED


def mean_error(values) -> tuple[float, float]:
    """Mean and its standard error std(ddof=1)/√n over the finite values (error NaN if n < 2)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan
    if len(v) < 2:
        return float(v[0]), math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))


def seed_means(cells: pd.DataFrame, keys: list[str], column: str = "test_error") -> pd.DataFrame:
    """Per group of `keys`: mean of `column` over the group's cells (seeds), its standard
    error and the number of cells (columns mean, error, n)."""
    if cells.empty:
        return pd.DataFrame(columns=[*keys, "mean", "error", "n"])
    rows = []
    for key, group in cells.groupby(keys):
        mean, error = mean_error(group[column])
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), "mean": mean, "error": error, "n": len(group)})
    return pd.DataFrame(rows)


def binomial_error(error_rate: float, n_test: float) -> float:
    """Standard error of a test error measured on n_test independent test points."""
    if not (np.isfinite(error_rate) and n_test > 0):
        return math.nan
    return math.sqrt(max(error_rate * (1 - error_rate), 0.0) / n_test)


def proportion_rise(
    hits_before: float, n_before: float, hits_after: float, n_after: float
) -> tuple[float, float]:
    """Rise of a proportion, hits_after/n_after − hits_before/n_before, and its binomial
    standard error with the pooled variance p̄(1 − p̄)(1/n_before + 1/n_after), p̄ the
    proportion of both samples together: the error under "no rise", so that 0 of 5 vs
    5 of 5 is resolved (1 ≥ 3 × 0.32) and 0 of 4 vs 4 of 4 is not (1 < 3 × 0.35), where
    the unpooled error of two certain proportions would be 0. NaN without cells."""
    if not (n_before > 0 and n_after > 0):
        return math.nan, math.nan
    pooled = (hits_before + hits_after) / (n_before + n_after)
    error = math.sqrt(pooled * (1 - pooled) * (1 / n_before + 1 / n_after))
    return float(hits_after / n_after - hits_before / n_before), error


def quadrature(*errors: float) -> float:
    """√(Σ e²): the error of a sum or difference of independent measurements."""
    return float(math.sqrt(sum(e * e for e in errors)))


@dataclass(frozen=True)
class Vertex:
    """The maximum of the parabola through three points (x_i, y_i ± e_i): where (x) and its
    standard error by linear propagation of the e_i (NaN if the parabola is not concave)."""

    x: float
    error: float


def parabola_vertex(x, y, errors) -> Vertex:
    """Vertex of the parabola through three points; its error propagates the y errors
    (the numerical derivative of the vertex with respect to each y_i)."""
    x, y, errors = (np.asarray(a, float) for a in (x, y, errors))

    def vertex(values: np.ndarray) -> float:
        a, b, _ = np.polyfit(x, values, 2)
        return -b / (2 * a) if a < 0 else math.nan

    where = vertex(y)
    if not np.isfinite(where):
        return Vertex(math.nan, math.nan)
    step = 1e-6 * max(float(np.max(np.abs(y))), 1e-12)
    gradient = []
    for i in range(3):
        shifted = y.copy()
        shifted[i] += step
        gradient.append((vertex(shifted) - where) / step)
    error = quadrature(*(g * e for g, e in zip(gradient, errors)))
    return Vertex(float(where), error)


@dataclass(frozen=True)
class Exponent:
    """A power law y ∝ x^slope fitted in log-log: slope ± error, over `decades` of x."""

    slope: float
    error: float
    n_points: int
    decades: float


def fit_exponent(x, y) -> Exponent:
    """fit_log_log through (x, y) with the decades log10(max x / min x) it spans."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    fit = fit_log_log(x[keep], y[keep])
    span = float(np.log10(x[keep].max() / x[keep].min())) if keep.sum() >= 2 else 0.0
    return Exponent(fit.slope, fit.slope_error, fit.n_points, span)


def exponent_verdict(
    fit: Exponent, expected: float, tolerance: float, min_decades: float, max_error: float
) -> str:
    """An exponent against its prediction. NOT_RESOLVED if fewer than 3 points, fewer than
    `min_decades` decades, or an error above `max_error`; REPRODUCED if |slope − expected| ≤
    max(tolerance, SIGMAS · error) and, for a non-zero prediction, the slope is ≥ SIGMAS · error
    away from 0 (else a flat line with a large error would pass: NOT_RESOLVED); NOT otherwise."""
    if (
        fit.n_points < 3
        or fit.decades < min_decades - 1e-9
        or not np.isfinite(fit.error)
        or fit.error > max_error
    ):
        return NOT_RESOLVED
    if abs(fit.slope - expected) > max(tolerance, SIGMAS * fit.error):
        return NOT
    if expected != 0 and abs(fit.slope) < SIGMAS * fit.error:
        return NOT_RESOLVED  # consistent with the prediction, but not told from no power law
    return REPRODUCED


def tally(verdicts: list[str]) -> str:
    """'2 reproduced, 1 not resolved' (counts of each verdict, in a fixed order)."""
    order = (REPRODUCED, "partly", NOT, NOT_RESOLVED)
    return ", ".join(f"{verdicts.count(v)} {v}" for v in order if verdicts.count(v))
