"""Claims about jamming and the over-parametrised phase past it (reproduction.claims has the rest).

The fitted fraction along h, N*(P) for random labels vs real data, N_Δ/N at jamming,
double descent and its removal by ensembling, and the N^{-1/4} fluctuations. Same contract
as reproduction.claims: CampaignData in, a `Claim` with numbers and a verdict out, pure.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.analysis.ensembles import fit_log_log
from pipeline.figures import CampaignData
from reproduction.claims import (
    NOT,
    PARTLY,
    REPRODUCED,
    Claim,
    combine,
    g,
    jamming_widths,
    largest_budget,
    monotone_within,
    narrowest_jamming,
    not_run,
)

# --- 2. jamming: fitted fraction, N*(P), N_Δ/N ------------------------------------------

JAMMING_PAPER = (
    "The boundary of the black (not fitted) region of Fig. 4 is a jamming "
    "transition: below N*, gradient descent gets stuck at a positive loss; above "
    "it the loss reaches zero (Sec. 2)."
)
JAMMING_RULE = (
    "Along every line of fixed (α̃, P), the fraction of seeds that fit must rise "
    "from ≤ 1/4 at the smallest width to 1 at the widest, never dropping by more "
    "than one seed's share below its running maximum: reproduced. Rising but "
    "with larger drops, or not reaching both ends: partly. Otherwise: not."
)


def fitted_fraction_lines(data: CampaignData) -> pd.DataFrame:
    """Per (α̃, P): fitted fraction at the smallest and widest width, monotone flag, h*."""
    rows = []
    h_star = jamming_widths(data).set_index(["alpha_tilde", "train_size"])["value"]
    for (alpha, p), line in data.ensembles.groupby(["alpha_tilde", "train_size"]):
        # a grid point whose seeds all stalled has no fitted fraction: neither end of the line
        line = line.loc[line["fitted_fraction"].notna()].sort_values("width")
        if line.empty:
            continue
        fraction = line["fitted_fraction"].to_numpy(float)
        share = 1.0 / line["n_seeds"].max()
        rows.append(
            {
                "alpha_tilde": alpha,
                "train_size": p,
                "first": fraction[0],
                "last": fraction[-1],
                "monotone": monotone_within(fraction, share),
                "h_star": h_star.get((alpha, p), math.nan),
            }
        )
    return pd.DataFrame(rows)


def jamming_transition(datasets: dict[str, CampaignData | None]) -> Claim:
    """Claim 2a: the fitted fraction jumps from 0 to 1 as h grows."""
    title = "Jamming: the fitted fraction goes from 0 to 1 as h grows"
    present = {k: v for k, v in datasets.items() if v is not None}
    if not present:
        return not_run("jamming", title, JAMMING_PAPER, JAMMING_RULE, " / ".join(datasets))
    lines, verdicts, numbers = [], [], {}
    for label, data in present.items():
        table = fitted_fraction_lines(data)
        rises = bool(((table["first"] <= 0.25) & (table["last"] >= 1.0)).all())
        monotone = bool(table["monotone"].all())
        verdicts.append(
            REPRODUCED
            if rises and monotone
            else PARTLY
            if (table["last"] > table["first"]).all()
            else NOT
        )
        numbers[label] = table.to_dict("list")
        stars = ", ".join(f"{_line_name(r)}: {g(r.h_star)}" for r in table.itertuples())
        lines.append(
            f"{label}: {int((table['first'] <= 0.25).sum())}/{len(table)} lines start "
            f"≤ 1/4 fitted, {int((table['last'] >= 1).sum())}/{len(table)} end fully "
            f"fitted, {int(table['monotone'].sum())}/{len(table)} monotone within a "
            f"seed; h* = {stars}"
        )
    return Claim(
        "jamming",
        title,
        JAMMING_PAPER,
        "<br>".join(lines),
        combine(verdicts),
        JAMMING_RULE,
        numbers,
    )


def _line_name(row) -> str:
    return f"α̃ = {g(row.alpha_tilde)}, P = {int(row.train_size)}"


N_STAR_PAPER = (
    "The location of the jamming transition N*(P) is linear in P for random data "
    "but sub-linear for structured data (Sec. 2, Fig. 7A)."
)
N_STAR_RULE = (
    "Fit N* ∝ P^γ through the located N*(P) at the full budget: reproduced if "
    "γ_random is in [0.8, 1.25] and γ_real ≤ γ_random − 0.2; partly if "
    "γ_real < γ_random but one condition fails; otherwise not reproduced."
)


def n_star_points(data: CampaignData) -> pd.DataFrame:
    """N*(P) at the full budget: train_size, value (N*), lower, upper, status."""
    rows = data.boundaries
    rows = largest_budget(rows.loc[rows["boundary"] == "n_star"])
    return rows[["train_size", "value", "lower", "upper", "status"]].sort_values("train_size")


def n_star(random: CampaignData | None, real: CampaignData | None, real_label: str) -> Claim:
    """Claim 2b: N*(P) linear for random labels, sub-linear for real data."""
    title = "Jamming: N*(P) linear in P for random labels, sub-linear for real data"
    if random is None or real is None:
        missing = "jamming_random" if random is None else "jamming_mnist"
        return not_run("n_star", title, N_STAR_PAPER, N_STAR_RULE, missing)
    numbers, lines = {}, []
    for label, data in (("random labels", random), (real_label, real)):
        points = n_star_points(data)
        fit = fit_log_log(points["train_size"], points["value"])
        numbers[label] = {
            "train_size": points["train_size"].tolist(),
            "n_star": points["value"].tolist(),
            "gamma": fit.slope,
            "gamma_error": fit.slope_error,
        }
        listed = ", ".join(
            f"P = {int(p)}: {g(v)}" for p, v in zip(points["train_size"], points["value"])
        )
        ratio = float(np.nanmedian(points["value"] / points["train_size"]))
        lines.append(
            f"{label}: N* = {listed}; γ = {g(fit.slope)} ± {g(fit.slope_error)}, "
            f"N*/P = {g(ratio)} (median)"
        )
    gamma_random, gamma_real = numbers["random labels"]["gamma"], numbers[real_label]["gamma"]
    linear = 0.8 <= gamma_random <= 1.25
    sublinear = gamma_real <= gamma_random - 0.2
    verdict = REPRODUCED if linear and sublinear else PARTLY if gamma_real < gamma_random else NOT
    return Claim("n_star", title, N_STAR_PAPER, "<br>".join(lines), verdict, N_STAR_RULE, numbers)


HYPOSTATIC_PAPER = (
    "N_Δ/N jumps from zero to a value strictly smaller than one at jamming, "
    "where the loss becomes positive, precisely as ellipses do: jamming is "
    "hypostatic (Sec. 2, Fig. 7B)."
)
HYPOSTATIC_RULE = (
    "On each line of fixed (α̃, P), take the widest width where fewer than half "
    "the seeds fit (the jammed side of h*) and its unfitted cells' N_Δ/N; the "
    "fitted cells just above have N_Δ = 0. Reproduced if every such value lies "
    "in (0, 1); partly if the median does but some cell reaches 1; otherwise "
    "not reproduced."
)


def unsatisfied_at_jamming(data: CampaignData) -> pd.DataFrame:
    """Unfitted cells of the widest jammed width of each (α̃, P): width, N_Δ, N, N_Δ/N, loss.
    Stalled cells are left out: not fitted, but not jammed either."""
    ens, cells = data.ensembles, data.unstalled_cells
    picked = []
    for (alpha, p), line in ens.groupby(["alpha_tilde", "train_size"]):
        jammed = line.loc[line["fitted_fraction"] < 0.5]
        if jammed.empty or jammed["width"].max() == line["width"].max():
            continue  # no jammed width, or no fitted width above it: h* not bracketed
        width = jammed["width"].max()
        at = cells.loc[
            (cells["alpha_tilde"] == alpha)
            & (cells["train_size"] == p)
            & (cells["width"] == width)
            & ~cells["fitted"].astype(bool)
        ]
        picked.append(at.assign(ratio=at["n_unsatisfied"] / at["n_params"]))
    if not picked:
        return pd.DataFrame(
            columns=[
                "alpha_tilde",
                "train_size",
                "width",
                "n_unsatisfied",
                "n_params",
                "ratio",
                "train_loss",
            ]
        )
    return pd.concat(picked)[
        ["alpha_tilde", "train_size", "width", "n_unsatisfied", "n_params", "ratio", "train_loss"]
    ].reset_index(drop=True)


def hypostatic(datasets: dict[str, CampaignData | None]) -> Claim:
    """Claim 2c: N_Δ/N at jamming strictly between 0 and 1."""
    title = "Jamming is hypostatic: N_Δ/N at jamming strictly below 1"
    present = {k: v for k, v in datasets.items() if v is not None}
    if not present:
        return not_run("hypostatic", title, HYPOSTATIC_PAPER, HYPOSTATIC_RULE, " / ".join(datasets))
    tables = {k: unsatisfied_at_jamming(v) for k, v in present.items()}
    ratios = np.concatenate([t["ratio"].to_numpy(float) for t in tables.values()])
    lines = [
        f"{k}: N_Δ/N = {g(t['ratio'].min())} … {g(t['ratio'].max())} (median "
        f"{g(t['ratio'].median())}) over {len(t)} cells at "
        f"{t.groupby(['alpha_tilde', 'train_size']).ngroups} lines, final loss "
        f"{g(t['train_loss'].min())} … {g(t['train_loss'].max())}"
        for k, t in tables.items()
        if len(t)
    ]
    if len(ratios) == 0:
        return Claim(
            "hypostatic", title, HYPOSTATIC_PAPER, "no line brackets h*", NOT, HYPOSTATIC_RULE
        )
    inside = (ratios > 0) & (ratios < 1)
    verdict = REPRODUCED if inside.all() else PARTLY if 0 < np.median(ratios) < 1 else NOT
    numbers = {k: t.to_dict("list") for k, t in tables.items()}
    return Claim(
        "hypostatic", title, HYPOSTATIC_PAPER, "<br>".join(lines), verdict, HYPOSTATIC_RULE, numbers
    )


# --- 3. double descent -----------------------------------------------------------------

DOUBLE_DESCENT_PAPER = (
    "The test error of single nets displays a peak (a cusp) at the jamming "
    "transition, whatever α̃, and the peak vanishes when the ensemble "
    "average over initialisations is taken (Sec. 1, Fig. 5)."
)
DOUBLE_DESCENT_RULE = (
    "Per α̃ with h* located, let h_J be the grid width nearest h*. Peak: "
    "the single-net error ⟨ε(f)⟩ has a local maximum (above both neighbouring "
    "widths) within one grid step of h_J, above its value at the widest net. "
    "Removed: at that width ε(⟨f⟩) < ⟨ε(f)⟩ and the ensemble's excess over "
    "its widest-net value is at most half the single nets'. Reproduced if "
    "both hold at most α̃; partly if the ensemble beats single nets at jamming "
    "at most α̃ but the peak is not there; otherwise not reproduced."
)


def local_maxima(values: np.ndarray) -> list[int]:
    """Indices i of interior points strictly above both neighbours."""
    return [
        i
        for i in range(1, len(values) - 1)
        if values[i] > values[i - 1] and values[i] > values[i + 1]
    ]


def double_descent_lines(data: CampaignData) -> pd.DataFrame:
    """Per α̃ (largest P): h*, h_J, the peak width and errors at h_J and the widest net."""
    ens = data.ensembles.loc[data.ensembles["train_size"] == data.ensembles["train_size"].max()]
    h_star = jamming_widths(data).set_index("alpha_tilde")["value"]
    rows = []
    for alpha, line in ens.groupby("alpha_tilde"):
        line = line.sort_values("width").reset_index(drop=True)
        star = h_star.get(alpha, math.nan)
        if not np.isfinite(star):
            continue
        j = int(np.argmin(np.abs(np.log(line["width"]) - math.log(star))))
        single, ensemble = line["mean_test_error"], line["ensemble_test_error"]
        maxima = local_maxima(single.to_numpy(float))
        peak = (
            min(maxima, key=lambda i: abs(i - j))
            if maxima
            else int(single.loc[line["width"] >= line.loc[j, "width"] / 2].idxmax())
        )
        excess_single = single[peak] - single.iloc[-1]
        excess_ensemble = ensemble[peak] - ensemble.iloc[-1]
        rows.append(
            {
                "alpha_tilde": alpha,
                "h_star": star,
                "h_jamming": line.loc[j, "width"],
                "h_peak": line.loc[peak, "width"],
                "peak_at_jamming": bool(maxima) and abs(peak - j) <= 1,
                "single_at_peak": single[peak],
                "ensemble_at_peak": ensemble[peak],
                "single_widest": single.iloc[-1],
                "ensemble_widest": ensemble.iloc[-1],
                "excess_single": excess_single,
                "excess_ensemble": excess_ensemble,
            }
        )
    return pd.DataFrame(rows)


def double_descent(data: CampaignData | None, label: str) -> Claim:
    """Claim 3 on one campaign (the widths must straddle jamming)."""
    title = "Double descent: single-net error peaks at jamming, the ensemble average removes it"
    if data is None:
        return not_run("double_descent", title, DOUBLE_DESCENT_PAPER, DOUBLE_DESCENT_RULE, label)
    table = double_descent_lines(data)
    if table.empty:
        return Claim(
            "double_descent",
            title,
            DOUBLE_DESCENT_PAPER,
            "h* not located at any α̃",
            NOT,
            DOUBLE_DESCENT_RULE,
        )
    peaked = table["peak_at_jamming"] & (table["excess_single"] > 0)
    below = table["ensemble_at_peak"] < table["single_at_peak"]
    removed = below & (table["excess_ensemble"] <= 0.5 * table["excess_single"])
    majority = len(table) / 2
    verdict = (
        REPRODUCED
        if (peaked & removed).sum() > majority
        else PARTLY
        if below.sum() > majority
        else NOT
    )
    lines = [
        f"α̃ = {g(r.alpha_tilde)}: h* = {g(r.h_star)}, single-net peak at h = {r.h_peak}: "
        f"⟨ε(f)⟩ = {g(r.single_at_peak)} vs ε(⟨f⟩) = {g(r.ensemble_at_peak)}; widest net "
        f"{g(r.single_widest)} vs {g(r.ensemble_widest)}"
        for r in table.itertuples()
    ]
    lines.append(
        f"{label}: a peak within one grid step of h* at {int(peaked.sum())}/{len(table)} "
        f"α̃; ensemble below single nets there at {int(below.sum())}/{len(table)}, "
        f"its excess at most half the single nets' at {int(removed.sum())}/{len(table)}"
    )
    return Claim(
        "double_descent",
        title,
        DOUBLE_DESCENT_PAPER,
        "<br>".join(lines),
        verdict,
        DOUBLE_DESCENT_RULE,
        table.to_dict("list"),
    )


# --- 4. fluctuations -------------------------------------------------------------------

FLUCTUATIONS_PAPER = (
    "Past jamming, the fluctuations of the learnt function induced by the "
    "initialisation decay as ‖f_N − ⟨f_N⟩‖ ~ N^{-1/4}, in the lazy and in the "
    "feature regime (Sec. 3, Fig. 7D)."
)
FLUCTUATIONS_RULE = (
    "Per α̃, fit log ‖f − ⟨f⟩‖ against log N over the widths h ≥ 2 h* (h* "
    "the narrowest jamming width over α̃) where at least half the seeds fit "
    "(at least 3 widths). Reproduced if the median slope over α̃ "
    "is within ±0.1 of −1/4; partly if it is negative (decay) but farther; "
    "otherwise not reproduced."
)


def fluctuation_slopes(data: CampaignData) -> pd.DataFrame:
    """Per α̃ (largest P): the fitted slope of fluctuation vs N over fitted widths past 2 h*."""
    ens = data.ensembles.loc[data.ensembles["train_size"] == data.ensembles["train_size"].max()]
    past = ens["width"] >= 2 * narrowest_jamming(data)
    fitted = ens.loc[(ens["fitted_fraction"] >= 0.5) & past]
    rows = []
    for alpha, past in fitted.groupby("alpha_tilde"):
        fit = fit_log_log(past["n_params"], past["fluctuation"])
        if fit.n_points >= 3:
            rows.append(
                {
                    "alpha_tilde": alpha,
                    "slope": fit.slope,
                    "slope_error": fit.slope_error,
                    "n_min": past["n_params"].min(),
                    "n_max": past["n_params"].max(),
                    "n_points": fit.n_points,
                }
            )
    return pd.DataFrame(rows)


def fluctuations(data: CampaignData | None, label: str) -> Claim:
    title = "Fluctuations ‖f − ⟨f⟩‖ decay with N (slope vs −1/4)"
    if data is None:
        return not_run("fluctuations", title, FLUCTUATIONS_PAPER, FLUCTUATIONS_RULE, label)
    table = fluctuation_slopes(data)
    if table.empty:
        return Claim(
            "fluctuations",
            title,
            FLUCTUATIONS_PAPER,
            "fewer than 3 fitted widths past 2 h* at every α̃",
            NOT,
            FLUCTUATIONS_RULE,
        )
    median = float(table["slope"].median())
    verdict = REPRODUCED if abs(median + 0.25) <= 0.1 else PARTLY if median < 0 else NOT
    lines = [
        f"α̃ = {g(r.alpha_tilde)}: slope {g(r.slope)} ± {g(r.slope_error)} over N = "
        f"{int(r.n_min)} … {int(r.n_max)} ({r.n_points} widths)"
        for r in table.itertuples()
    ]
    lines.append(f"{label}: median slope {g(median)} (paper: −0.25)")
    return Claim(
        "fluctuations",
        title,
        FLUCTUATIONS_PAPER,
        "<br>".join(lines),
        verdict,
        FLUCTUATIONS_RULE,
        {**table.to_dict("list"), "median_slope": median},
    )
