"""Synthetic binary tasks with Gaussian inputs x ~ N(0, I_d), generated from a seed.

Class 0 -> label +1, class 1 -> label -1 (the "even index -> +1" rule of the image
tasks, and the reference code's convention: its boolean label False -> +1):

  stripe          class 1 (label -1) inside the stripe −0.3 < x₁ < 1.18549, class 0 (+1)
                  outside; labels depend on d∥ = 1 direction only. The interval holds
                  exactly half the mass: Φ(1.18549) − Φ(−0.3) = 0.5000.
  sphere          class 0 (+1) inside the sphere |x| < r_d, class 1 (−1) outside, with
                  r_d the median of the chi distribution with d degrees of freedom
                  (the reference used the Wilson–Hilferty approximation of it).
  cylinder        class 0 (+1) inside the cylinder |x∥| < r_{d∥}, class 1 (−1) outside, with
                  x∥ = (x₁..x_{d∥}) the first d∥ = `parallel_dimension` ≥ 2 coordinates and
                  r_{d∥} the median radius of d∥ Gaussian coordinates (balanced classes);
                  labels depend on those d∥ directions only.
  random-labels   labels independent of x (for the linear N*(P) of jamming).

The informative directions ∥ (`informative_directions`: x₁ for the stripe, x₁..x_{d∥} for
the cylinder) are what the weight alignment Λ (tasks.alignment) measures against, and
`[data] perpendicular_scale` divides the other coordinates (tasks.data) after the labels
are drawn: the compressed-data control of the paper's Fig. 9 right.

Sets are balanced by stratified rejection: draw x in fixed chunks, keep the first
examples of each class until each class has its quota. As for images, a larger
train_size with the same seed extends the smaller training set.
"""

from __future__ import annotations

import functools

import torch

from tasks.preprocess import class_counts, round_robin_order
from tasks.specs import SYNTHETIC_DATASETS, DataSpec

__all__ = [
    "STRIPE_INTERVAL",
    "SYNTHETIC_DATASETS",
    "cylinder_classes",
    "informative_directions",
    "sphere_classes",
    "sphere_radius",
    "stripe_classes",
    "synthetic_set",
]

STRIPE_INTERVAL = (-0.3, 1.18549)
CHUNK_ROWS = 1024  # Gaussian points drawn at a time


def stripe_classes(x: torch.Tensor) -> torch.Tensor:
    """[N, d] -> [N] long: 1 where −0.3 < x₁ < 1.18549, else 0."""
    low, high = STRIPE_INTERVAL
    return ((x[:, 0] > low) & (x[:, 0] < high)).long()


@functools.lru_cache(maxsize=64)
def sphere_radius(d: int) -> float:
    """Median of |x| for x ~ N(0, I_d): the r with P(d/2, r²/2) = ½ (P the regularised
    lower incomplete gamma function), found by bisection in float64."""
    half = torch.tensor(d / 2, dtype=torch.float64)
    low, high = 0.0, float(d) + 10.0 * (d**0.5) + 10.0  # chi² median < d + 10√d + 10
    for _ in range(200):
        mid = (low + high) / 2
        if torch.special.gammainc(half, torch.tensor(mid / 2, dtype=torch.float64)) < 0.5:
            low = mid
        else:
            high = mid
    return ((low + high) / 2) ** 0.5


def sphere_classes(x: torch.Tensor) -> torch.Tensor:
    """[N, d] -> [N] long: 0 inside the median sphere, 1 outside."""
    return (x.norm(dim=1) >= sphere_radius(x.shape[1])).long()


def cylinder_classes(x: torch.Tensor, parallel_dimension: int) -> torch.Tensor:
    """[N, d] -> [N] long: 0 inside the median cylinder |x∥| < r_{d∥}, 1 outside."""
    return (x[:, :parallel_dimension].norm(dim=1) >= sphere_radius(parallel_dimension)).long()


def informative_directions(data: DataSpec) -> tuple[int, ...] | None:
    """The input coordinates the labels depend on (stripe: (0,), cylinder: 0..d∥−1), or
    None where they are not a known set of coordinates (images, sphere, random labels)."""
    if data.dataset == "stripe":
        return (0,)
    if data.dataset == "cylinder":
        return tuple(range(data.parallel_dimension))
    return None


def _gaussian_chunk(d: int, generator: torch.Generator) -> torch.Tensor:
    """Next CHUNK_ROWS points of the set's stream. A fixed chunk size makes the stream
    independent of the set size, so a larger set extends a smaller one (nested sets)."""
    return torch.randn(CHUNK_ROWS, d, generator=generator, dtype=torch.float64)


def _stratified(
    classify, counts: list[int], d: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """Per class k, the first counts[k] points of the stream whose class is k: [counts[k], d]."""
    kept: list[list[torch.Tensor]] = [[] for _ in counts]
    missing = list(counts)
    while any(missing):
        x = _gaussian_chunk(d, generator)
        classes = classify(x)
        for k, need in enumerate(missing):
            if need:
                got = x[classes == k][:need]
                kept[k].append(got)
                missing[k] -= len(got)
    return [torch.cat(parts) if parts else torch.zeros(0, d, dtype=torch.float64) for parts in kept]


def synthetic_set(
    name: str,
    d: int,
    offset: int,
    size: int,
    generator: torch.Generator,
    parallel_dimension: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One balanced set: x [size, d] float64, classes [size] long (0 -> +1, 1 -> -1).

    Class quotas and order follow the round-robin of tasks.preprocess (position
    offset + j holds class (offset + j) mod 2)."""
    if d < 1:
        raise ValueError(f"dimension must be >= 1 for {name!r}, got {d}")
    order = round_robin_order(offset, size, 2)
    if name == "random-labels":
        chunks = [_gaussian_chunk(d, generator) for _ in range(-(-size // CHUNK_ROWS))]
        return torch.cat(chunks or [torch.zeros(0, d, dtype=torch.float64)])[:size], order
    if name == "cylinder" and not 1 <= parallel_dimension < d:
        raise ValueError(
            f"parallel_dimension of the cylinder must be in 1..{d - 1} (below "
            f"dimension = {d}), got {parallel_dimension}"
        )
    classify = {
        "stripe": stripe_classes,
        "sphere": sphere_classes,
        "cylinder": functools.partial(cylinder_classes, parallel_dimension=parallel_dimension),
    }[name]
    per_class = _stratified(classify, class_counts(offset, size, 2), d, generator)
    x = torch.zeros(size, d, dtype=torch.float64)
    for k in range(2):
        x[order == k] = per_class[k]
    return x, order
