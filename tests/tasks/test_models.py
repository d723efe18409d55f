"""Models in the NTK parametrisation and the normalised activations (paper Eq. 1–3)."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from tasks.activations import ACTIVATIONS, activation
from tasks.models import ConvNet, FullyConnected, build_from_spec, build_model, count_parameters
from tasks.specs import ModelSpec

F64 = torch.float64


def _gaussian_mean_of_square(fn) -> float:
    """E_{z~N(0,1)}[fn(z)²] by QUADPACK, split at 0 where the sharp activations bend."""

    def integrand(z: float) -> float:
        value = float(fn(torch.tensor([z], dtype=F64))[0])
        return value * value * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    return sum(
        quad(integrand, a, b, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
        for a, b in [(-np.inf, -0.1), (-0.1, 0.0), (0.0, 0.1), (0.1, np.inf)]
    )


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("beta", [0.5, 1.0, 10.0, 100.0])
def test_activation_has_unit_second_moment_under_a_standard_gaussian(
    name: str, beta: float
) -> None:
    assert _gaussian_mean_of_square(activation(name, beta)) == pytest.approx(1.0, rel=1e-8)


def test_activation_unit_second_moment_by_monte_carlo() -> None:
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=F64)
    for name in ACTIVATIONS:
        second_moment = activation(name, 10.0)(z).square()
        standard_error = float(second_moment.std()) / math.sqrt(z.numel())
        assert abs(float(second_moment.mean()) - 1.0) < 5 * standard_error


def test_sharp_activations_follow_their_definition() -> None:
    x = torch.linspace(-3, 3, 13, dtype=F64)
    sigmoid = torch.sigmoid
    for name, raw in [
        ("relu", torch.relu(x)),
        ("swish", x * sigmoid(10 * x)),
        ("tanh", torch.tanh(10 * x) / 10),
        ("softplus", torch.log1p(torch.exp(10 * x)) / 10),
    ]:
        sigma = activation(name, 10.0)
        assert torch.allclose(sigma(x) / sigma.scale, raw, rtol=1e-12, atol=1e-15)
    assert activation("relu", 7.0).scale == math.sqrt(2.0)


def test_unknown_activation_error_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="relu, softplus, tanh, swish"):
        activation("gelu", 1.0)
    with pytest.raises(ValueError, match="beta"):
        activation("swish", 0.0)


def test_fc_output_is_one_number_per_point_in_float64() -> None:
    model = build_model(5, 16, 2, generator=torch.Generator().manual_seed(0))
    out = model(torch.randn(7, 5, dtype=F64))
    assert out.shape == (7,) and out.dtype == F64
    assert all(p.dtype == F64 for p in model.parameters())


def test_same_generator_seed_gives_the_same_net_and_another_seed_does_not() -> None:
    x = torch.randn(4, 3, dtype=F64)
    nets = [
        build_model(3, 8, 3, "swish", 10.0, True, torch.Generator().manual_seed(s))
        for s in (1, 1, 2)
    ]
    assert torch.equal(nets[0](x), nets[1](x))
    assert not torch.allclose(nets[0](x), nets[2](x))


def test_bias_and_no_bias_nets_from_one_seed_share_their_weights() -> None:
    with_bias, without = (
        build_model(3, 8, 2, bias=b, generator=torch.Generator().manual_seed(5))
        for b in (True, False)
    )
    assert all(torch.equal(a, b) for a, b in zip(with_bias.weights, without.weights))


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("bias", [False, True])
def test_parameter_count_formula(depth: int, bias: bool) -> None:
    d, h = 10, 12
    model = build_model(d, h, depth, bias=bias)
    assert count_parameters(model) == d * h + (depth - 1) * h * h + h + bias * depth * h


def test_forward_is_eq_1_to_3_written_out() -> None:
    d, h = 3, 5
    model = build_model(d, h, 2, "relu", bias=True, generator=torch.Generator().manual_seed(6))
    (w1, w2, w3), (b1, b2) = model.weights, model.biases
    x = torch.randn(4, d, dtype=F64)
    sigma = lambda a: math.sqrt(2) * torch.relu(a)
    a1 = x @ w1.T / math.sqrt(d) + b1
    a2 = sigma(a1) @ w2.T / math.sqrt(h) + b2
    expected = (sigma(a2) @ w3.T / math.sqrt(h)).squeeze(-1)
    assert torch.allclose(model(x), expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_preactivations_keep_unit_variance_through_depth_at_init(name: str) -> None:
    # |x|² = d and E[σ(z)²] = 1 make every pre-activation ~N(0, 1) at large width.
    d, h = 6, 2048
    model = build_model(d, h, 3, name, 10.0, generator=torch.Generator().manual_seed(7))
    x = torch.randn(8, d, generator=torch.Generator().manual_seed(8), dtype=F64)
    x = x * math.sqrt(d) / x.norm(dim=1, keepdim=True)
    with torch.no_grad():
        _, _, preacts = model.layers(x)
    for layer, a in enumerate(preacts, start=1):
        # finite width: each layer's mean square fluctuates by ~√(2/h), compounding with depth
        assert float(a.square().mean()) == pytest.approx(1.0, abs=4 * math.sqrt(2 * layer / h))


def test_convnet_reads_pca_features_as_1d_and_pixels_as_images() -> None:
    assert ConvNet(10, 4, 2).input_shape == (1, 10)
    assert ConvNet(784, 4, 1).input_shape == (1, 28, 28)
    assert ConvNet(3072, 4, 1).input_shape == (3, 32, 32)
    with pytest.raises(ValueError, match="input_shape"):
        ConvNet(10, 4, 1, input_shape=(2, 3))


@pytest.mark.parametrize("d, shape", [(10, (1, 10)), (784, (1, 28, 28))])
def test_convnet_output_shape_and_parameter_count(d: int, shape: tuple[int, ...]) -> None:
    h, depth, taps = 6, 3, 3 ** (len(shape) - 1)
    model = ConvNet(
        d, h, depth, "swish", 10.0, bias=True, generator=torch.Generator().manual_seed(0)
    )
    assert model(torch.randn(5, d, dtype=F64)).shape == (5,)
    expected = shape[0] * taps * h + (depth - 1) * h * h * taps + h + depth * h
    assert count_parameters(model) == expected


def test_build_from_spec_dispatches_on_architecture() -> None:
    fc = build_from_spec(ModelSpec(arch="fc", depth=3, width=7), d=4)
    one = build_from_spec(ModelSpec(arch="one-hidden", depth=3, width=7, bias=True), d=4)
    cnn = build_from_spec(ModelSpec(arch="cnn", depth=2, width=7), d=4)
    assert isinstance(fc, FullyConnected) and len(fc.weights) == 4
    assert isinstance(one, FullyConnected) and len(one.weights) == 2 and len(one.biases) == 1
    assert isinstance(cnn, ConvNet)
    with pytest.raises(ValueError, match="fc, cnn, one-hidden"):
        build_from_spec(ModelSpec(arch="resnet"), d=4)


def test_models_survive_pickling() -> None:
    for model in (build_model(3, 4, 2, "swish", 10.0), ConvNet(10, 3, 1, "tanh")):
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        copy = torch.load(buffer, weights_only=False)
        x = torch.randn(2, 3 if isinstance(model, FullyConnected) else 10, dtype=F64)
        assert torch.equal(copy(x), model(x))


def test_invalid_sizes_are_rejected_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="width must be a positive integer, got -3"):
        build_model(3, -3, 2)


def test_importing_models_and_ntk_does_no_numerical_work() -> None:
    code = (
        "import tasks.models, tasks.ntk, tasks.activations as a; "
        "assert a.normalisation.cache_info().currsize == 0"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
