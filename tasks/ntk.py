"""Empirical neural tangent kernel Θ(x, x') = ∇_θ f̃(x) · ∇_θ f̃(x') of the un-scaled net f̃.

The α-trick's f = α(f̃_θ − f̃_θ₀) has kernel α²Θ; callers multiply if they need it.
`ntk_change` is scale-free, so it does not care.

Fast path (`FullyConnected`): with layer inputs X_{l−1} [P, fan_in] and back-propagated
signals D_l = ∂f̃/∂a_l [P, h_l] (D_{L+1} = 1), a parameter W_l[i, j] has gradient
D_l[i]·X_{l−1}[j]/√fan_in and B_l[i] has c_b·D_l[i], so

    Θ = Σ_{l=1}^{L+1} (X_{l−1} X_{l−1}ᵀ / fan_in_l + c_b² [l has a bias]) ⊙ (D_l D_lᵀ).

All D_l come from ONE backward of Σ_μ f̃(x_μ) w.r.t. the pre-activations: sample μ's
output depends only on its own pre-activations, so the gradient of the sum at row μ is
∂f̃(x_μ)/∂a_l(x_μ). Cost O(P²·Σ_l h_l) time and O(P·Σ_l h_l + P²) memory; the P×N
Jacobian is never formed.

Generic path (`ntk_gram_blocked`, any module f̃: [P, d] → [P], e.g. the CNN): Jacobians
of B points at a time from `torch.func.vmap(jacrev(...))`, Θ[a, b] = J_a J_bᵀ block by
block, so memory O(B·N) (B = 2^24/N by default) instead of O(P·N). `ntk_gram_jacobian`
contracts the whole P×N Jacobian at once: the test reference.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from tasks.models import FullyConnected

_BLOCK_ELEMENTS = 2**24  # rows of Θ per block so that a [rows, P] temporary stays ≤ 128 MiB (f64)


def ntk_gram(model: nn.Module, x: Tensor, block_rows: int | None = None) -> Tensor:
    """Θ [P, P] on the points x [P, d], in the model's dtype and device.

    Layer-wise formula for `FullyConnected` (computed `block_rows` rows of Θ at a time;
    default: as many as keep a [rows, P] temporary under 2^24 entries), otherwise
    `ntk_gram_blocked` (Jacobian blocks of B points, never the whole P×N Jacobian)."""
    x = _as_model_input(model, x)
    if not isinstance(model, FullyConnected):
        return ntk_gram_blocked(model, x)
    inputs, signals = _inputs_and_signals(model, x)
    n_points = x.shape[0]
    rows = block_rows or max(1, _BLOCK_ELEMENTS // n_points)
    theta = torch.empty(n_points, n_points, dtype=x.dtype, device=x.device)
    for start in range(0, n_points, rows):
        block = slice(start, min(start + rows, n_points))
        _gram_rows(model, inputs, signals, block, out=theta[block])
    return theta


def _as_model_input(model: nn.Module, x: Tensor) -> Tensor:
    """x detached and cast to the dtype and device of the model's parameters."""
    p = next(model.parameters())
    return x.detach().to(dtype=p.dtype, device=p.device)


def _inputs_and_signals(model: FullyConnected, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Layer inputs [X_0 … X_L] and signals [D_1 … D_{L+1}], all detached.

    X_{l−1}: [P, fan_in_l]; D_l = ∂f̃/∂a_l: [P, h_l], D_{L+1} = ones [P, 1]."""
    with torch.enable_grad():
        x = x.requires_grad_(True)  # keeps the graph alive even if the weights are frozen
        f, inputs, preacts = model.layers(x)
        signals = list(torch.autograd.grad(f.sum(), preacts)) if preacts else []
    signals.append(torch.ones_like(f).unsqueeze(-1))
    return [X.detach() for X in inputs], signals


def _gram_rows(
    model: FullyConnected, inputs: list[Tensor], signals: list[Tensor], rows: slice, out: Tensor
) -> None:
    """Writes rows `rows` of Θ = Σ_l (X_{l−1}X_{l−1}ᵀ/fan_in_l + c_b²[bias_l]) ⊙ D_l D_lᵀ
    into `out` [rows, P]; temporaries: two more [rows, P] matrices."""
    n_biased = len(model.biases) if model.biases is not None else 0
    for l, (X, D, fan_in) in enumerate(zip(inputs, signals, model.fan_ins)):
        term = torch.mm(X[rows], X.T, out=out if l == 0 else None).div_(fan_in)
        if l < n_biased:
            term.add_(model.bias_scale**2)
        term.mul_(torch.mm(D[rows], D.T))
        if l > 0:
            out.add_(term)


def ntk_gram_jacobian(model: nn.Module, x: Tensor) -> Tensor:
    """Θ [P, P] = Σ_params J_p J_pᵀ with J_p = ∂f̃(x_μ)/∂p [P, |p|] from torch.func.

    Works for any module mapping [P, d] → [P]; materialises the P×N Jacobian: the test
    reference."""
    x = _as_model_input(model, x)
    jacobian = _jacobian_rows(model, x)  # [P, N]
    return jacobian @ jacobian.T


def ntk_gram_blocked(model: nn.Module, x: Tensor, block_points: int | None = None) -> Tensor:
    """Θ [P, P] of any module f̃: [P, d] → [P] (the CNN's path), from Jacobians of
    ``block_points`` points at a time: Θ[a, b] = J_a J_bᵀ for blocks a ≤ b, so at most two
    [B, N] Jacobian blocks exist at once, never the P×N one.

    Memory: 2·B·N·itemsize plus torch.func's per-point activations; B defaults to
    2^24 / N (two blocks ≤ 256 MiB in float64), and when B ≥ P it is the one-block
    Jacobian path. Time: ≈ P²/(2B) per-point gradients for P > B (P of them for P ≤ B)."""
    x = _as_model_input(model, x)
    n_points, n_params = x.shape[0], sum(p.numel() for p in model.parameters())
    rows = block_points or max(1, _BLOCK_ELEMENTS // max(1, n_params))
    starts = list(range(0, n_points, rows))
    theta = torch.empty(n_points, n_points, dtype=x.dtype, device=x.device)
    for i, a in enumerate(starts):
        block_a = slice(a, min(a + rows, n_points))
        jacobian_a = _jacobian_rows(model, x[block_a])  # [B, N]
        for b in starts[i:]:
            block_b = slice(b, min(b + rows, n_points))
            jacobian_b = jacobian_a if b == a else _jacobian_rows(model, x[block_b])
            block = jacobian_a @ jacobian_b.T  # [B_a, B_b]
            theta[block_a, block_b] = block
            theta[block_b, block_a] = block.T
    return theta


def _jacobian_rows(model: nn.Module, x: Tensor) -> Tensor:
    """J [B, N]: row μ = ∇_θ f̃(x_μ), parameters flattened in `model.parameters()` order."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f_single(p: dict[str, Tensor], xi: Tensor) -> Tensor:  # xi [d] → scalar
        return functional_call(model, (p, buffers), (xi.unsqueeze(0),)).squeeze(0)

    jacobians = vmap(jacrev(f_single), in_dims=(None, 0))(params, x)  # name → [B, *shape]
    return torch.cat([J.reshape(x.shape[0], -1) for J in jacobians.values()], dim=1)


def ntk_change(theta_0: Tensor, theta_t: Tensor) -> float:
    """‖Θ_t − Θ₀‖_F / ‖Θ₀‖_F (the lazy/feature crossover is where it is 1)."""
    return float(torch.linalg.norm(theta_t - theta_0) / torch.linalg.norm(theta_0))
