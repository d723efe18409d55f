"""Hand-written forward and backward of M `FullyConnected` nets of one architecture at once.

Member i's parameters are the row θ[i] of θ [M, N], laid out as
``parameters_to_vector(FullyConnected(...).parameters())``: W_1 … W_{L+1} (each
[fan_out, fan_in], row-major), then B_1 … B_L when the net has biases. M = 1 is a
single net; the same code serves both.

With the activation written σ(a) = (c/β)·σ₀(βa) (tasks/activations.py) the pass works
on u_l = β·a_l and s_l = σ₀(u_l), so every scale folds into one matmul coefficient k_l:

    u_1 = (β/√d)·x W_1ᵀ + β c_b B_1,    u_l = (c/√h)·s_{l−1} W_lᵀ + β c_b B_l  (l = 2..L),
    f̃  = (c/(β√h))·s_L W_{L+1}ᵀ,        s_0 = x.

Backward of a cotangent v = ∂L/∂f̃ [M, P], with δ_{L+1} = v:

    ∂L/∂W_l = k_l δ_lᵀ s_{l−1},   ∂L/∂B_l = β c_b Σ_μ δ_l[μ],
    δ_{l−1} = σ₀'(u_{l−1}) ⊙ (k_l δ_l W_l).

Per layer that is one batched matmul forward and two backward (torch.baddbmm, the
coefficient passed as ``alpha``), plus one fused activation kernel each way — the same
products autograd forms for `FullyConnected.forward` (agreement ~1e-15 relative, tested),
with a fraction of its Python and allocation overhead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from tasks.activations import unit_backward, unit_forward
from tasks.models import FullyConnected


@dataclass(frozen=True)
class Forward:
    """What the backward needs: weight views [M, out, in], inputs s_0 … s_L, u_1 … u_L."""

    weights: list[Tensor]
    inputs: list[Tensor]        # s_0 = x expanded to [M, P, d], s_l [M, P, h]
    preacts: list[Tensor]       # u_l [M, P, h]


@dataclass(frozen=True)
class BatchedFC:
    """The layout and coefficients of one FullyConnected architecture (module docstring)."""

    sizes: tuple[int, ...]              # (d, h, …, h, 1)
    coefficients: tuple[float, ...]     # k_1 … k_{L+1}
    bias_coefficient: float | None      # β·c_b, or None for a net without biases
    activation: str

    @classmethod
    def of(cls, model: FullyConnected) -> "BatchedFC":
        """The batched form of ``model``'s architecture (its parameter values are not read)."""
        act = model.act
        sizes = tuple(model.fan_ins) + (1,)
        k = [act.beta / math.sqrt(sizes[0])]
        k += [act.scale / math.sqrt(n) for n in sizes[1:-2]]
        k += [act.scale / (act.beta * math.sqrt(sizes[-2]))]
        bias = act.beta * model.bias_scale if model.biases is not None else None
        return cls(sizes, tuple(k), bias, act.name)

    @property
    def depth(self) -> int:
        return len(self.sizes) - 2

    @property
    def n_params(self) -> int:
        weights = sum(a * b for a, b in zip(self.sizes, self.sizes[1:]))
        return weights + (self.depth * self.sizes[1] if self.bias_coefficient is not None else 0)

    def _split(self, theta: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Views of θ [M, N]: weights [M, out, in] and biases [M, 1, h]."""
        m, start, weights, biases = theta.shape[0], 0, [], []
        for n_in, n_out in zip(self.sizes, self.sizes[1:]):
            weights.append(theta[:, start:start + n_in * n_out].view(m, n_out, n_in))
            start += n_in * n_out
        if self.bias_coefficient is not None:
            for n_out in self.sizes[1:-1]:
                biases.append(theta[:, start:start + n_out].view(m, 1, n_out))
                start += n_out
        return weights, biases

    def forward(self, theta: Tensor, x: Tensor) -> tuple[Tensor, Forward]:
        """f̃ of every member on the shared points x [P, d]: ([M, P], what `backward` needs)."""
        weights, biases = self._split(theta)
        zero = x.new_zeros(())
        s = x.expand(theta.shape[0], *x.shape)                        # [M, P, d], no copy
        inputs, preacts = [s], []
        for l, (w, k) in enumerate(zip(weights, self.coefficients)):
            if l == self.depth:
                out = torch.baddbmm(zero, s, w.mT, beta=0.0, alpha=k)  # [M, P, 1]
                return out.squeeze(-1), Forward(weights, inputs, preacts)
            if biases:
                u = torch.baddbmm(biases[l], s, w.mT, beta=self.bias_coefficient, alpha=k)
            else:
                u = torch.baddbmm(zero, s, w.mT, beta=0.0, alpha=k)   # [M, P, h]
            s = unit_forward(self.activation, u)
            preacts.append(u)
            inputs.append(s)
        raise AssertionError("unreachable: the net has an output layer")

    def backward(self, saved: Forward, cotangent: Tensor) -> Tensor:
        """∇_θ Σ_μ v_μ f̃(x_μ) for each member: cotangent v [M, P] → gradient [M, N]."""
        zero = cotangent.new_zeros(())
        delta = cotangent.unsqueeze(-1)                               # δ_{L+1} [M, P, 1]
        weight_grads, bias_grads = [], []
        for l in range(self.depth, -1, -1):
            k, w = self.coefficients[l], saved.weights[l]
            weight_grads.append(torch.baddbmm(zero, delta.mT, saved.inputs[l], beta=0.0,
                                              alpha=k))               # [M, out, in]
            if self.bias_coefficient is not None and l < self.depth:
                bias_grads.append(delta.sum(1) * self.bias_coefficient)   # [M, h]
            if l > 0:
                upstream = torch.baddbmm(zero, delta, w, beta=0.0, alpha=k)   # [M, P, in]
                delta = unit_backward(self.activation, upstream, saved.preacts[l - 1],
                                      saved.inputs[l])
        m = cotangent.shape[0]
        parts = weight_grads[::-1] + bias_grads[::-1]
        return torch.cat([g.reshape(m, -1) for g in parts], dim=1)


def stack_parameters(models: list[FullyConnected]) -> Tensor:
    """θ [M, N]: each model's parameters as one row, in `BatchedFC`'s layout."""
    return torch.stack([torch.nn.utils.parameters_to_vector(m.parameters()).detach()
                        for m in models])
