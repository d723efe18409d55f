"""The fast layer-wise NTK against torch.func, and the empirical NTK against its
infinite-width limit (Jacot et al.'s arc-cosine recursion, written out here)."""

from __future__ import annotations

import math

import pytest
import torch

from tasks.activations import ACTIVATIONS
from tasks.models import ConvNet, build_model
from tasks.ntk import ntk_change, ntk_gram, ntk_gram_jacobian

F64 = torch.float64


def _points(n: int, d: int, seed: int) -> torch.Tensor:
    """n points on the sphere of radius √d (the paper's normalisation), [n, d]."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x * math.sqrt(d) / x.norm(dim=1, keepdim=True)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def _ntk_by_autograd_loop(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Θ from one autograd.grad per point and a dense Jacobian (the slowest, plainest way)."""
    params = list(model.parameters())
    rows = [
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(model(x[i : i + 1])[0], params)])
        for i in range(x.shape[0])
    ]
    J = torch.stack(rows)  # [P, N]
    return J @ J.T


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("bias", [False, True])
def test_fast_ntk_equals_torch_func_jacobian_ntk(activation: str, depth: int, bias: bool) -> None:
    seed = 100 * depth + 10 * bias + ACTIVATIONS.index(activation)
    model = build_model(
        4, 9, depth, activation, 3.0, bias, generator=torch.Generator().manual_seed(seed)
    )
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    fast = ntk_gram(model, x)
    assert fast.dtype == F64 and fast.shape == (7, 7)
    assert _relative_error(fast, ntk_gram_jacobian(model, x)) < 1e-10


def test_fast_ntk_does_not_depend_on_row_blocks() -> None:
    model = build_model(3, 16, 2, "swish", 10.0, True, torch.Generator().manual_seed(1))
    x = _points(11, 3, seed=2)
    assert torch.allclose(ntk_gram(model, x, block_rows=3), ntk_gram(model, x), rtol=1e-13, atol=0)


def test_jacobian_ntk_equals_per_point_autograd_for_fc_and_cnn() -> None:
    g = torch.Generator().manual_seed(3)
    models = [
        build_model(5, 6, 2, "tanh", 2.0, True, g),
        ConvNet(10, 4, 2, "swish", 10.0, bias=True, generator=g),
        ConvNet(256, 3, 1, "relu", generator=g),
    ]
    for model in models:
        x = torch.randn(4, _input_dim(model), generator=g, dtype=F64)
        reference = _ntk_by_autograd_loop(model, x)
        assert _relative_error(ntk_gram_jacobian(model, x), reference) < 1e-12
        assert _relative_error(ntk_gram(model, x), reference) < 1e-12


def _input_dim(model: torch.nn.Module) -> int:
    return math.prod(model.input_shape) if isinstance(model, ConvNet) else model.fan_ins[0]


def test_ntk_is_symmetric_positive_semidefinite() -> None:
    model = build_model(5, 32, 3, "softplus", 1.0, True, torch.Generator().manual_seed(4))
    theta = ntk_gram(model, _points(15, 5, seed=5))
    assert torch.equal(theta, theta.T) or torch.allclose(theta, theta.T, rtol=1e-14, atol=0)
    assert torch.linalg.eigvalsh(theta).min() > -1e-10 * theta.diag().max()


def _arccos_relu_ntk(x: torch.Tensor, depth: int) -> torch.Tensor:
    """Infinite-width NTK of the no-bias net with σ(z) = √2·max(0, z), NTK parametrisation.

    Σ_1 = Θ_1 = x·x'/d; for l = 2..L+1, with q = Σ_{l-1}(x,x), cos φ = Σ_{l-1}(x,x')/√(q q'):
      Σ_l  = E[σ(u)σ(v)]   = √(q q')·(sin φ + (π − φ) cos φ)/π,
      Σ̇_l = E[σ'(u)σ'(v)] = (π − φ)/π,
      Θ_l  = Σ_l + Σ̇_l·Θ_{l−1}."""
    sigma = x @ x.T / x.shape[1]
    theta = sigma.clone()
    for _ in range(depth):
        norms = torch.sqrt(torch.outer(sigma.diag(), sigma.diag()))
        phi = torch.arccos(torch.clamp(sigma / norms, -1.0, 1.0))
        sigma_dot = (math.pi - phi) / math.pi
        sigma = norms * (torch.sin(phi) + (math.pi - phi) * torch.cos(phi)) / math.pi
        theta = sigma + sigma_dot * theta
    return theta


def _mean_error_to_infinite_width(width: int, seeds: range, depth: int = 2) -> float:
    x = _points(20, 6, seed=7)
    limit = _arccos_relu_ntk(x, depth)
    errors = [
        _relative_error(
            ntk_gram(
                build_model(6, width, depth, "relu", generator=torch.Generator().manual_seed(s)), x
            ),
            limit,
        )
        for s in seeds
    ]
    return sum(errors) / len(errors)


def test_wide_relu_ntk_approaches_arccos_limit_and_error_shrinks_with_width() -> None:
    narrow = _mean_error_to_infinite_width(256, range(2))
    wide = _mean_error_to_infinite_width(4096, range(2))
    assert wide < 0.10
    assert wide < 0.5 * narrow  # ~1/√h: the ratio is about 1/4 when width grows 16×


def test_arccos_reference_has_the_closed_form_diagonal() -> None:
    # Each hidden layer adds 1 on the diagonal when |x|² = d and E[σ²] = 1: Θ(x, x) = L + 1.
    x = _points(5, 4, seed=8)
    assert torch.allclose(_arccos_relu_ntk(x, 3).diag(), torch.full((5,), 4.0, dtype=F64))


def test_ntk_change_is_relative_frobenius_distance() -> None:
    theta = ntk_gram(
        build_model(3, 8, 2, generator=torch.Generator().manual_seed(9)), _points(6, 3, seed=10)
    )
    assert ntk_change(theta, theta) == 0.0
    assert ntk_change(theta, 3 * theta) == pytest.approx(2.0, rel=1e-14)
