"""Mutual information between a continuous variable and discrete labels, by k nearest
neighbours (Ross 2014, "Mutual information between discrete and continuous data sets",
PLoS ONE 9(2): e87357 — the estimator scikit-learn's ``mutual_info_classif`` uses).

For N points (c_i, y_i), c_i real and y_i one of a few labels:

    I(c; y) = ψ(N) − ⟨ψ(N_{y_i})⟩ + ψ(k) − ⟨ψ(m_i)⟩        (nats; divided by ln 2: bits)

where N_{y} is the number of points with label y, d_i the distance from c_i to its k-th
nearest neighbour among the points of its own label, and m_i the number of points of any
label (i itself included) strictly closer to c_i than d_i. Points whose label occurs once
are left out (they have no neighbour of their class); a class of n ≤ k points uses k = n−1.
Ties (a discrete-valued c, e.g. an eigenvector ∝ y): where d_i = 0, k and m become the
numbers of other points with exactly the value c_i, of its own label and of any label (the
rule of Gao et al. 2017 for discrete–continuous mixtures), so c = ±1 carrying a balanced
label still gives ≈ 1 bit instead of the Ross formula's ψ(k) − ψ(1). Values are first
rounded to a grid of 10⁻⁹ of their standard deviation (`TIE_RESOLUTION`), so that values
equal up to floating-point roundoff (an eigenvector from LAPACK) count as tied.

Known values (tests/tasks/test_mutual_information.py): labels independent of c give ≈ 0 (the
estimate is not clipped, so it can be slightly negative); a balanced label that is a
deterministic function of c with one threshold gives ≈ 1 bit; a two-Gaussian mixture
matches its numerically integrated MI.

Used by `tasks.kernel_pca` on the components of the NTK's eigenvectors (paper Fig. 10).
"""

from __future__ import annotations

import math

import numpy as np
import torch

DEFAULT_NEIGHBOURS = 5
TIE_RESOLUTION = 1e-9  # values closer than this many standard deviations are tied


def _digamma(x: np.ndarray) -> np.ndarray:
    return torch.special.digamma(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


def _kth_neighbour_distance(values: np.ndarray, k: int) -> np.ndarray:
    """Distance from each value [n] to its k-th nearest other value, in 1-D (k < n).

    In sorted order the k nearest neighbours of position i lie among positions i−k..i+k,
    so the k-th smallest of those 2k distances (missing ones = ∞) is the answer."""
    order = np.argsort(values, kind="stable")
    s = values[order]
    padded = np.concatenate([np.full(k, -np.inf), s, np.full(k, np.inf)])
    n = len(s)
    offsets = np.concatenate([np.arange(-k, 0), np.arange(1, k + 1)])  # [2k]
    window = padded[np.arange(n)[:, None] + k + offsets[None, :]]  # [n, 2k]
    distances = np.sort(np.abs(window - s[:, None]), axis=1)[:, k - 1]
    out = np.empty(n)
    out[order] = distances
    return out


def _equal_counts(pool: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How many entries of ``pool`` equal each of ``values`` exactly."""
    s = np.sort(pool)
    return np.searchsorted(s, values, side="right") - np.searchsorted(s, values, side="left")


def knn_mutual_information(
    values: np.ndarray, labels: np.ndarray, neighbours: int = DEFAULT_NEIGHBOURS
) -> float:
    """I(values; labels) in bits by the k-NN estimator above.

    values: [n] real; labels: [n] of any type with few distinct values. NaN if fewer than
    two labelled points remain or ``values`` is not finite."""
    c = np.asarray(values, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if c.shape != y.shape:
        raise ValueError(f"values {c.shape} and labels {y.shape} must have the same length")
    if neighbours < 1:
        raise ValueError(f"neighbours must be ≥ 1, got {neighbours}")
    if not np.isfinite(c).all():
        return math.nan
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    keep = counts[inverse] > 1
    c, inverse = c[keep], inverse[keep]
    if len(c) < 2:
        return math.nan
    spread = float(c.std())
    if spread > 0.0:
        c = np.round(c / (TIE_RESOLUTION * spread))
    radius, k_used, class_size = np.empty(len(c)), np.empty(len(c)), np.empty(len(c))
    for label in np.unique(inverse):
        mask = inverse == label
        k = min(neighbours, int(mask.sum()) - 1)
        radius[mask] = _kth_neighbour_distance(c[mask], k)
        k_used[mask], class_size[mask] = k, mask.sum()
        tied = mask & (radius == 0.0)
        k_used[tied] = _equal_counts(c[mask], c[tied]) - 1
    s = np.sort(c)
    within = np.searchsorted(s, c + radius, side="left") - np.searchsorted(
        s, c - radius, side="right"
    )
    tied = radius == 0.0
    within[tied] = _equal_counts(c, c[tied]) - 1
    nats = (
        _digamma(np.array([len(c)]))[0]
        - _digamma(class_size).mean()
        + _digamma(k_used).mean()
        - _digamma(within).mean()
    )
    return float(nats / math.log(2.0))
