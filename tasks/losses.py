"""Hinge-type losses on margins and the α-trick objective (design.md §2, Eq. 8).

Margins: ``z_μ = y_μ f(x_μ)``; ``Δ_μ = 1 − z_μ``; ``N_Δ = #{μ : Δ_μ > 0}``.

α-trick: the trained function is ``f(x) = α (f̃_θ(x) − f̃_θ₀(x))`` with ``α = α̃/√h`` and
the minimised loss is ``L̃ = L/α²``, ``L = (1/P) Σ_μ ℓ(y_μ f(x_μ))``. ``f̃_θ₀`` is kept as
precomputed outputs (``AlphaObjective.initial_outputs``), never as a second copy of the net.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import functional_call

from tasks.specs import LOSSES, LossSpec

LossFn = Callable[[Tensor], Tensor]


def hinge(margins: Tensor) -> Tensor:
    """ℓ(z) = max(0, 1 − z), per sample: [P] → [P]."""
    return torch.relu(1.0 - margins)


def quadratic_hinge(margins: Tensor) -> Tensor:
    """ℓ(z) = ½ max(0, 1 − z)², per sample (the jamming analysis, Eq. 10)."""
    return 0.5 * torch.relu(1.0 - margins) ** 2


def soft_hinge(margins: Tensor, beta: float = 20.0) -> Tensor:
    """ℓ(z) = softplus_β(1 − z) = log(1 + e^{β(1−z)})/β, per sample.

    Written as ``max(u, 0) + log1p(e^{−|u|})`` with ``u = β(1−z)``: exact and finite for
    any |u| (no threshold switch, unlike ``F.softplus``). Tends to the hinge as β → ∞."""
    u = beta * (1.0 - margins)
    return (torch.relu(u) + torch.log1p(torch.exp(-u.abs()))) / beta


def logistic(margins: Tensor) -> Tensor:
    """ℓ(z) = log(1 + e^{−z}), per sample, computed stably for any z."""
    u = -margins
    return torch.relu(u) + torch.log1p(torch.exp(-u.abs()))


def hinge_derivative(margins: Tensor) -> Tensor:
    """ℓ'(z) = −1[z < 1] for the hinge (the subgradient 0 is taken at z = 1)."""
    return -(margins < 1.0).to(margins.dtype)


def quadratic_hinge_derivative(margins: Tensor) -> Tensor:
    """ℓ'(z) = −max(0, 1 − z)."""
    return -torch.relu(1.0 - margins)


def soft_hinge_derivative(margins: Tensor, beta: float = 20.0) -> Tensor:
    """ℓ'(z) = −sigmoid(β(1 − z))."""
    return -torch.sigmoid(beta * (1.0 - margins))


def logistic_derivative(margins: Tensor) -> Tensor:
    """ℓ'(z) = −sigmoid(−z)."""
    return -torch.sigmoid(-margins)


def loss_function(spec: LossSpec) -> LossFn:
    """The per-sample loss ℓ named by ``spec.kind`` (one of tasks.specs.LOSSES)."""
    if spec.kind == "hinge":
        return hinge
    if spec.kind == "quadhinge":
        return quadratic_hinge
    if spec.kind == "softhinge":
        beta = float(spec.beta)
        if not beta > 0:
            raise ValueError(f"loss.beta must be positive for the soft hinge, got {spec.beta}")
        return lambda margins: soft_hinge(margins, beta)
    if spec.kind == "logistic":
        return logistic
    raise ValueError(f"unknown loss kind {spec.kind!r}; valid kinds: {', '.join(LOSSES)}")


def loss_derivative(spec: LossSpec) -> LossFn:
    """dℓ/dz of ``loss_function(spec)``, per sample: [P] → [P] (used by the flow's
    gradient so that autograd only runs through the net)."""
    loss_function(spec)  # validates kind and beta
    if spec.kind == "softhinge":
        beta = float(spec.beta)
        return lambda margins: soft_hinge_derivative(margins, beta)
    return {
        "hinge": hinge_derivative,
        "quadhinge": quadratic_hinge_derivative,
        "logistic": logistic_derivative,
    }[spec.kind]


def has_kink(spec: LossSpec) -> bool:
    """Whether ℓ' jumps (the hinge, at z = 1): the flow then needs `AlphaObjective.across_kink`."""
    return spec.kind == "hinge"


def unsatisfied_margins(margins: Tensor) -> int:
    """N_Δ = #{μ : 1 − z_μ > 0} for margins z of shape [P] (a NaN margin counts as
    unsatisfied, so a diverged net is never reported as fitted)."""
    return int((~(margins >= 1.0)).sum())


class AlphaObjective:
    """θ ↦ (∇_θ L̃, f(x_train)) for a model whose parameters are one flat vector θ [N].

    ``f = α (f̃_θ − f̃_θ₀)`` on the train points and ``L̃ = (1/(P α²)) Σ_μ ℓ(y_μ f_μ)``, so
    ``∂L̃/∂f̃_μ = ℓ'(z_μ) y_μ / (P α)``: that vector is back-propagated through the net
    alone (autograd never sees the loss). The module runs under
    ``torch.func.functional_call`` on views of θ: its own parameters are never touched,
    and the map is pure in θ. ``kinked``: ℓ' jumps at z = 1 (see `across_kink`)."""

    def __init__(
        self,
        model: torch.nn.Module,
        alpha: float,
        loss_derivative: LossFn,
        x: Tensor,
        y: Tensor,
        initial_outputs: Tensor,
        kinked: bool = False,
    ) -> None:
        self.model, self.alpha, self.loss_derivative = model, float(alpha), loss_derivative
        self.kinked = kinked
        self.x, self.y, self.initial_outputs = x, y, initial_outputs  # [P, d], [P], [P]
        named = list(model.named_parameters())
        self._names = [n for n, _ in named]
        self._shapes = [p.shape for _, p in named]
        self._sizes = [p.numel() for _, p in named]

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Views of θ [N] shaped like the module's parameters, by name."""
        chunks = torch.split(theta, self._sizes)
        return {n: c.view(s) for n, c, s in zip(self._names, chunks, self._shapes)}

    def raw_outputs(self, theta: Tensor, x: Tensor) -> Tensor:
        """f̃_θ(x): [B, d] → [B] (the un-scaled net)."""
        return functional_call(self.model, self.unflatten(theta), (x,))

    def outputs(self, theta: Tensor, x: Tensor, initial: Tensor) -> Tensor:
        """f(x) = α (f̃_θ(x) − f̃_θ₀(x)) with f̃_θ₀(x) given as ``initial`` [B]."""
        return self.alpha * (self.raw_outputs(theta, x) - initial)

    def __call__(
        self, theta: Tensor, batch: Tensor | None = None, frozen_outputs: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(∇_θ L̃ [N], f(x) [B]) at θ on the train points (or the index ``batch`` [B]):
        one forward and one backward pass. With ``frozen_outputs`` f_ref [B], ℓ' is taken
        at the margins y·f_ref instead of at θ's own (the gradient continued across a kink)."""
        x, y, initial = self.x, self.y, self.initial_outputs
        if batch is not None:
            x, y, initial = x[batch], y[batch], initial[batch]
        with torch.enable_grad():
            leaf = theta.detach().requires_grad_(True)
            raw = self.raw_outputs(leaf, x)  # f̃_θ(x) [B]
            f = self.alpha * (raw.detach() - initial)  # f(x) [B]
            reference = f if frozen_outputs is None else frozen_outputs
            weights = self.loss_derivative(y * reference) * y / (len(y) * self.alpha)
            (gradient,) = torch.autograd.grad(raw, leaf, weights)
        return gradient, f

    def across_kink(
        self, theta: Tensor, outputs: Tensor, new_outputs: Tensor, batch: Tensor | None = None
    ) -> Tensor | None:
        """For a kinked ℓ, if a margin crossed 1 between outputs f [B] and f' [B] (at θ'):
        the gradient at θ' with ℓ' frozen at the old margins, J(θ')ᵀ ℓ'(y f) y/(Pα) [N]
        — the field the flow followed up to the crossing. None otherwise."""
        if not self.kinked:
            return None
        y = self.y if batch is None else self.y[batch]
        if not bool(((y * outputs < 1.0) != (y * new_outputs < 1.0)).any()):
            return None
        return self(theta, batch, frozen_outputs=outputs)[0]
