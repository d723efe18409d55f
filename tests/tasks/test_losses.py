"""Losses on margins, N_Δ, and the α-trick objective against direct autograd."""

from __future__ import annotations

import math

import pytest
import torch

from tasks.losses import (
    AlphaObjective,
    hinge,
    logistic,
    loss_derivative,
    loss_function,
    quadratic_hinge,
    soft_hinge,
    unsatisfied_margins,
)
from tasks.specs import LOSSES, LossSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


Z = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], dtype=torch.float64)


def test_loss_values_at_hand_computed_points():
    assert hinge(Z).tolist() == [2.0, 1.0, 0.5, 0.0, 0.0]
    assert quadratic_hinge(Z).tolist() == [2.0, 0.5, 0.125, 0.0, 0.0]
    expected_soft = [math.log1p(math.exp(20 * (1 - z))) / 20 for z in Z.tolist()]
    torch.testing.assert_close(
        soft_hinge(Z, 20.0), torch.tensor(expected_soft, dtype=torch.float64), rtol=1e-15, atol=0
    )
    assert soft_hinge(Z, 20.0)[3].item() == pytest.approx(math.log(2) / 20, rel=1e-15)
    expected_logistic = [math.log1p(math.exp(-z)) for z in Z.tolist()]
    torch.testing.assert_close(
        logistic(Z), torch.tensor(expected_logistic, dtype=torch.float64), rtol=1e-15, atol=0
    )
    assert logistic(Z)[1].item() == pytest.approx(math.log(2), rel=1e-15)


def test_losses_are_finite_far_from_the_margin():
    far = torch.tensor([-1e3, 1e3], dtype=torch.float64)
    assert soft_hinge(far, 20.0).tolist() == pytest.approx([1001.0, 0.0], abs=1e-12)
    assert logistic(far).tolist() == pytest.approx([1000.0, 0.0], abs=1e-12)


@pytest.mark.parametrize("kind", LOSSES)
def test_loss_derivative_matches_autograd(kind):
    spec = LossSpec(kind=kind, beta=7.0)
    z = torch.tensor([-2.0, -0.3, 0.4, 0.9, 1.2, 3.0], dtype=torch.float64)  # no point on the kink
    autograd = torch.func.vmap(torch.func.grad(lambda m: loss_function(spec)(m)))(z)
    torch.testing.assert_close(loss_derivative(spec)(z), autograd, rtol=1e-14, atol=1e-15)


def test_derivatives_at_hand_computed_points():
    z = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    assert loss_derivative(LossSpec("hinge"))(z).tolist() == [-1.0, 0.0, 0.0]
    assert loss_derivative(LossSpec("quadhinge"))(z).tolist() == [-1.0, 0.0, 0.0]
    assert loss_derivative(LossSpec("softhinge", 20.0))(z)[1].item() == -0.5
    assert loss_derivative(LossSpec("logistic"))(z)[0].item() == -0.5


def test_soft_hinge_tends_to_hinge_as_beta_grows():
    z = torch.linspace(-3, 3, 601, dtype=torch.float64)
    gaps = [(soft_hinge(z, b) - hinge(z)).abs().max().item() for b in (1.0, 10.0, 100.0, 1e4)]
    assert all(a > b for a, b in zip(gaps, gaps[1:]))
    for beta, gap in zip((1.0, 10.0, 100.0, 1e4), gaps):
        assert gap <= math.log(2) / beta * (1 + 1e-12)  # the gap is largest at z = 1


def test_unsatisfied_margins_counts_points_with_positive_delta():
    margins = torch.tensor([0.5, 1.0, 1.5, -2.0, 0.999999, float("nan")], dtype=torch.float64)
    assert unsatisfied_margins(margins) == 4  # 0.5, -2, 0.999999 and the NaN
    assert unsatisfied_margins(torch.full((7,), 1.0)) == 0


def test_unknown_loss_kind_lists_valid_kinds():
    with pytest.raises(ValueError, match="hinge, quadhinge, softhinge, logistic"):
        loss_function(LossSpec(kind="squared"))
    with pytest.raises(ValueError, match="beta"):
        loss_function(LossSpec(kind="softhinge", beta=0.0))


class TinyNet(torch.nn.Module):
    """f̃(x) = w₂·tanh(W₁x/√d)/√h, hand-written (independent of tasks.models)."""

    def __init__(self, d: int, h: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = torch.nn.Parameter(torch.randn(h, d, generator=g, dtype=torch.float64))
        self.w2 = torch.nn.Parameter(torch.randn(h, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(x @ self.w1.T / math.sqrt(x.shape[1]))
        return hidden @ self.w2 / math.sqrt(self.w2.shape[0])


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("alpha", [1e-3, 1.0, 1e3])
def test_alpha_objective_gradient_is_that_of_L_over_alpha_squared(kind, alpha):
    g = torch.Generator().manual_seed(3)
    net = TinyNet(4, 6, seed=1)
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = torch.sign(torch.randn(20, generator=g, dtype=torch.float64))
    theta0 = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    with torch.no_grad():
        initial = net(x)
    spec = LossSpec(kind=kind, beta=5.0)
    objective = AlphaObjective(net, alpha, loss_derivative(spec), x, y, initial)
    theta = theta0 + 0.3 * torch.randn(theta0.shape, generator=g, dtype=torch.float64) / alpha

    def scaled_loss(t: torch.Tensor) -> torch.Tensor:  # L/α², straight from the formula
        w1, w2 = t[:24].view(6, 4), t[24:]
        raw = torch.tanh(x @ w1.T / 2.0) @ w2 / math.sqrt(6)
        return loss_function(spec)(y * alpha * (raw - initial)).mean() / alpha**2

    gradient, outputs = objective(theta)
    torch.testing.assert_close(gradient, torch.func.grad(scaled_loss)(theta), rtol=1e-12, atol=0)
    w1, w2 = theta[:24].view(6, 4), theta[24:]
    direct = alpha * (torch.tanh(x @ w1.T / 2.0) @ w2 / math.sqrt(6) - initial)
    torch.testing.assert_close(outputs, direct, rtol=1e-12, atol=1e-14)
    assert objective(theta0)[1].abs().max().item() == 0.0  # f = 0 at θ₀
    batch = torch.tensor([3, 7, 11])
    _, o_batch = objective(theta, batch)
    torch.testing.assert_close(o_batch, direct[batch])
