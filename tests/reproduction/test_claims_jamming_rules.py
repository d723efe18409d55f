"""The jamming-side rules of issue 15 on constructed tables: each must pass where the effect
is there at ≥ 3 standard errors and must fail (or say "not resolved") where it is not.
Hypostatic jamming (plateau criterion, N_Δ against min(N, P)), double descent (significant
peak located by a fit, removed by the ensemble), fluctuations (≥ 1 decade, with its error).
No training: every frame is written here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.figures import CampaignData
from reproduction import claims_jamming as cj
from reproduction.claims import NOT, NOT_RESOLVED, REPRODUCED

# --- hypostatic jamming -----------------------------------------------------------------


def jammed_line(
    n_unsatisfied: list[int], train_size: int, n_params: int, loss_drop: float = 0.0
) -> CampaignData:
    """One (α̃, P) line: width 4 jammed (one cell per N_Δ given, N = n_params) and width 8
    fitted. Each jammed cell's loss trace falls by the fraction `loss_drop` between flow
    time 5 and 10 (0: a plateau) at constant N_Δ."""
    cells, trace = [], []
    for seed, unsatisfied in enumerate(n_unsatisfied):
        for width, fitted in ((4, False), (8, True)):
            cell_id = f"h{width}s{seed}"
            loss = 0.0 if fitted else 0.2
            cells.append(
                dict(
                    cell_id=cell_id,
                    width=width,
                    alpha_tilde=1.0,
                    train_size=train_size,
                    seed=seed,
                    n_params=n_params * width // 4,
                    fitted=fitted,
                    stop_reason="fitted" if fitted else "max_steps",
                    n_unsatisfied=0 if fitted else unsatisfied,
                    train_loss=loss,
                    flow_time=10.0,
                    test_error=0.2,
                )
            )
            for t, factor in ((1.0, 2.0), (5.0, 1.0 + loss_drop), (10.0, 1.0)):
                trace.append(
                    dict(
                        cell_id=cell_id,
                        flow_time=t,
                        train_loss=loss * factor,
                        n_unsatisfied=0 if fitted else unsatisfied,
                    )
                )
    ensembles = pd.DataFrame(
        {
            "width": [4, 8],
            "alpha_tilde": 1.0,
            "train_size": train_size,
            "fitted_fraction": [0.0, 1.0],
        }
    )
    return CampaignData(
        pd.DataFrame(cells), ensembles, pd.DataFrame(), measurements=pd.DataFrame(trace)
    )


def test_hypostatic_passes_on_converged_nets_below_both_bounds():
    """P = 100 > N = 50: N_Δ/N ≈ 0.44 is below 1 and not by construction."""
    claim = cj.hypostatic({"x": jammed_line([20, 22, 25, 21], train_size=100, n_params=50)})
    assert claim.verdict == REPRODUCED, claim.measured
    assert claim.numbers["x"]["qualified"] == 4 and claim.numbers["x"]["automatic"] == 0


def test_hypostatic_fails_when_every_available_constraint_is_active():
    """Random labels jam at N > P: N_Δ = P gives N_Δ/N = 0.6 < 1, which the first pass's
    rule called hypostatic; N_Δ/min(N, P) = 1 is resolved as not hypostatic."""
    data = jammed_line([30, 30, 30], train_size=30, n_params=50)
    assert (cj.unsatisfied_at_jamming(data)["ratio"] < 1).all()  # the old rule's test
    claim = cj.hypostatic({"x": data})
    assert claim.verdict == NOT, claim.measured
    assert claim.numbers["x"]["automatic"] == 3


def test_hypostatic_fails_when_n_delta_exceeds_n():
    claim = cj.hypostatic({"x": jammed_line([55, 60, 58], train_size=100, n_params=50)})
    assert claim.verdict == NOT


def test_hypostatic_is_not_resolved_on_nets_still_descending_at_the_budget():
    data = jammed_line([20, 22, 25, 21], train_size=100, n_params=50, loss_drop=0.3)
    claim = cj.hypostatic({"x": data})
    assert claim.verdict == NOT_RESOLVED
    assert claim.numbers["x"]["qualified"] == 0
    assert claim.numbers["x"]["excluded"] == {"descending": 4}


def test_hypostatic_is_not_resolved_with_too_few_converged_nets():
    claim = cj.hypostatic({"x": jammed_line([20, 22], train_size=100, n_params=50)})
    assert claim.verdict == NOT_RESOLVED and claim.numbers["x"]["qualified"] == 2


def test_plateau_status_reads_the_last_half_of_the_flow_time():
    def trace(times, losses, unsatisfied):
        return pd.DataFrame(
            {"flow_time": times, "train_loss": losses, "n_unsatisfied": unsatisfied}
        )

    assert cj.plateau_status(trace([1, 5, 10], [0.5, 0.100, 0.1], [3, 3, 3])) == "plateau"
    assert cj.plateau_status(trace([1, 5, 10], [0.5, 0.102, 0.1], [3, 3, 3])) == "descending"
    assert cj.plateau_status(trace([1, 5, 10], [0.5, 0.1, 0.1], [4, 3, 3])) == "plateau"
    assert cj.plateau_status(trace([1, 5, 10], [0.5, 0.1, 0.1], [3, 4, 3])) == "n_delta_changing"
    # log-spaced checkpoints: the window starts at the last one at or before half the time
    assert cj.plateau_status(trace([1, 2, 10], [0.5, 0.1, 0.1], [3, 3, 3])) == "plateau"
    assert cj.plateau_status(trace([1, 2, 10], [0.5, 0.2, 0.1], [3, 3, 3])) == "descending"
    assert cj.plateau_status(trace([6, 10], [0.1, 0.1], [3, 3])) == "short_trace"
    assert cj.plateau_status(trace([1, 5, 10], [0.5, 0.1, 0.0], [3, 3, 0])) == "zero_loss"


# --- double descent ---------------------------------------------------------------------

WIDTHS = [4, 8, 16, 32, 64]
SEED_OFFSETS = [-0.01, 0.01, -0.005, 0.005, 0.0, 0.0]  # s.e. of a 6-seed mean ≈ 0.0029


def descent(
    single: list[float],
    ensemble: list[float],
    widths: list[int] = WIDTHS,
    spread: float = 1.0,
    h_star: float = 14.0,
    bracket: tuple[float, float] = (8.0, 16.0),
) -> CampaignData:
    """One α̃ line: per width 6 seeds whose test errors are single[i] + spread · offsets, the
    ensemble error given, n_test = 10,000, N = h² + 11 h, and a jamming h*."""
    n = [h * h + 11 * h for h in widths]
    cells = pd.DataFrame(
        [
            dict(
                cell_id=f"h{h}s{s}",
                width=h,
                alpha_tilde=1.0,
                train_size=100,
                seed=s,
                test_error=e + spread * off,
                test_size=10_000,
                stop_reason="fitted",
            )
            for h, e in zip(widths, single)
            for s, off in enumerate(SEED_OFFSETS)
        ]
    )
    ensembles = pd.DataFrame(
        {
            "width": widths,
            "alpha_tilde": 1.0,
            "train_size": 100,
            "n_params": n,
            "mean_test_error": single,
            "ensemble_test_error": ensemble,
            "fitted_fraction": 1.0,
        }
    )
    boundaries = pd.DataFrame(
        [
            dict(
                boundary="jamming",
                budget_steps=100.0,
                alpha_tilde=1.0,
                train_size=100,
                value=h_star,
                lower=bracket[0],
                upper=bracket[1],
                status="bracketed",
            )
        ]
    )
    return CampaignData(cells, ensembles, boundaries)


FLAT = [0.10] * 5
PEAKED = [0.15, 0.14, 0.20, 0.13, 0.11]


def test_double_descent_passes_on_a_significant_peak_at_n_star_that_the_ensemble_removes():
    claim = cj.double_descent(descent(PEAKED, FLAT), "x")
    assert claim.verdict == REPRODUCED, claim.measured
    row = claim.numbers
    assert row["h_peak"] == [16]
    n_star = math.exp(
        np.interp(math.log(14), np.log(WIDTHS), np.log([h * h + 11 * h for h in WIDTHS]))
    )
    assert math.isclose(row["n_star"][0], n_star)
    assert 152 < row["n_peak"][0] < 1376  # between the neighbours' N


def test_double_descent_is_not_resolved_on_a_bump_of_one_standard_error():
    """The first pass's rule took any local maximum within one grid step of h*."""
    bump = [0.15, 0.14, 0.145, 0.13, 0.11]
    claim = cj.double_descent(descent(bump, FLAT, spread=2.0), "x")
    assert claim.verdict == NOT_RESOLVED, claim.measured
    assert claim.numbers["why"] == ["peak under 3 s.e."]


def test_double_descent_fails_on_a_peak_far_from_n_star():
    widths = [4, 8, 16, 32, 64, 128]
    single = [0.15, 0.14, 0.13, 0.13, 0.20, 0.11]
    claim = cj.double_descent(descent(single, [0.1] * 6, widths=widths), "x")
    assert claim.verdict == NOT and claim.numbers["why"] == ["peak away from N*"]


def test_double_descent_fails_when_the_ensemble_keeps_the_peak():
    claim = cj.double_descent(descent(PEAKED, [0.14, 0.13, 0.19, 0.12, 0.10]), "x")
    assert claim.verdict == NOT and claim.numbers["why"] == ["the ensemble keeps the peak"]


def test_double_descent_fails_on_a_resolved_monotone_curve():
    claim = cj.double_descent(descent([0.20, 0.17, 0.14, 0.12, 0.11], FLAT), "x")
    assert claim.verdict == NOT and claim.numbers["why"] == ["no peak"]


# --- fluctuations -----------------------------------------------------------------------


def fluctuating(widths: list[int], slope: float, wobble: float = 0.0) -> CampaignData:
    """One α̃ line, fitted everywhere, fluctuation = 3 N^slope · (1 ± wobble), alternating."""
    n = np.array([h * h + 11 * h for h in widths], float)
    signs = np.array([(-1) ** i for i in range(len(widths))], float)
    ensembles = pd.DataFrame(
        {
            "width": widths,
            "alpha_tilde": 1.0,
            "train_size": 100,
            "n_params": n,
            "fitted_fraction": 1.0,
            "fluctuation": 3 * n**slope * (1 + wobble * signs),
        }
    )
    boundaries = pd.DataFrame(
        [
            dict(
                boundary="jamming",
                budget_steps=1.0,
                alpha_tilde=1.0,
                train_size=100,
                value=2.0,
                lower=1.0,
                upper=4.0,
                status="bracketed",
            )
        ]
    )
    return CampaignData(pd.DataFrame(), ensembles, boundaries)


def test_fluctuation_exponent_passes_over_more_than_a_decade():
    claim = cj.fluctuations(fluctuating([16, 32, 64, 128], -0.25, wobble=0.02), "x")
    assert claim.verdict == REPRODUCED, claim.measured
    assert claim.numbers["decades"][0] > 1.5 and claim.numbers["slope_error"][0] < 0.05


def test_fluctuation_exponent_fails_when_resolved_away_from_a_quarter():
    claim = cj.fluctuations(fluctuating([16, 32, 64, 128], -0.45, wobble=0.01), "x")
    assert claim.verdict == NOT, claim.measured


def test_fluctuation_exponent_is_not_resolved_under_a_decade():
    """Exactly −1/4 over 0.5 decade of N (the first pass fitted 0.9 decade)."""
    claim = cj.fluctuations(fluctuating([16, 24, 32], -0.25), "x")
    assert claim.verdict == NOT_RESOLVED and claim.numbers["decades"][0] < 1


def test_fluctuation_exponent_is_not_resolved_with_a_large_error():
    claim = cj.fluctuations(fluctuating([16, 32, 64, 128], -0.25, wobble=0.4), "x")
    assert claim.verdict == NOT_RESOLVED
    assert claim.numbers["slope_error"][0] > cj.MAX_SLOPE_ERROR


# --- N*(P) ----------------------------------------------------------------------------------


def fit(gamma: float, error: float, n: int = 4, decades: float = 1.2) -> dict:
    return {"gamma": gamma, "gamma_error": error, "n_points": n, "decades": decades}


def test_n_star_rule_passes_and_fails():
    assert cj.n_star_verdict(fit(1.0, 0.05), fit(0.45, 0.05)) == REPRODUCED
    assert cj.n_star_verdict(fit(1.0, 0.05), fit(0.45, 0.05, decades=0.9)) == NOT_RESOLVED
    assert cj.n_star_verdict(fit(1.0, 0.2), fit(0.6, 0.2)) == NOT_RESOLVED  # 1.4 s.e.
    assert cj.n_star_verdict(fit(0.5, 0.05), fit(1.0, 0.05)) == NOT
    assert cj.n_star_verdict(fit(1.6, 0.05), fit(0.5, 0.05)) == "partly"  # not linear
