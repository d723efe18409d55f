"""The feature claims' rules (reproduction.claims_features) on constructed tables: Λ ~ √P,
lazy training on compressed data ≈ feature learning, kernel PCA informative after feature
learning, a CNN beating its lazy limit; each passes, fails and is "not resolved" where it
must. No training."""

from __future__ import annotations

import pandas as pd

from pipeline.figures import CampaignData
from reproduction import claims_features as cf
from reproduction.claims import NOT, NOT_RESOLVED, NOT_RUN, PARTLY, REPRODUCED

WOBBLE = [0.95, 1.05, 1.0]  # three seeds


def aligned(train_sizes: list[int], exponent: float, fitted: bool = True) -> CampaignData:
    """Feature end (α̃ = 0.01) with final Λ = 0.3 P^exponent · wobble, lazy end (α̃ = 100)
    with Λ ≈ 1; a measurements trace of two checkpoints per cell (the last one counts)."""
    cells, trace = [], []
    for p in train_sizes:
        for alpha in (0.01, 100.0):
            for seed, w in enumerate(WOBBLE):
                cell_id = f"p{p}a{alpha}s{seed}"
                final = 0.3 * p**exponent * w if alpha < 1 else w
                cells.append(
                    dict(
                        cell_id=cell_id,
                        alpha_tilde=alpha,
                        width=64,
                        train_size=p,
                        seed=seed,
                        fitted=fitted,
                        stop_reason="fitted" if fitted else "max_steps",
                    )
                )
                trace += [
                    dict(cell_id=cell_id, flow_time=1.0, weight_alignment=1.0),
                    dict(cell_id=cell_id, flow_time=9.0, weight_alignment=final),
                ]
    return CampaignData(
        pd.DataFrame(cells), pd.DataFrame(), pd.DataFrame(), measurements=pd.DataFrame(trace)
    )


def test_alignment_passes_on_a_square_root_over_more_than_a_decade():
    claim = cf.alignment(aligned([128, 512, 2048], 0.5), "x")
    assert claim.verdict == REPRODUCED, claim.measured
    assert abs(claim.numbers["slope"] - 0.5) < 0.05 and claim.numbers["used"] == 9


def test_alignment_fails_on_a_flat_or_linear_growth():
    assert cf.alignment(aligned([128, 512, 2048], 0.0), "x").verdict == NOT
    assert cf.alignment(aligned([128, 512, 2048], 1.0), "x").verdict == NOT


def test_alignment_is_not_resolved_on_a_short_range_or_on_unfinished_nets():
    assert cf.alignment(aligned([256, 512, 1024], 0.5), "x").verdict == NOT_RESOLVED
    unfinished = cf.alignment(aligned([128, 512, 2048], 0.5, fitted=False), "x")
    assert unfinished.verdict == NOT_RESOLVED and unfinished.numbers["used"] == 0
    assert cf.alignment(None, "features_alignment").verdict == NOT_RUN


def errors_campaign(groups: dict[tuple[float, float], list[float]], spread: float) -> CampaignData:
    """Cells at P = 256, 1024: per (α̃, perpendicular_scale), the mean test error at each P
    (listed), three seeds at ± spread."""
    cells = []
    for (alpha, scale), means in groups.items():
        for p, mean in zip((256, 1024), means):
            for seed, offset in enumerate((-spread, 0.0, spread)):
                cells.append(
                    dict(
                        cell_id=f"a{alpha}c{scale}p{p}s{seed}",
                        alpha_tilde=alpha,
                        perpendicular_scale=scale,
                        width=64,
                        train_size=p,
                        seed=seed,
                        test_error=mean + offset,
                        stop_reason="fitted",
                    )
                )
    return CampaignData(pd.DataFrame(cells), pd.DataFrame(), pd.DataFrame())


FEATURE, LAZY = (0.03, 1.0), (100.0, 1.0)
SQUEEZED = (100.0, 4.0)


def test_compressed_lazy_passes_when_it_matches_feature_learning():
    data = errors_campaign(
        {FEATURE: [0.10, 0.05], LAZY: [0.20, 0.12], SQUEEZED: [0.105, 0.052]}, 0.005
    )
    claim = cf.compressed(data, None, "x")
    assert claim.verdict == REPRODUCED, claim.measured
    assert claim.numbers["reference"] == "the compressed campaign"


def test_compressed_lazy_fails_when_it_stays_lazy():
    data = errors_campaign(
        {FEATURE: [0.10, 0.05], LAZY: [0.20, 0.12], SQUEEZED: [0.19, 0.12]}, 0.005
    )
    assert cf.compressed(data, None, "x").verdict == NOT


def test_compressed_lazy_reads_the_stripe_curves_as_reference_and_is_not_resolved_on_a_tie():
    squeezed = errors_campaign({SQUEEZED: [0.10, 0.05]}, 0.005)
    reference = errors_campaign({FEATURE: [0.10, 0.05], LAZY: [0.105, 0.052]}, 0.005)
    claim = cf.compressed(squeezed, reference, "x")
    assert claim.verdict == NOT_RESOLVED  # lazy ≈ feature: nothing to tell apart
    assert claim.numbers["reference"] == "the stripe learning curves"
    better = errors_campaign({SQUEEZED: [0.05, 0.02]}, 0.005)
    reference = errors_campaign({FEATURE: [0.10, 0.05], LAZY: [0.20, 0.12]}, 0.005)
    assert cf.compressed(better, reference, "x").verdict == PARTLY  # better than feature


def kpca_campaign(feature_change: float, lazy_change: float, fitted: bool = True) -> CampaignData:
    """Four cells per end; the top-10 mutual information starts at 0.1 bits and changes by
    the given amount (± 0.02 between cells); ``fitted`` False: all stopped by the budget."""
    cells, kernels = [], []
    for alpha, change in ((0.01, feature_change), (100.0, lazy_change)):
        for seed, offset in enumerate((-0.02, 0.02, -0.01, 0.01)):
            cell_id = f"a{alpha}s{seed}"
            reason = "fitted" if fitted else "max_steps"
            cells.append(
                dict(cell_id=cell_id, alpha_tilde=alpha, stop_reason=reason, fitted=fitted)
            )
            kernels.append(
                dict(
                    cell_id=cell_id,
                    kpca_mutual_information_initial=[0.1] * 20,
                    kpca_mutual_information_final=[0.1 + change + offset] * 20,
                    kpca_label_projection_initial=[0.01] * 20,
                    kpca_label_projection_final=[0.05] * 20,
                )
            )
    return CampaignData(pd.DataFrame(cells), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(kernels))


def test_kpca_passes_when_feature_learning_makes_the_top_eigenvectors_informative():
    claim = cf.kpca({"stripe": kpca_campaign(0.5, 0.0), "MNIST CNN": None})
    assert claim.verdict == REPRODUCED, claim.measured
    assert abs(claim.numbers["stripe"]["feature"]["mi_change"] - 0.5) < 1e-9


def test_kpca_fails_or_is_not_resolved_otherwise():
    assert cf.kpca({"stripe": kpca_campaign(-0.3, 0.0)}).verdict == NOT
    assert cf.kpca({"stripe": kpca_campaign(0.5, 0.9)}).verdict == NOT  # lazy gains more
    assert cf.kpca({"stripe": kpca_campaign(0.5, 0.5)}).verdict == NOT_RESOLVED  # as much
    assert cf.kpca({"stripe": kpca_campaign(0.01, 0.0)}).verdict == NOT_RESOLVED
    assert cf.kpca({"stripe": None, "MNIST CNN": None}).verdict == NOT_RUN


def test_kpca_counts_only_fitted_nets():
    """The same large change on nets the budget stopped decides nothing."""
    claim = cf.kpca({"stripe": kpca_campaign(0.5, 0.0, fitted=False)})
    assert claim.verdict == NOT_RESOLVED
    assert claim.numbers["stripe"]["unfitted"] == 8
    assert "8 unfitted left out" in claim.measured


def cnn_campaign(
    feature: float, lazy: float, lazy_change: float = 0.01, fitted: float = 1.0
) -> CampaignData:
    ensembles = pd.DataFrame(
        {
            "width": 8,
            "train_size": 128,
            "alpha_tilde": [0.01, 1.0, 1e4],
            "ensemble_test_error": [feature, (feature + lazy) / 2, lazy],
            "mean_test_error": [feature + 0.01, (feature + lazy) / 2, lazy + 0.01],
            "ntk_change": [30.0, 1.0, lazy_change],
            "fitted_fraction": [fitted, 1.0, 1.0],
        }
    )
    cells = pd.DataFrame({"test_size": [2000], "arch": ["cnn"]})
    return CampaignData(cells, ensembles, pd.DataFrame())


def test_cnn_rule_passes_fails_and_needs_a_lazy_limit():
    """s = √2 · √(ε(1−ε)/2000) ≈ 0.0083 at ε ≈ 0.075."""
    assert cf.cnn(cnn_campaign(0.05, 0.10), "x").verdict == REPRODUCED
    assert cf.cnn(cnn_campaign(0.10, 0.05), "x").verdict == NOT
    assert cf.cnn(cnn_campaign(0.07, 0.08), "x").verdict == NOT_RESOLVED
    assert cf.cnn(cnn_campaign(0.05, 0.10, lazy_change=0.5), "x").verdict == NOT_RESOLVED


def test_cnn_rule_needs_finished_nets():
    """Feature nets the budget stopped (fitted fraction 1/4) decide nothing, either way."""
    for feature, lazy in ((0.05, 0.10), (0.10, 0.05)):
        claim = cf.cnn(cnn_campaign(feature, lazy, fitted=0.25), "x")
        assert claim.verdict == NOT_RESOLVED
        assert "had not finished" in claim.measured
