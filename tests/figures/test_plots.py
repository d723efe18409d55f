"""The paper's figures from a synthetic campaign written to disk: every file a valid,
non-trivial PNG; unfitted cells black in the phase diagram; missing data skipped."""

import math
import os

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize

from pipeline.analysis.ensembles import ensemble_table
from pipeline.drivers.aggregate import aggregate_campaign
from pipeline.drivers.plot import load_campaign_data, plot_campaign
from pipeline.figures import FIGURES, CampaignData, phase_colours
from pipeline.figures.phase import phase_diagram

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDTHS = (8, 16, 32, 64, 128, 256)
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
TEST_SIZE = 64


def n_params(width: int) -> int:
    return 5 * width + width * width + width  # d = 5, two hidden layers, no bias


def synthetic_cell(rng, labels, width, alpha, p, seed):
    """One cell of a known phase diagram: jamming at N* = 2P, ntk_change ~ 1/α̃,
    fluctuations ~ N^{-1/4}, ensemble error ~ P^{-β} with β = 0.5 (α̃ < 1) or 0.3."""
    n, n_jam = n_params(width), 2.0 * p
    ratio = n / (n_jam * math.exp(0.1 * rng.normal()))
    fit_step = 1 / (ratio - 1) ** 4 if ratio > 1 else math.inf
    fitted, budget = fit_step <= 10_000, 10_000
    unsat = 0 if fitted else int(min(p, 0.4 * n))
    wrong = np.arange(TEST_SIZE) < round(0.6 * p ** -(0.5 if alpha < 1 else 0.3) * TEST_SIZE)
    outputs = labels * np.where(wrong, -1, 1) * (
        1 + rng.random(TEST_SIZE)
    ) + 2 * n**-0.25 * rng.normal(size=TEST_SIZE)
    ntk = (1 / alpha) * (1 + 1 / ratio) * math.exp(0.1 * rng.normal())
    cid = f"p{p}-a{alpha}-h{width}-s{seed}"
    cell = dict(
        cell_id=cid,
        width=width,
        alpha_tilde=alpha,
        alpha=alpha / math.sqrt(width),
        train_size=p,
        seed=seed,
        depth=2,
        dataset="stripe",
        n_params=n,
        status="done",
        stop_reason="fitted" if fitted else "max_steps",
        fitted=fitted,
        train_loss=1e-6 if fitted else 0.05 * (1 - ratio) + 1e-4,
        n_unsatisfied=unsat,
        test_error=float(np.mean(outputs * labels <= 0)),
        ntk_change=ntk,
        steps=int(fit_step) if fitted else budget,
        max_steps=budget,
        integrator="euler-heun",
        loss="softhinge",
        loss_beta=20.0,
    )
    spectrum = np.concatenate(
        [10 ** rng.uniform(-9, -8, unsat // 3), 10 ** rng.uniform(-1, 1, unsat - unsat // 3)]
    )
    ranks = np.arange(1, 31)
    aligned = 1 / (1 + alpha)  # feature regime: the top modes see the labels
    kpca = {
        f"kpca_{q}_{w}": (0.02 + (aligned if w == "final" else 0.0) / ranks) * scale
        for q, scale in (("label_projection", 0.5), ("mutual_information", 1.0))
        for w in ("initial", "final")
    }
    return cell, outputs, dict(cell_id=cid, ntk_change=ntk, h0_eigenvalues=spectrum, **kpca)


def synthetic_weights(cell, rng) -> pd.DataFrame:
    """64 units at init (isotropic) and at the end (stretched along x₁)."""
    rows = []
    for checkpoint, stretch in (("initial", 1.0), ("final", 5.0)):
        for i in range(64):
            w = rng.normal(size=5) * np.array([stretch, 1, 1, 1, 1])
            rows.append(
                dict(
                    cell_id=cell["cell_id"],
                    width=cell["width"],
                    alpha_tilde=cell["alpha_tilde"],
                    checkpoint=checkpoint,
                    neuron=i,
                    first_layer_weights=w,
                    output_weights=[rng.normal()],
                )
            )
    return pd.DataFrame(rows)


def synthetic_measurements(cell) -> pd.DataFrame:
    """Λ(t): from 1 towards 1 + 10/(1 + α̃) (feature learning at small α̃)."""
    t = np.geomspace(0.1, 1e3, 12)
    growth = 10 / (1 + cell["alpha_tilde"]) * t / (t + 10)
    return pd.DataFrame(
        dict(cell_id=cell["cell_id"], step=np.arange(12), flow_time=t, weight_alignment=1 + growth)
    )


def write_table(root, table, frame):
    os.makedirs(root / table, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), root / table / "part-0.parquet"
    )


def synthetic_campaign(root, train_sizes=(128, 512, 2048), seeds=3, with_outputs=True):
    """Write cells (+ predictions, kernels) of a synthetic campaign under `root`."""
    rng = np.random.default_rng(0)
    labels = np.where(rng.random(TEST_SIZE) < 0.5, -1, 1).astype(np.int8)
    cells, predictions, kernels = [], [], []
    for p in train_sizes:
        for alpha in ALPHAS:
            for width in WIDTHS:
                for seed in range(seeds):
                    cell, outputs, kernel = synthetic_cell(rng, labels, width, alpha, p, seed)
                    cells.append(cell)
                    kernels.append(kernel)
                    predictions.append(
                        pd.DataFrame(
                            dict(
                                cell_id=cell["cell_id"],
                                test_index=np.arange(TEST_SIZE),
                                test_output=outputs,
                                test_label=labels,
                            )
                        )
                    )
    cells.append(dict(cells[0], cell_id="failed-1", status="failed", seed=99))
    write_table(root, "cells", pd.DataFrame(cells))
    write_table(
        root,
        "measurements",
        pd.concat([synthetic_measurements(c) for c in cells], ignore_index=True),
    )
    if with_outputs:
        write_table(root, "weights", synthetic_weights(cells[0], rng))
    if with_outputs:
        write_table(root, "predictions", pd.concat(predictions, ignore_index=True))
        write_table(root, "kernels", pd.DataFrame(kernels))


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    synthetic_campaign(root)
    aggregate_campaign(str(root))
    return root, {o.name: o for o in plot_campaign(str(root), formats=("png",))}


def test_every_figure_is_a_valid_png_with_nontrivial_content(plotted):
    root, outcomes = plotted
    assert set(outcomes) == set(FIGURES)
    for name, outcome in outcomes.items():
        assert outcome.skipped is None, outcome.summary()
        png = root / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        pixels = (matplotlib.image.imread(png)[..., :3] * 255).astype(np.uint32)
        colours = np.unique(pixels[..., 0] << 16 | pixels[..., 1] << 8 | pixels[..., 2])
        assert pixels.shape[0] > 300 and pixels.shape[1] > 400
        assert len(colours) > 50, f"{name}: only {len(colours)} distinct colours"
    names = os.listdir(root / "figures")
    assert {f"{name}.png" for name in FIGURES} <= set(names)
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]  # no temp files


def test_figures_are_also_written_as_pdf(plotted):
    root, _ = plotted
    [outcome] = plot_campaign(str(root), names=["phase_diagram"], formats=("png", "pdf"))
    assert [os.path.basename(p) for p in outcome.paths] == [
        "phase_diagram.png",
        "phase_diagram.pdf",
    ]
    assert (root / "figures" / "phase_diagram.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match=r"unknown figure.*phase_diagram"):
        plot_campaign(str(root), names=["phase_diagramm"])


def _phase_data(fitted_fraction: dict) -> CampaignData:
    """A 3x3 (h, α̃) grid whose (h, α̃) -> fitted fraction is given (default 1)."""
    rows = [
        dict(
            width=w,
            alpha_tilde=a,
            train_size=100,
            n_seeds=2,
            n_params=w * w,
            fitted_fraction=fitted_fraction.get((w, a), 1.0),
            mean_test_error=0.2,
            ensemble_test_error=0.1 + 0.01 * i,
            fluctuation=0.1,
            ntk_change=1 / a,
            mean_train_loss=0.0,
            mean_n_unsatisfied=0.0,
        )
        for i, (w, a) in enumerate((w, a) for w in (10, 100, 1000) for a in (0.1, 1.0, 10.0))
    ]
    return CampaignData(
        cells=pd.DataFrame(), ensembles=pd.DataFrame(rows), boundaries=pd.DataFrame()
    )


def test_phase_diagram_paints_unfitted_cells_black():
    data = _phase_data({(10, 10.0): 0.0, (10, 1.0): 0.4, (100, 10.0): 0.5})
    fig = phase_diagram(data)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]
    ax = fig.axes[0]

    def pixel(width, alpha):
        x, y = ax.transData.transform((width, alpha))
        return image[int(round(image.shape[0] - y)), int(round(x))]

    assert (pixel(10, 10.0) == 0).all() and (pixel(10, 1.0) == 0).all()
    for fitted in ((100, 10.0), (1000, 0.1), (1000, 10.0)):  # fraction >= 1/2: coloured
        assert pixel(*fitted).sum() > 100, fitted


def test_phase_colours_black_below_half_fitted_and_colormap_elsewhere():
    ensembles = _phase_data({(10, 0.1): 0.49}).ensembles
    norm = Normalize(0.1, 0.18)
    widths, alphas, rgba = phase_colours(ensembles, norm)
    assert list(widths) == [10, 100, 1000] and list(alphas) == [0.1, 1.0, 10.0]
    np.testing.assert_array_equal(rgba[0, 0], [0, 0, 0, 1])  # (h=10, α̃=0.1)
    expected = matplotlib.colormaps["viridis"](norm(0.18))  # (h=1000, α̃=10): i = 8
    np.testing.assert_allclose(rgba[2, 2], expected)


def test_figures_without_their_data_are_skipped_with_a_reason(tmp_path):
    synthetic_campaign(tmp_path, train_sizes=(512,), seeds=1, with_outputs=False)
    outcomes = {o.name: o for o in plot_campaign(str(tmp_path), formats=("png",))}
    skipped = {name for name, o in outcomes.items() if o.skipped}
    assert skipped == {
        "phase_diagram",
        "fluctuations",
        "h0_spectrum",
        "regimes",
        "learning_curves",
        "kernel_pca",
        "weight_scatter",
    }
    assert "kpca_" in outcomes["kernel_pca"].skipped
    assert "predictions" in outcomes["phase_diagram"].skipped
    assert "train_size" in outcomes["learning_curves"].skipped
    written = sorted(os.listdir(tmp_path / "figures"))
    assert written == sorted(f"{name}.png" for name in set(FIGURES) - skipped)


def test_plot_before_any_cell_finished_skips_every_figure(tmp_path):
    pq.write_table(
        pa.Table.from_pandas(pd.DataFrame({"cell_id": ["queued-1"]})), tmp_path / "manifest.parquet"
    )
    outcomes = plot_campaign(str(tmp_path))
    assert [o.skipped for o in outcomes] == ["no done cells yet"] * len(FIGURES)
    assert not (tmp_path / "figures").exists()


def test_synthetic_campaign_has_the_constructed_phase_diagram(plotted):
    """Guards the fixture itself: jamming where N = 2P, crossover near α̃ = 1."""
    root, _ = plotted
    boundaries = pd.read_parquet(root / "boundaries")
    jam = boundaries.loc[
        (boundaries["boundary"] == "n_star") & (boundaries["budget_steps"] == 10_000)
    ]
    ratio = jam["value"] / (2 * jam["train_size"])
    assert ((ratio > 0.5) & (ratio < 2.5)).all()
    cross = boundaries.loc[(boundaries["boundary"] == "crossover") & (boundaries["level"] == 1.0)]
    assert (cross["status"] == "bracketed").all()
    ensembles = ensemble_table(pd.read_parquet(root / "cells"), None)
    assert len(ensembles) == len(WIDTHS) * len(ALPHAS) * 3


def test_figures_use_fresh_aggregates_when_cells_finished_after_aggregate(tmp_path):
    synthetic_campaign(tmp_path, train_sizes=(128,), seeds=2)
    aggregate_campaign(str(tmp_path))
    cells = pd.read_parquet(tmp_path / "cells")
    late = cells.loc[cells["status"] == "done"].head(1).assign(cell_id="late-1", seed=5)
    pq.write_table(
        pa.Table.from_pandas(late, preserve_index=False), tmp_path / "cells" / "late.parquet"
    )
    data = load_campaign_data(str(tmp_path))
    assert data.ensembles["n_seeds"].sum() == (cells["status"] == "done").sum() + 1


def test_cli_aggregate_and_plot(plotted):
    from typer.testing import CliRunner

    from pipeline.cli import app

    root, _ = plotted
    runner = CliRunner()
    result = runner.invoke(app, ["aggregate", str(root)])
    assert result.exit_code == 0 and "used 270 done cells (skipped 1 failed" in result.stdout
    result = runner.invoke(app, ["plot", str(root), "--format", "pdf", "--figure", "regimes"])
    assert result.exit_code == 0 and result.stdout.startswith("regimes: ")
    assert b"/Subject" in (root / "figures" / "regimes.pdf").read_bytes()  # the caption
    missing = runner.invoke(app, ["plot", str(root / "nowhere")])
    assert missing.exit_code == 2 and "no campaign" in missing.output


def test_every_figure_carries_the_campaign_and_its_budget_in_a_caption(plotted):
    """In the drawn figure (under the axes) and in each PNG's Description."""
    from PIL import Image

    from pipeline.drivers.plot import draw_campaign
    from pipeline.figures.caption import caption_of

    root, outcomes = plotted
    expected = (
        f"campaign {root.name} · budget 10,000 steps · integrator euler-heun · "
        "loss softhinge (β = 20)"
    )
    for name in outcomes:
        with Image.open(root / "figures" / f"{name}.png") as png:
            assert png.text["Description"] == expected, name
    [drawn] = draw_campaign(str(root), ["fluctuations"])
    assert caption_of(drawn.figure) == expected
    texts = [t.get_text() for t in drawn.figure.texts]
    assert texts == [expected]  # one line: it fits the figure's width
