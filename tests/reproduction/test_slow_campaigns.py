"""`make test-slow`: a reduced version of every campaign of campaigns/reproduce/, trained here
on the real engine (the scheduler's batched bundles, the real aggregation) with the real spec's
net, loss, flow and observables and a smaller grid, budget and test set; each test checks the
direction of the effect its campaign measures in docs/reproduction.md, not its size.

The reduced grids are where the direction already holds at 150 to 3,000 steps. Measured:
≈ 1 min for this file at load ≈ 3 (the jamming pair ≈ 30 s), ≈ 3 min at load 5–8.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_reproduce import reduced, train  # the reduced-campaign helpers of the fast tests

from pipeline.analysis.alignment import measured_alignment
from pipeline.spec.from_campaign import PerpendicularSource
from reproduction import claims, claims_jamming

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """One torch thread, like a Ray worker."""


def final_alignment(data) -> dict[int, float]:
    """{P: geometric mean over seeds of the final Λ} at the smallest α̃ (every done cell)."""
    return measured_alignment(data.cells, data.measurements, PerpendicularSource("here", "end"))


@pytest.mark.parametrize(
    "stem, widths, sizes",
    [("jamming_random", [2, 4, 10, 35], [25, 200]), ("jamming_mnist", [2, 4, 11, 32], [50, 400])],
)
def test_quadratic_hinge_jamming_fits_above_a_width_that_grows_with_p(stem, widths, sizes):
    data = train(
        reduced(
            stem,
            data={"test_size": 50, "kernel_size": 16},
            grid={"width": widths, "train_size": sizes, "seed": [0, 1]},
            flow={"max_steps": 3000},
            resources={"bundle_size": 2},
        )
    )
    lines = claims_jamming.fitted_fraction_lines(data)
    assert len(lines) == 2, lines
    assert (lines["first"] <= 0.25).all() and (lines["last"] == 1.0).all(), lines
    fitted = data.cells.loc[data.cells["fitted"]]
    assert len(fitted) and (fitted["n_unsatisfied"] == 0).all()
    h_star = lines.set_index("train_size")["h_star"]
    assert h_star[sizes[1]] > h_star[sizes[0]], h_star  # N* grows with P


@pytest.fixture(scope="module")
def stripe():
    """stripe_curves at P = 64 and 256 (relu, plain hinge, feature α̃ = 0.03, lazy 10⁴).
    One torch thread set here: a module fixture runs before the autouse one (with two
    threads on the shared cores this took 384 s instead of 25 s, load ≈ 7)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield train(
        reduced(
            "stripe_curves",
            data={"test_size": 2000, "kernel_size": 16},
            grid={"train_size": [64, 256], "seed": [0, 1]},
            flow={"max_steps": 1000},
            resources={"bundle_size": 4},
        )
    )
    torch.set_num_threads(threads)


def test_stripe_feature_learning_beats_lazy_and_both_improve_with_p(stripe):
    ens = stripe.ensembles.set_index(["alpha_tilde", "train_size"])["mean_test_error"]
    assert ens[(0.03, 256)] < ens[(1e4, 256)], ens  # at P = 64 the two tie at 1,500 steps
    for alpha in (0.03, 1e4):
        assert ens[(alpha, 256)] < ens[(alpha, 64)], ens
    change = stripe.ensembles.groupby("alpha_tilde")["ntk_change"]
    assert change.min()[0.03] > 10 and change.max()[1e4] < 0.05, change.describe()


def test_feature_alignment_grows_with_p():
    data = train(
        reduced(
            "features_alignment",
            data={"test_size": 500, "kernel_size": 16},
            grid={"train_size": [64, 256], "seed": [4]},
            flow={"max_steps": 1000},
        )
    )
    aligned = final_alignment(data)
    assert set(aligned) == {64, 256}, aligned
    assert aligned[256] > aligned[64] > 1.0, aligned  # Λ ∝ √P would be ×2 from 64 to 256


def test_lazy_training_on_compressed_data_beats_lazy_on_raw_data(stripe):
    """Compressed by Λ(256) measured on the feature end of the reduced stripe campaign."""
    scale = final_alignment(stripe)[256]
    assert scale > 1.0, scale
    data = train(
        reduced(
            "features_compressed",
            data={"test_size": 2000, "kernel_size": 16, "perpendicular_scale": scale},
            grid={"train_size": [256], "seed": [0, 1]},
            flow={"max_steps": 1000},
            resources={"bundle_size": 2},
        )
    )
    compressed = data.ensembles["mean_test_error"].iloc[0]
    raw = stripe.ensembles.set_index(["alpha_tilde", "train_size"])["mean_test_error"]
    assert compressed < raw[(1e4, 256)], (compressed, raw)


def label_weight(kernels, when: str, top: int = 10) -> np.ndarray:
    """Per cell, the labels' weight Σ ω_λ on the top eigenvectors of Θ₀ or Θ_end."""
    return np.array([np.sum(v[:top]) for v in kernels[f"kpca_label_projection_{when}"]])


def test_ntk_eigenvectors_become_informative_after_feature_learning():
    data = train(
        reduced(
            "features_kpca",
            data={"train_size": 300, "test_size": 500, "kernel_size": 128},
            grid={"width": [32], "seed": [0, 1]},
            flow={"max_steps": 2000},
            observables={"kernel_pca_rank": 20},
        )
    )
    kernels = data.kernels
    if "alpha_tilde" not in kernels:
        kernels = kernels.merge(data.cells[["cell_id", "alpha_tilde"]], on="cell_id")
    gain = label_weight(kernels, "final") - label_weight(kernels, "initial")
    by_alpha = dict(zip(kernels["alpha_tilde"], gain))
    feature = gain[kernels["alpha_tilde"].to_numpy() == 0.1]
    lazy = gain[kernels["alpha_tilde"].to_numpy() == 1000.0]
    assert len(feature) == 2 and len(lazy) == 2, by_alpha
    assert feature.min() > max(lazy.max(), 0.0) + 0.01, (feature, lazy)  # lazy: ≈ 0


def test_the_cnn_moves_its_kernel_in_the_feature_regime_only():
    """The test-error comparison is the report's (not resolved at CPU scale); the direction
    that holds already after 150 steps is that of ‖ΔΘ‖/‖Θ₀‖."""
    data = train(
        reduced(
            "features_cnn",
            data={"train_size": 32, "test_size": 200, "kernel_size": 16},
            grid={"seed": [0]},
            flow={"max_steps": 150},
            observables={"kernel_pca_rank": 8},
        )
    )
    change = data.cells.set_index("alpha_tilde")["ntk_change"]
    assert change[0.01] > 10 * change[1000.0], change
    assert (data.cells["status"] == "done").all()


@pytest.mark.parametrize("stem", ["mnist_phase", "fashion_regimes"])
def test_the_kernel_moves_less_as_alpha_grows(stem):
    if stem == "fashion_regimes" and not claims_path_has_fashion():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    data = train(
        reduced(
            stem,
            data={"train_size": 200, "test_size": 500, "kernel_size": 32},
            grid={"width": [32], "alpha_tilde": [0.1, 10.0, 1000.0], "seed": [0]},
            flow={"max_steps": 1500},
        )
    )
    change = data.ensembles.sort_values("alpha_tilde")["ntk_change"].to_numpy()
    assert np.all(np.diff(change) < 0) and change[0] > 1 > change[-1], change
    assert claims.crossover_points(data, past_jamming=0)["status"].eq("bracketed").all()


def claims_path_has_fashion() -> bool:
    from test_reproduce import FASHION

    return FASHION.exists()
