"""Feature alignment of the first layer with the informative input directions (paper Sec. 5,
Fig. 9 left; Paccolat et al. 2020): Λ = W∥ / W⊥.

For first-layer weight vectors w_i [d] (neuron i = 1..h) and output weights v_i — the weights
leaving neuron i: c_i = ‖W₂[:, i]‖ (for the one-hidden-layer net, c_i = |β_i|) — with the
informative coordinates ∥ (d∥ of them) and the others ⊥ (d⊥ = d − d∥):

    W∥² = Σ_i c_i Σ_{a∈∥} w_ia² / (d∥ Σ_i c_i),    W⊥² = Σ_i c_i Σ_{a∈⊥} w_ia² / (d⊥ Σ_i c_i)

(root-mean-square component per coordinate, each neuron weighted by the magnitude of its
output weight). Λ ≈ 1 at initialisation (isotropic Gaussian weights); in the feature regime
neurons align on ∥ and Λ grows (the paper: Λ ~ √P); in the lazy regime it stays ≈ 1.
Weights are the raw N(0,1)-initialised parameters W (the 1/√fan_in of the forward pass
cancels in the ratio).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from tasks.models import FullyConnected


def weight_alignment(first: Tensor, outgoing: Tensor, informative: Sequence[int]) -> float:
    """Λ = W∥/W⊥ of first-layer weights ``first`` [h, d] with outgoing weights
    ``outgoing`` [n_out, h]; ``informative`` the indices of ∥ (a proper, non-empty subset of
    0..d−1). NaN if every c_i is 0 or W⊥ = 0."""
    h, d = first.shape
    parallel = sorted({int(a) for a in informative})
    if not parallel or parallel[0] < 0 or parallel[-1] >= d or len(parallel) == d:
        raise ValueError(
            f"informative directions {list(informative)} must be a proper "
            f"non-empty subset of the input coordinates 0..{d - 1}"
        )
    if outgoing.shape[-1] != h:
        raise ValueError(f"outgoing weights {tuple(outgoing.shape)} must have {h} columns")
    weight = torch.linalg.vector_norm(outgoing.reshape(-1, h), dim=0)  # c_i [h]
    squares = first.square()  # [h, d]
    mask = torch.zeros(d, dtype=torch.bool, device=first.device)
    mask[parallel] = True
    along = (weight @ squares[:, mask]).sum() / len(parallel)
    across = (weight @ squares[:, ~mask]).sum() / (d - len(parallel))
    if not float(across) > 0.0:
        return math.nan
    return math.sqrt(float(along / across))


def layer_weights(model: nn.Module, theta: Tensor) -> tuple[Tensor, Tensor] | None:
    """(W₁ [h, d], W₂ [n_out, h]) of a `FullyConnected` net at the flat parameters θ [N]
    (its order: W₁, W₂, …, then biases), as views of θ; None for other architectures."""
    if not isinstance(model, FullyConnected):
        return None
    first, second = (tuple(w.shape) for w in list(model.weights)[:2])
    n_first = first[0] * first[1]
    return (
        theta[:n_first].view(first),
        theta[n_first : n_first + second[0] * second[1]].view(second),
    )


def layer_weights_on_host(
    model: nn.Module, theta: Tensor, wanted: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """`layer_weights` copied to numpy float64 when ``wanted`` (else None)."""
    weights = layer_weights(model, theta) if wanted else None
    if weights is None:
        return None
    first, second = (w.detach().to(torch.float64).cpu().numpy().copy() for w in weights)
    return first, second


def weight_alignment_at(
    model: nn.Module, theta: Tensor, informative: Sequence[int] | None
) -> float:
    """Λ of a `FullyConnected` net at the flat parameters θ [N];
    NaN when there are no informative directions (image data) or for other architectures."""
    if informative is None:
        return math.nan
    weights = layer_weights(model, theta)
    if weights is None:
        return math.nan
    return weight_alignment(*weights, informative)
