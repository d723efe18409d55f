"""The compressed-data control (Fig. 9 right, dashed) and the cylinder interface: data
with `perpendicular_scale` differ from the plain data in exactly the uninformative
coordinates, divided by the factor; cylinder labels come from |x∥| only."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tasks.data import load_task
from tasks.specs import DataSpec
from tasks.synthetic import sphere_radius

SETS = ("train", "test", "kernel")


@pytest.mark.parametrize(
    "data",
    [
        DataSpec("stripe", dimension=5, train_size=200),
        DataSpec("cylinder", dimension=6, train_size=200, parallel_dimension=3),
    ],
    ids=["stripe", "cylinder"],
)
def test_perpendicular_scale_divides_exactly_the_uninformative_coordinates(data):
    parallel = 1 if data.dataset == "stripe" else data.parallel_dimension
    plain = load_task(data)
    squeezed = load_task(dataclasses.replace(data, perpendicular_scale=8.0))
    for name in SETS:
        x, z = getattr(plain, f"x_{name}"), getattr(squeezed, f"x_{name}")
        torch.testing.assert_close(z[:, :parallel], x[:, :parallel], rtol=0, atol=0)
        torch.testing.assert_close(z[:, parallel:], x[:, parallel:] / 8.0, rtol=0, atol=0)
        assert torch.equal(getattr(plain, f"y_{name}"), getattr(squeezed, f"y_{name}"))
    assert x[:, parallel:].abs().max() > 1.0  # there was something to compress


def test_perpendicular_scale_is_refused_where_no_direction_is_informative():
    with pytest.raises(ValueError, match="perpendicular_scale needs data with known"):
        load_task(DataSpec("sphere", dimension=4, train_size=10, perpendicular_scale=2.0))


def test_cylinder_labels_depend_on_the_parallel_radius_only():
    data = DataSpec("cylinder", dimension=7, train_size=400, parallel_dimension=2)
    task = load_task(data)
    radius = task.x_train[:, :2].norm(dim=1)
    inside = radius < sphere_radius(2)
    assert torch.equal(task.y_train, torch.where(inside, 1.0, -1.0).to(task.y_train.dtype))
    assert task.y_train.sum().abs() <= 1  # balanced
    outer = task.x_train[:, 2:].norm(dim=1)  # ⊥ part: same law both sides
    means = [outer[task.y_train == label].mean() for label in (1.0, -1.0)]
    assert means[0] == pytest.approx(float(means[1]), rel=0.1)


def test_cylinder_needs_a_perpendicular_direction():
    with pytest.raises(ValueError, match=r"parallel_dimension of the cylinder must be in 1\.\.3"):
        load_task(DataSpec("cylinder", dimension=4, train_size=10, parallel_dimension=4))
