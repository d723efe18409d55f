"""The campaign specs of issue 14 (Sec. 5: Figs. 8 right, 9, 10) parse, hold the settings
their figure needs, and the paper-scale headers quote the estimate their formula gives."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from pipeline.spec.campaign import load_campaign

REPO = Path(__file__).resolve().parents[2]
CPU_SCALE = sorted((REPO / "campaigns" / "features").glob("*.toml"))


@pytest.mark.parametrize("path", CPU_SCALE, ids=lambda p: p.stem)
def test_cpu_scale_feature_campaigns_parse_and_quote_their_size(path):
    spec = load_campaign(path, check_data=False)
    assert f"= {spec.n_cells} cells" in path.read_text()
    assert spec.observables.ntk and spec.observables.kernel_pca_rank > 0
    assert spec.observables.device == "cpu"


def test_each_figure_has_its_data_settings():
    specs = {p.stem: load_campaign(p, check_data=False) for p in CPU_SCALE}
    assert set(specs) == {"mnist_cnn", "stripe_compressed", "cylinder_alignment"}
    cnn = specs["mnist_cnn"]
    assert (cnn.model.arch, cnn.data.pca, cnn.data.dimension) == ("cnn", False, 784)
    assert specs["stripe_compressed"].data.perpendicular_scale > 1
    assert specs["cylinder_alignment"].data.parallel_dimension == 2


def _quoted_hours(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"≈ ([\d.]+) GPU-hours", text)]


def test_paper_stripe_features_header_follows_its_formula():
    path = REPO / "campaigns" / "paper_stripe_features.toml"
    spec, text = load_campaign(path, check_data=False), path.read_text()
    assert f"= {spec.n_cells} cells" in text
    d, h = spec.data.dimension, spec.grid.width[0]
    n = d * h + 2 * h
    members = spec.resources.bundle_size
    step = sum(members * 6 * p * n / 5e12 + 1e-3 for p in spec.grid.train_size)
    expected = [step * steps * 1.05 / 3600 for steps in (spec.flow.max_steps, 2e4)]
    assert f"= {n:,}" in text
    for quoted, value in zip(_quoted_hours(text), expected, strict=True):
        assert quoted == pytest.approx(value, rel=0.1)


def test_paper_mnist_cnn_header_follows_its_formula():
    path = REPO / "campaigns" / "paper_mnist_cnn.toml"
    spec, text = load_campaign(path, check_data=False), path.read_text()
    assert (spec.model.arch, spec.data.pca) == ("cnn", False)
    assert f"= {spec.n_cells} cells" in text
    w, depth, p = spec.grid.width[0], spec.model.depth, spec.data.train_size
    forward = 2 * 9 * 784 * (1 * w + (depth - 1) * w * w)
    step = 3 * forward * p / 1e13 + 1e-3
    expected = [spec.n_cells * step * steps * 1.05 / 3600 for steps in (spec.flow.max_steps, 1e4)]
    for quoted, value in zip(_quoted_hours(text), expected, strict=True):
        assert quoted == pytest.approx(value, rel=0.1)
    n_params = 9 * w + (depth - 1) * 9 * w * w + w
    assert f"N = 9·{w} + 2·9·{w}² + {w} = {n_params:,}" in text
    assert math.isclose(2**24 // n_params, 894)
