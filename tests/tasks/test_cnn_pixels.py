"""CNNs on raw pixels (Fig. 8 right): `[data] pca = false` keeps images (centred, norm √D)
with their [C, H, W] order; a raw-pixel CNN cell trains through the flow; its NTK (the
blocked path, never the whole P×N Jacobian) equals the torch.func Jacobian NTK and a plain
autograd per-point gradient loop; a CNN on PCA inputs is refused before anything runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.spec.campaign import SpecError, parse_campaign
from tasks.data import load_task
from tasks.models import ConvNet
from tasks.ntk import ntk_gram, ntk_gram_blocked, ntk_gram_jacobian
from tasks.specs import CellSpec, DataSpec, FlowSpec, LossSpec, ModelSpec, ObservableSpec
from tasks.train_cell import prepare_cell, train_cell

REPO = Path(__file__).resolve().parents[2]
PIXELS = DataSpec("mnist", pca=False, train_size=24, test_size=40, kernel_size=12)


def _autograd_ntk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Θ from one torch.autograd.grad per point (no torch.func): the independent reference."""
    params = list(model.parameters())
    rows = [
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(model(xi[None])[0], params)])
        for xi in x
    ]
    jacobian = torch.stack(rows)
    return jacobian @ jacobian.T


def test_blocked_cnn_ntk_equals_the_jacobian_ntk_and_an_autograd_loop():
    g = torch.Generator().manual_seed(0)
    model = ConvNet(
        2 * 6 * 6,
        width=5,
        depth=2,
        activation="swish",
        activation_beta=2.0,
        bias=True,
        generator=g,
        input_shape=(2, 6, 6),
    )
    x = torch.randn(7, 72, generator=g, dtype=torch.float64)
    reference = _autograd_ntk(model, x)
    for theta in (
        ntk_gram_blocked(model, x, block_points=3),
        ntk_gram(model, x),
        ntk_gram_jacobian(model, x),
    ):
        torch.testing.assert_close(theta, reference, rtol=1e-12, atol=1e-12)


def test_raw_pixels_are_centred_images_of_norm_sqrt_d():
    task = load_task(PIXELS)
    assert task.x_train.shape == (24, 784) and task.x_kernel.shape == (12, 784)
    torch.testing.assert_close(
        task.x_train.norm(dim=1), torch.full((24,), math.sqrt(784.0), dtype=torch.float64)
    )
    pca = load_task(DataSpec("mnist", dimension=10, train_size=24, test_size=40, kernel_size=12))
    assert torch.equal(pca.y_train, task.y_train)  # the same examples, other inputs


@pytest.fixture
def one_thread():
    """One torch thread, as in a Ray worker: on a shared 2-core machine small float64
    convolutions are ~50× slower with contended threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_raw_pixel_cnn_cell_trains_and_its_ntk_is_the_jacobian_ntk(one_thread):
    spec = CellSpec(
        alpha_tilde=100.0,
        seed=0,
        data=PIXELS,
        model=ModelSpec(arch="cnn", width=4, depth=1, activation="softplus", activation_beta=1.0),
        loss=LossSpec("softhinge", 20.0),
        flow=FlowSpec(max_steps=200),
        observables=ObservableSpec(kernel_pca_rank=5),
    )
    cell = prepare_cell(spec)
    assert cell.model.input_shape == (1, 28, 28)
    torch.testing.assert_close(
        cell.ntk_initial, _autograd_ntk(cell.model, cell.task.x_kernel), rtol=1e-11, atol=1e-11
    )
    records = list(train_cell(spec))
    result, measurements = records[-1], records[:-1]
    assert result.steps > 0 and result.stop_reason in ("fitted", "max_steps")
    losses = [m.train_loss for m in measurements]
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # a gradient flow descends
    assert losses[-1] < 0.95 * losses[0]  # measured: 1.0 → 0.918
    assert math.isfinite(result.ntk_change) and result.ntk_change > 0
    assert len(result.kpca_eigenvalues_final) == 5
    assert math.isnan(measurements[-1].weight_alignment)  # no informative coordinates


def _mnist_spec(model: dict, data: dict | None = None) -> dict:
    return {
        "name": "x",
        "data": {"dataset": "mnist", "train_size": 10, **(data or {})},
        "model": model,
        "flow": {"max_steps": 10},
        "grid": {"width": [4], "alpha_tilde": [1.0], "seed": [0]},
    }


def test_a_cnn_on_pca_inputs_is_refused_with_the_fix():
    with pytest.raises(SpecError, match=r"pca = false.*model\.arch"):
        parse_campaign(_mnist_spec({"arch": "cnn", "depth": 1}, {"dimension": 10}))
    parse_campaign(_mnist_spec({"arch": "cnn", "depth": 1}, {"pca": False}))  # accepted
    with pytest.raises(SpecError, match="remove dimension"):
        parse_campaign(_mnist_spec({"arch": "cnn"}, {"pca": False, "dimension": 10}))


@pytest.mark.parametrize(
    "data, named",
    [
        ({"dataset": "stripe", "pca": False}, "data.pca"),
        ({"dataset": "sphere", "perpendicular_scale": 2.0}, "data.perpendicular_scale"),
        ({"dataset": "stripe", "parallel_dimension": 3}, "data.parallel_dimension"),
        (
            {"dataset": "cylinder", "dimension": 3, "parallel_dimension": 3},
            "data.parallel_dimension",
        ),
    ],
)
def test_data_rules_name_the_key(data, named):
    spec = _mnist_spec({"arch": "fc"})
    spec["data"] = {"train_size": 10, **data}
    with pytest.raises(SpecError, match=named.replace(".", r"\.")):
        parse_campaign(spec)


def test_phasegrid_run_refuses_a_cnn_on_pca_inputs_and_writes_nothing(tmp_path):
    text = (REPO / "campaigns" / "stripe_small.toml").read_text()
    text = text.replace('dataset = "stripe"', 'dataset = "mnist"').replace(
        'arch = "one-hidden"', 'arch = "cnn"\ndepth = 1'
    )
    spec = tmp_path / "cnn.toml"
    spec.write_text(text)
    result = CliRunner().invoke(app, ["run", str(spec), "--store", str(tmp_path / "store")])
    assert result.exit_code == 2, result.output
    assert "pca = false" in result.output.replace("\n", " ")
    assert not (tmp_path / "store").exists()
