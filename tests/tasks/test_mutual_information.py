"""The k-NN mutual-information estimator against distributions with a known answer, and the
kernel PCA of the NTK on a kernel with a planted label-aligned eigenvector (paper Fig. 10)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tasks.kernel_pca import kernel_pca
from tasks.mutual_information import _kth_neighbour_distance, knn_mutual_information


def _gaussian(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def test_independent_labels_have_zero_information():
    values = _gaussian(4000, 0)
    labels = np.random.default_rng(1).integers(0, 2, 4000)
    assert abs(knn_mutual_information(values, labels)) < 0.02  # bits


def test_a_balanced_threshold_label_carries_one_bit():
    values = _gaussian(4000, 2)
    labels = np.where(values > np.median(values), 1, -1)
    assert knn_mutual_information(values, labels) == pytest.approx(1.0, abs=0.02)


def test_a_four_valued_deterministic_label_carries_two_bits():
    values = _gaussian(4000, 3)
    labels = np.digitize(values, np.quantile(values, [0.25, 0.5, 0.75]))
    assert knn_mutual_information(values, labels) == pytest.approx(2.0, abs=0.05)


def _mixture_information_bits(separation: float) -> float:
    """I(c; y) for y = ±1 equiprobable and c | y ~ N(y·separation, 1), by quadrature."""
    c = np.linspace(-12 - separation, 12 + separation, 200_001)
    plus = np.exp(-0.5 * (c - separation) ** 2) / math.sqrt(2 * math.pi)
    minus = np.exp(-0.5 * (c + separation) ** 2) / math.sqrt(2 * math.pi)
    mixture = 0.5 * (plus + minus)
    integrand = 0.5 * plus * np.log2(plus / mixture) + 0.5 * minus * np.log2(minus / mixture)
    return float(np.trapezoid(integrand, c))


@pytest.mark.parametrize("separation", [0.5, 1.0, 2.0])
def test_a_gaussian_mixture_matches_its_integrated_information(separation):
    rng = np.random.default_rng(4)
    labels = rng.choice([-1.0, 1.0], 8000)
    values = labels * separation + rng.standard_normal(8000)
    exact = _mixture_information_bits(separation)
    assert 0.1 < exact < 0.95
    assert knn_mutual_information(values, labels) == pytest.approx(exact, abs=0.03)


def test_information_is_unchanged_by_sign_and_scale_of_the_values():
    rng = np.random.default_rng(5)
    labels = rng.choice([-1.0, 1.0], 1000)
    values = labels + rng.standard_normal(1000)
    reference = knn_mutual_information(values, labels)
    assert knn_mutual_information(-3.7 * values, labels) == pytest.approx(reference, abs=1e-12)


def test_kth_neighbour_distance_equals_brute_force():
    values = _gaussian(300, 6)
    brute = np.sort(np.abs(values[:, None] - values[None, :]), axis=1)  # column 0: itself
    for k in (1, 5, 20):
        np.testing.assert_allclose(_kth_neighbour_distance(values, k), brute[:, k])


def test_non_finite_values_give_nan_and_bad_shapes_raise():
    assert math.isnan(knn_mutual_information(np.array([0.0, np.nan, 1.0]), np.array([0, 1, 0])))
    with pytest.raises(ValueError, match="same length"):
        knn_mutual_information(np.zeros(3), np.zeros(4))


# Kernel PCA ------------------------------------------------------------------------------


def _planted_kernel(n: int, aligned_rank: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Θ = Σ_r λ_r φ_r φ_rᵀ with λ_r = 10/(r+1) and φ_{aligned_rank} ∝ y (balanced ±1);
    the other φ_r an orthonormal random basis of y's complement."""
    g = torch.Generator().manual_seed(seed)
    y = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).double()
    y = y[torch.randperm(n, generator=g)]
    basis = torch.cat(
        [y[:, None] / y.norm(), torch.randn(n, n - 1, generator=g, dtype=torch.float64)], dim=1
    )
    q, _ = torch.linalg.qr(basis)  # column 0 = ±y/‖y‖, the rest orthogonal to it
    order = list(range(1, n))
    order.insert(aligned_rank, 0)
    vectors = q[:, order]
    eigenvalues = 10.0 / torch.arange(1, n + 1, dtype=torch.float64)
    return vectors @ torch.diag(eigenvalues) @ vectors.T, y


def test_kernel_pca_picks_out_the_label_aligned_eigenvector():
    gram, y = _planted_kernel(400, aligned_rank=3, seed=7)
    result = kernel_pca(gram, y, rank=20)
    np.testing.assert_allclose(result.eigenvalues, 10.0 / np.arange(1, 21), rtol=1e-10)
    assert result.label_projection[3] == pytest.approx(1.0, abs=1e-10)
    assert np.delete(result.label_projection, 3).max() < 1e-10
    assert result.mutual_information[3] == pytest.approx(1.0, abs=0.05)
    assert np.delete(result.mutual_information, 3).max() < 0.15
    assert int(np.argmax(result.mutual_information)) == 3


def test_kernel_pca_rank_is_capped_by_the_kernel_size_and_zero_rank_is_empty():
    gram, y = _planted_kernel(30, aligned_rank=0, seed=8)
    assert len(kernel_pca(gram, y, rank=100).eigenvalues) == 30
    assert len(kernel_pca(gram, y, rank=0).mutual_information) == 0
    assert (
        len(
            kernel_pca(torch.full((3, 3), math.nan, dtype=torch.float64), y[:3], rank=5).eigenvalues
        )
        == 0
    )


def test_a_two_valued_variable_equal_to_the_label_carries_one_bit():
    labels = np.random.default_rng(9).choice([-1.0, 1.0], 1000)
    assert knn_mutual_information(labels / 7.0, labels) == pytest.approx(1.0, abs=0.01)
    shuffled = np.random.default_rng(10).permutation(labels)
    assert abs(knn_mutual_information(shuffled, labels)) < 0.02
