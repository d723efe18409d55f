"""Observables of a training cell (design.md §2 "Observables").

Per checkpoint (log-spaced in steps): a `Measurement` built from the accepted step's own
train outputs and gradient (never recomputed) plus the test outputs, evaluated in
chunks. At start and end: the NTK Θ of the un-scaled net f̃ on the kernel set
(``ntk_change = ‖Θ_t − Θ₀‖_F/‖Θ₀‖_F``, where α² cancels). At the end: the non-zero
spectrum of ``H₀ = Σ_{μ: Δ_μ>0} ∇Δ_μ ⊗ ∇Δ_μ``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

from tasks.flow import FlowState
from tasks.losses import AlphaObjective, LossFn
from tasks.ntk import ntk_gram
from tasks.records import Measurement


def next_checkpoint(step: int, per_decade: int) -> int:
    """The smallest checkpoint after ``step``: checkpoints are 0 and the distinct values
    of round(10^(k/per_decade)), k = 0, 1, … (1, 2, 3, 4, 5, 6, 8, 10, 13, … for 10)."""
    if per_decade < 1:
        raise ValueError(f"flow.checkpoints_per_decade must be ≥ 1, got {per_decade}")
    k = max(0, math.floor(per_decade * math.log10(step + 1)) - 1)
    while round(10 ** (k / per_decade)) <= step:
        k += 1
    return round(10 ** (k / per_decade))


def chunked_outputs(
    objective: AlphaObjective, theta: Tensor, x: Tensor, initial: Tensor, chunk: int = 4096
) -> Tensor:
    """f(x) = α(f̃_θ(x) − f̃_θ₀(x)) for x [n, d] with f̃_θ₀(x) = ``initial`` [n], ``chunk``
    rows at a time, without autograd: [n]."""
    with torch.no_grad():
        parts = [
            objective.outputs(theta, x[i : i + chunk], initial[i : i + chunk])
            for i in range(0, x.shape[0], chunk)
        ]
    return torch.cat(parts) if parts else initial.new_zeros(0)


def margin_statistics(outputs: Tensor, labels: Tensor, loss: LossFn) -> Tensor:
    """[loss L, error, N_Δ, min margin, median margin, rms f] of outputs f [n], labels y [n].

    L = mean ℓ(y f) (not divided by α²); error = fraction with y f ≤ 0;
    N_Δ = #{y f < 1} (NaN counts); rms f = √mean f². One tensor, so one host sync."""
    margins = labels * outputs
    return torch.stack(
        [
            loss(margins).mean(),
            (margins <= 0).to(outputs.dtype).mean(),
            (~(margins >= 1.0)).to(outputs.dtype).sum(),
            margins.min(),
            margins.quantile(0.5),
            outputs.square().mean().sqrt(),
        ]
    )


def measurement(
    state: FlowState,
    train: Tensor,
    test: Tensor,
    theta0: Tensor,
    n_params: int,
    wall_seconds: float,
    ntk_change: float = math.nan,
) -> Measurement:
    """The `Measurement` at ``state``. ``train``/``test`` are `margin_statistics` rows."""
    loss, error, n_unsat, min_margin, median_margin, rms = train.tolist()
    test_loss, test_error = test[:2].tolist()
    return Measurement(
        step=state.step,
        flow_time=state.flow_time,
        dt=state.dt,
        wall_seconds=wall_seconds,
        gradient_evaluations=state.evaluations,
        train_loss=loss,
        train_error=error,
        n_unsatisfied=int(n_unsat),
        unsatisfied_per_param=n_unsat / n_params,
        min_margin=min_margin,
        median_margin=median_margin,
        test_loss=test_loss,
        test_error=test_error,
        output_rms=rms,
        weight_change=float(torch.linalg.vector_norm(state.theta - theta0)),
        gradient_norm=state.gradient_norm,
        ntk_change=ntk_change,
        forward_evaluations=state.forward_evaluations,
    )


@contextmanager
def parameters_set_to(model: nn.Module, theta: Tensor) -> Iterator[nn.Module]:
    """The module with its parameters set (in place) to the flat θ [N], restored on exit."""
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, chunk in zip(params, torch.split(theta, [p.numel() for p in params])):
            p.copy_(chunk.view_as(p))
    try:
        yield model
    finally:
        with torch.no_grad():
            for p, old in zip(params, saved):
                p.copy_(old)


def ntk_at(model: nn.Module, theta: Tensor, x: Tensor) -> Tensor:
    """Θ(x, x') = ∇_θ f̃(x)·∇_θ f̃(x') at θ [N] on x [n, d]: [n, n] (tasks.ntk.ntk_gram)."""
    with parameters_set_to(model, theta):
        return ntk_gram(model, x)


def h0_eigenvalues(
    model: nn.Module, theta: Tensor, x_unsatisfied: Tensor, alpha: float
) -> np.ndarray:
    """Non-zero eigenvalues (ascending) of H₀ = Σ_{μ: Δ_μ>0} ∇Δ_μ ⊗ ∇Δ_μ at θ.

    ∇Δ_μ = −y_μ α ∇f̃(x_μ), so the Gram ∇Δ_μ·∇Δ_ν = α² y_μ y_ν Θ_μν; y_μ = ±1 is a
    similarity, so its spectrum is that of α² Θ on the unsatisfied points — the same
    non-zero eigenvalues as the N×N matrix H₀. "Non-zero": above N_Δ·ε·λ_max.
    Empty if no point is unsatisfied, θ is not finite (a diverged flow) or α² overflows
    the float range (e.g. α̃ = 1e200): the eigenvalues of Θ are computed first, then scaled."""
    n = x_unsatisfied.shape[0]
    if n == 0 or not bool(torch.isfinite(theta).all()) or not math.isfinite(alpha * alpha):
        return np.zeros(0)
    gram = ntk_at(model, theta, x_unsatisfied)
    eigenvalues = (alpha * alpha) * torch.linalg.eigvalsh(gram).cpu().numpy()
    cutoff = n * np.finfo(eigenvalues.dtype).eps * max(eigenvalues.max(), 0.0)
    return eigenvalues[eigenvalues > cutoff].astype(np.float64)
