"""Networks in the NTK parametrisation (paper Eq. 1–3), mapping inputs [P, d] → outputs [P].

Fully-connected net with L hidden layers of width h (`FullyConnected`):

    a_1 = W_1 x / √d + c_b B_1,      x_l = σ(a_l),
    a_l = W_l x_{l−1} / √h + c_b B_l    (l = 2..L),
    f̃(x) = W_{L+1} x_L / √h          (no output bias),

every entry of every W_l, B_l drawn i.i.d. N(0,1). Bias convention: the paper's Eq. 2–3,
biases used as drawn, c_b = `BIAS_SCALE` = 1; the fast NTK (tasks/ntk.py) reads c_b from
the model. All weights are drawn before any bias, so a net with and without biases built
from the same generator share their weights.

The one-hidden-layer net of the stripe model (paper Eq. 6, whose 1/h readout is our
1/√h readout times the α = α̃/√h of the α-trick) is `FullyConnected` with depth 1.

`ConvNet` is the small CNN for Fig. 8; see its docstring for how [P, d] is read.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from tasks.activations import activation as make_activation
from tasks.specs import ARCHITECTURES, ModelSpec

BIAS_SCALE = 1.0  # c_b: biases enter as c_b·B with B ~ N(0,1) (paper Eq. 2–3: c_b = 1)

__all__ = [
    "BIAS_SCALE",
    "ConvNet",
    "FullyConnected",
    "build_from_spec",
    "build_model",
    "count_parameters",
]


def _normal(
    shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype
) -> nn.Parameter:
    """A parameter with i.i.d. N(0,1) entries drawn from `generator` (CPU)."""
    return nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype))


class FullyConnected(nn.Module):
    """f̃: [P, d] → [P], `depth` hidden layers of `width` units (module docstring).

    Attributes read by the fast NTK: `weights` (ParameterList, W_l of shape
    [fan_out, fan_in], l = 1..L+1), `biases` (ParameterList of B_l, shape [width],
    l = 1..L, or None), `bias_scale` (c_b) and `fan_ins`."""

    def __init__(
        self,
        d: int,
        width: int,
        depth: int,
        activation: str = "relu",
        activation_beta: float = 1.0,
        bias: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        for name, value in (("input dimension d", d), ("width", width), ("depth", depth)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        sizes = [d] + [width] * depth + [1]
        self.fan_ins = sizes[:-1]
        self.weights = nn.ParameterList(
            [_normal((n_out, n_in), generator, dtype) for n_in, n_out in zip(sizes, sizes[1:])]
        )
        self.biases = (
            nn.ParameterList([_normal((width,), generator, dtype) for _ in range(depth)])
            if bias
            else None
        )
        self.bias_scale = BIAS_SCALE
        self.act = make_activation(activation, activation_beta)

    def layers(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Forward pass keeping what the layer-wise NTK needs.

        x: [P, d]. Returns (f̃ [P], inputs [x_0 = x, x_1, …, x_L] with x_l [P, h_l]
        — the input of layer l+1 —, pre-activations [a_1, …, a_L] each [P, h])."""
        inputs: list[Tensor] = [x]
        preacts: list[Tensor] = []
        for l, (w, fan_in) in enumerate(zip(self.weights, self.fan_ins)):
            a = inputs[-1] @ (w.T / math.sqrt(fan_in))  # [P, fan_out]
            if l == len(self.weights) - 1:
                return a.squeeze(-1), inputs, preacts
            if self.biases is not None:
                a = a + self.bias_scale * self.biases[l]
            preacts.append(a)
            inputs.append(self.act(a))
        raise AssertionError("unreachable: the net has at least one layer")

    def forward(self, x: Tensor) -> Tensor:
        """f̃(x): [P, d] → [P]."""
        return self.layers(x)[0]


class ConvNet(nn.Module):
    """Small CNN in the NTK parametrisation, f̃: [P, d] → [P] (Fig. 8).

    Each row of x is read as a signal of shape `input_shape` = (C, *positions): by default
    an image (1, s, s) when d = s², (3, s, s) when d = 3s² with s ≥ 16 (raw MNIST /
    CIFAR-10 pixels), otherwise a 1-D signal (1, d) — e.g. the d PCA features. Then `depth`
    convolutions with `width` channels, kernel 3, stride 1 and zero 'same' padding,

        a_l = conv(W_l, x_{l−1}) / √(C_{l−1}·3^n) + c_b B_l,   x_l = σ(a_l),

    global average pooling over positions, and f̃ = W_out · mean(x_L) / √width.
    All parameters N(0,1) from `generator`; weights first, then biases."""

    kernel_size = 3

    def __init__(
        self,
        d: int,
        width: int,
        depth: int,
        activation: str = "relu",
        activation_beta: float = 1.0,
        bias: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape) if input_shape else _default_input_shape(d)
        if math.prod(self.input_shape) != d or len(self.input_shape) not in (2, 3):
            raise ValueError(
                f"input_shape {self.input_shape} must be (C, n) or (C, n, n) with C·n^k = d = {d}"
            )
        spatial = len(self.input_shape) - 1
        kernel = (self.kernel_size,) * spatial
        channels = [self.input_shape[0]] + [width] * depth
        self.fan_ins = [c * self.kernel_size**spatial for c in channels[:-1]] + [width]
        self.weights = nn.ParameterList(
            [
                _normal((c_out, c_in, *kernel), generator, dtype)
                for c_in, c_out in zip(channels, channels[1:])
            ]
            + [_normal((1, width), generator, dtype)]
        )
        self.biases = (
            nn.ParameterList([_normal((width,), generator, dtype) for _ in range(depth)])
            if bias
            else None
        )
        self.bias_scale = BIAS_SCALE
        self.act = make_activation(activation, activation_beta)
        self._conv = torch.nn.functional.conv1d if spatial == 1 else torch.nn.functional.conv2d

    def forward(self, x: Tensor) -> Tensor:
        """f̃(x): [P, d] → [P]."""
        x = x.reshape(x.shape[0], *self.input_shape)  # [P, C, *positions]
        for l in range(len(self.weights) - 1):  # no slicing: a sliced ParameterList re-wraps
            w = self.weights[l] / math.sqrt(self.fan_ins[l])  # tensors, cutting torch.func's graph
            b = self.bias_scale * self.biases[l] if self.biases is not None else None
            x = self.act(self._conv(x, w, b, padding="same"))
        pooled = x.flatten(2).mean(-1)  # [P, width]
        return (pooled @ self.weights[-1].T).squeeze(-1) / math.sqrt(self.fan_ins[-1])


def _default_input_shape(d: int) -> tuple[int, ...]:
    """(1, s, s) if d = s², (3, s, s) if d = 3s² (s ≥ 16: raw pixels), else (1, d)."""
    for channels in (1, 3):
        side = math.isqrt(d // channels)
        if side >= 16 and channels * side * side == d:
            return (channels, side, side)
    return (1, d)


def build_model(
    d: int,
    width: int,
    depth: int,
    activation: str = "relu",
    activation_beta: float = 1.0,
    bias: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> FullyConnected:
    """The fully-connected net f̃: [P, d] → [P] with N(0,1) parameters from `generator`.

    Number of parameters: d·h + (L−1)·h² + h + [bias]·L·h (see `count_parameters`)."""
    return FullyConnected(d, width, depth, activation, activation_beta, bias, generator, dtype)


def build_from_spec(
    model: ModelSpec,
    d: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    input_shape: tuple[int, ...] | None = None,
) -> nn.Module:
    """Build the net a `ModelSpec` describes, for inputs of dimension d.

    arch "fc": `FullyConnected(depth=L)`; "one-hidden": `FullyConnected(depth=1)`
    (`model.depth` is not used); "cnn": `ConvNet` with `depth` conv layers of `width`
    channels, reading each input row as ``input_shape`` (e.g. (1, 28, 28) for raw MNIST
    pixels, `tasks.data.input_shape`) when it has more than one axis."""
    common: dict[str, Any] = {
        "activation": model.activation,
        "activation_beta": model.activation_beta,
        "bias": model.bias,
        "generator": generator,
        "dtype": dtype,
    }
    if model.arch == "fc":
        return FullyConnected(d, model.width, model.depth, **common)
    if model.arch == "one-hidden":
        return FullyConnected(d, model.width, 1, **common)
    if model.arch == "cnn":
        shape = input_shape if input_shape is not None and len(input_shape) > 1 else None
        return ConvNet(d, model.width, model.depth, **common, input_shape=shape)
    raise ValueError(f"unknown architecture {model.arch!r}; valid ones: {', '.join(ARCHITECTURES)}")


def count_parameters(model: nn.Module) -> int:
    """N: the number of trainable scalars of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
