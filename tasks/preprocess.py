"""The paper's preprocessing of images and its class-balanced, disjoint splits.

Images (design.md §2): each image centred by the per-pixel mean, rescaled to norm
√D (D pixels), projected on the first d principal components of the whole pool and
scaled by 1/√(mean of the top-d eigenvalues), so that the output covariance is
diag(λ_1..λ_d)/mean(λ_1..λ_d): uncorrelated components whose variances average 1.

Splits: the test, kernel and train sets are drawn in that order, each from its own
seed, disjoint, and balanced over the original classes (digits, CIFAR classes, or the
two synthetic classes) by a round-robin over classes: position j of the
concatenated sequence test|kernel|train holds class j mod K. So a set's class counts
differ by at most one, its ±1 labels too (K even, classes alternate in parity), and
the test set depends only on (pool, test_size, test_seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# A set's role salts its seed, so equal seeds for two roles still give different draws.
ROLES = ("test", "kernel", "train")


def role_generator(seed: int, role: str) -> torch.Generator:
    """Generator of one set: seeded with 3·seed + index(role) (injective in (seed, role))."""
    return torch.Generator().manual_seed(3 * int(seed) + ROLES.index(role))


def centre_and_normalise(pixels: torch.Tensor) -> torch.Tensor:
    """x_μ ← √D (x_μ − x̄) / ‖x_μ − x̄‖, x̄ the per-pixel mean over the pool.

    pixels: [N, D] -> [N, D] float64 (a new tensor, the input is left alone)."""
    x = pixels.to(torch.float64, copy=True)  # [N, D]
    x -= x.mean(dim=0)
    norms = x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    x *= math.sqrt(x.shape[1]) / norms
    return x


def pca_project(x: torch.Tensor, d: int) -> torch.Tensor:
    """Projection on the top-d principal components scaled by 1/√mean(λ_1..λ_d).

    x: [N, D] float64 -> [N, d]. λ are the eigenvalues of C = (x−x̄)ᵀ(x−x̄)/N (the mean
    is removed again: after the per-image rescaling it is no longer zero). Each
    eigenvector's sign is fixed so its largest-magnitude entry is positive, which makes
    the output the same on every LAPACK."""
    if not 1 <= d <= x.shape[1]:
        raise ValueError(
            f"dimension (number of PCA components) must be in 1..{x.shape[1]}, got {d}"
        )
    z = x - x.mean(dim=0)  # [N, D]
    eigenvalues, eigenvectors = torch.linalg.eigh(z.T @ z / len(z))  # ascending
    top = torch.flip(eigenvectors[:, -d:], dims=[1])  # [D, d]
    biggest = top.abs().argmax(dim=0)
    top = top * torch.sign(top[biggest, torch.arange(d)])
    scale = eigenvalues[-d:].mean().rsqrt()
    return (z @ top) * scale  # [N, d]


def preprocess_images(pixels: torch.Tensor, d: int) -> torch.Tensor:
    """pixels [N, D] -> [N, d]: centre_and_normalise then pca_project."""
    return pca_project(centre_and_normalise(pixels), d)


def binary_labels(classes: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Class index even -> +1, odd -> -1. classes: [N] integer -> [N] `dtype`."""
    return 1.0 - 2.0 * (classes % 2).to(dtype)


def class_counts(offset: int, size: int, n_classes: int) -> list[int]:
    """How many of positions offset..offset+size-1 hold class k (position j holds j mod K)."""

    def upto(end: int, k: int) -> int:  # #{0 <= j < end : j mod K == k}
        return (end - k + n_classes - 1) // n_classes if end > k else 0

    return [upto(offset + size, k) - upto(offset, k) for k in range(n_classes)]


def round_robin_order(offset: int, size: int, n_classes: int) -> torch.Tensor:
    """Class of each position of a set, [size] long (its examples are listed in this order)."""
    return torch.arange(offset, offset + size) % n_classes


def balanced_split(
    classes: torch.Tensor, sizes: Sequence[int], generators: Sequence[torch.Generator]
) -> list[torch.Tensor]:
    """Disjoint, class-balanced index sets of the given sizes, drawn in order.

    classes: [N] class indices 0..K-1. Set s takes class_counts(offset_s, n_s, K)
    examples of each class, uniformly without replacement from those not taken by
    earlier sets, using generators[s]. Returns one LongTensor [n_s] per set, ordered
    round-robin over classes. Raises ValueError if a class runs out."""
    n_classes = int(classes.max()) + 1
    remaining = [torch.nonzero(classes == k).flatten() for k in range(n_classes)]
    sets, offset = [], 0
    for size, generator in zip(sizes, generators):
        picked = []
        for k, count in enumerate(class_counts(offset, size, n_classes)):
            if count > len(remaining[k]):
                raise ValueError(f"class {k} has {len(remaining[k])} examples left, {count} needed")
            permuted = remaining[k][torch.randperm(len(remaining[k]), generator=generator)]
            picked.append(permuted[:count])
            remaining[k] = torch.sort(permuted[count:]).values  # keep later draws order-free
        order, chosen = (
            round_robin_order(offset, size, n_classes),
            torch.empty(size, dtype=torch.long),
        )
        for k in range(n_classes):
            chosen[order == k] = picked[k]
        sets.append(chosen)
        offset += size
    return sets
