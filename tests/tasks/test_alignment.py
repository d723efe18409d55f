"""Weight alignment Λ = W∥/W⊥ (paper Sec. 5, Fig. 9 left) on hand-built weights."""

from __future__ import annotations

import math

import pytest
import torch

from tasks.alignment import weight_alignment, weight_alignment_at
from tasks.models import ConvNet, FullyConnected
from tasks.specs import DataSpec
from tasks.synthetic import informative_directions


def _neurons_with_ratio(ratio: float, h: int, d: int, seed: int) -> torch.Tensor:
    """[h, d] rows whose rms component along x₁ is ``ratio`` times that along x₂..x_d."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(h, 1, generator=g, dtype=torch.float64) + 0.5
    perpendicular = torch.randn(h, d - 1, generator=g, dtype=torch.float64)
    perpendicular *= math.sqrt(d - 1) / perpendicular.norm(dim=1, keepdim=True)
    return scale * torch.cat([torch.full((h, 1), ratio, dtype=torch.float64), perpendicular], 1)


@pytest.mark.parametrize("ratio", [0.5, 1.0, 7.0])
def test_weight_alignment_equals_a_built_in_ratio(ratio):
    first = _neurons_with_ratio(ratio, h=50, d=6, seed=1)
    outgoing = torch.randn(1, 50, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert weight_alignment(first, outgoing, [0]) == pytest.approx(ratio, rel=1e-12)


def test_each_neuron_counts_with_the_magnitude_of_its_output_weight():
    # neuron 0: only along x₁ (w∥² = 4); neuron 1: only across (w⊥² = 1 per coordinate)
    first = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    for c0, c1 in ((1.0, 1.0), (3.0, 1.0), (1.0, 0.0)):
        outgoing = torch.tensor([[-c0, c1]], dtype=torch.float64)  # the sign does not count
        along, across = c0 * 4.0 / 1, c1 * 2.0 / 2
        expected = math.sqrt(along / across) if across else math.nan
        got = weight_alignment(first, outgoing, [0])
        assert got == pytest.approx(expected, nan_ok=True)


def test_several_informative_directions_and_multi_row_outgoing_weights():
    first = torch.tensor([[3.0, 4.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    outgoing = torch.tensor([[0.6], [0.8]], dtype=torch.float64)  # c = ‖W₂[:, 0]‖ = 1
    # W∥² = (9 + 16)/2, W⊥² = 3/3
    assert weight_alignment(first, outgoing, [0, 1]) == pytest.approx(math.sqrt(12.5))


def test_bad_informative_directions_are_refused():
    first, outgoing = torch.ones(2, 3, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    for bad in ([], [3], [0, 1, 2]):
        with pytest.raises(ValueError, match="proper non-empty subset"):
            weight_alignment(first, outgoing, bad)


def test_alignment_at_reads_the_first_two_layers_of_a_flat_theta():
    g = torch.Generator().manual_seed(3)
    net = FullyConnected(4, width=8, depth=2, activation="swish", generator=g)
    theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    expected = weight_alignment(net.weights[0].detach(), net.weights[1].detach(), [0])
    assert weight_alignment_at(net, theta, [0]) == pytest.approx(expected, rel=1e-14)
    assert 0.3 < expected < 3.0  # isotropic Gaussian weights: Λ of order 1
    assert math.isnan(weight_alignment_at(net, theta, None))
    cnn = ConvNet(16, width=4, depth=1, generator=g)
    cnn_theta = torch.nn.utils.parameters_to_vector(cnn.parameters()).detach()
    assert math.isnan(weight_alignment_at(cnn, cnn_theta, [0]))


def test_informative_directions_of_each_dataset():
    assert informative_directions(DataSpec("stripe", dimension=5)) == (0,)
    assert informative_directions(DataSpec("cylinder", dimension=5, parallel_dimension=3)) == (
        0,
        1,
        2,
    )
    assert informative_directions(DataSpec("mnist", dimension=10)) is None
    assert informative_directions(DataSpec("sphere", dimension=5)) is None
