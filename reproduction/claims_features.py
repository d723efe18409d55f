"""The paper's feature-learning claims (Sec. 4 (iii), Sec. 5; Figs. 8 right, 9, 10) measured
on the CPU-scale feature campaigns: Λ ~ √P, lazy training on Λ-compressed data ≈ feature
learning, the NTK's kernel PCA becoming informative of the labels, a CNN beating its lazy
limit. Same contract as reproduction.claims: CampaignData in (None: not run), a `Claim` out.

Campaigns read (file stems of campaigns/reproduce/, see report.evaluate): features_alignment
(measurements.weight_alignment), features_compressed (cells.perpendicular_scale, test_error;
stripe_curves as the feature/lazy reference), features_kpca and features_cnn
(kernels.kpca_mutual_information_*, kpca_label_projection_*), features_cnn
(ensembles.ensemble_test_error, ntk_change).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.figures import CampaignData
from reproduction.claims_stats import (
    SIGMAS,
    binomial_error,
    exponent_verdict,
    fit_exponent,
    mean_error,
    quadrature,
    seed_means,
    tally,
    verdict_of,
)
from reproduction.claims_verdicts import (
    NOT,
    NOT_RESOLVED,
    PARTLY,
    REPRODUCED,
    Claim,
    all_hold,
    combine,
    g,
    not_run,
)

# --- Λ ~ √P ------------------------------------------------------------------------------

ALIGNMENT_PAPER = (
    "In the feature learning regime the first-layer weights align with the informative "
    "direction: Λ ≡ W∥/W⊥ ~ √P, the finite training set limiting the denoising "
    "(Sec. 5, Fig. 9 left)."
)
ALIGNMENT_RULE = (
    "Final Λ (measurements.weight_alignment at each cell's last checkpoint) of the fitted "
    "cells at the smallest α̃ (feature end) and the widest width; fit log Λ against log P "
    "over those cells: the slope and its standard error. Not resolved with fewer than 3 "
    "cells, less than 1 decade of P, or an error above 1/6 (1/2 over 3); reproduced if "
    "|slope − 1/2| ≤ max(0.1, 3 s.e.) and the slope is ≥ 3 s.e. above 0 (Λ grows; else "
    "not resolved); otherwise not reproduced. The lazy end's Λ is "
    "quoted (≈ 1 expected), not tested."
)


def final_alignment(data: CampaignData) -> pd.DataFrame:
    """Per done, unstalled cell: its last finite weight_alignment, with alpha_tilde, width,
    train_size, seed and fitted."""
    measured = data.measurements
    columns = ["cell_id", "alpha_tilde", "width", "train_size", "seed", "fitted", "alignment"]
    if measured is None or "weight_alignment" not in measured:
        return pd.DataFrame(columns=columns)
    rows = measured.loc[np.isfinite(measured["weight_alignment"].astype(float))]
    last = rows.sort_values("flow_time").groupby("cell_id").tail(1)
    last = last[["cell_id", "weight_alignment"]].rename(columns={"weight_alignment": "alignment"})
    cells = data.unstalled_cells[
        ["cell_id", "alpha_tilde", "width", "train_size", "seed", "fitted"]
    ]
    return cells.merge(last, on="cell_id")[columns]


def alignment_numbers(data: CampaignData) -> dict:
    table = final_alignment(data)
    out: dict = {"cells": len(table), "verdict": NOT_RESOLVED}
    if table.empty:
        return out
    feature = table.loc[table["alpha_tilde"] == table["alpha_tilde"].min()]
    feature = feature.loc[feature["width"] == feature["width"].max()]
    used = feature.loc[feature["fitted"].astype(bool)]
    lazy = table.loc[table["alpha_tilde"] == table["alpha_tilde"].max()]
    if table["alpha_tilde"].nunique() < 2:
        lazy = lazy.iloc[0:0]  # one α̃: no lazy end to quote
    fit = fit_exponent(used["train_size"], used["alignment"])
    per_p = used.groupby("train_size")["alignment"].apply(
        lambda v: float(np.exp(np.mean(np.log(v))))
    )
    out.update(
        alpha_feature=float(feature["alpha_tilde"].iloc[0]),
        alpha_lazy=float(lazy["alpha_tilde"].iloc[0]) if len(lazy) else math.nan,
        width=float(feature["width"].iloc[0]),
        used=len(used),
        unfitted=len(feature) - len(used),
        train_size=per_p.index.tolist(),
        alignment=per_p.tolist(),
        lazy_alignment=float(np.exp(np.mean(np.log(lazy["alignment"].clip(lower=1e-300)))))
        if len(lazy)
        else math.nan,
        slope=fit.slope,
        slope_error=fit.error,
        decades=fit.decades,
        verdict=exponent_verdict(fit, 0.5, 0.1, 1.0, 0.5 / SIGMAS),
    )
    return out


def alignment(data: CampaignData | None, label: str) -> Claim:
    """Λ grows like √P at the feature end."""
    title = "Feature learning aligns the weights: Λ ~ √P (Fig. 9 left)"
    if data is None:
        return not_run("alignment", title, ALIGNMENT_PAPER, ALIGNMENT_RULE, label)
    r = alignment_numbers(data)
    if "slope" not in r:
        measured = f"{label}: no weight_alignment measured"
    else:
        curve = ", ".join(f"P = {int(p)}: {g(v)}" for p, v in zip(r["train_size"], r["alignment"]))
        measured = (
            f"{label}, h = {int(r['width'])}, α̃ = {g(r['alpha_feature'])}: Λ (geometric mean "
            f"over fitted seeds) = {curve or 'none'}; slope of log Λ vs log P = "
            f"{g(r['slope'])} ± {g(r['slope_error'])} over {g(r['decades'])} decades "
            f"({r['used']} fitted cells, {r['unfitted']} unfitted left out)"
            + (
                f"; lazy end (α̃ = {g(r['alpha_lazy'])}) Λ = {g(r['lazy_alignment'])}"
                if np.isfinite(r["alpha_lazy"])
                else ""
            )
        )
    return Claim("alignment", title, ALIGNMENT_PAPER, measured, r["verdict"], ALIGNMENT_RULE, r)


# --- lazy on compressed data ≈ feature learning ----------------------------------------

COMPRESSED_PAPER = (
    "Compressing the data in the uninformative directions by Λ, (x∥, x⊥/Λ), and "
    "learning them in the NTK regime gives very similar performance as learning the "
    "original data in the feature regime (Sec. 5, Fig. 9 right)."
)
COMPRESSED_RULE = (
    "Per P: the mean single-net test error over seeds, with its standard error, of lazy "
    "training on compressed data (cells with perpendicular_scale ≠ 1, at their largest "
    "α̃), of feature learning (perpendicular_scale = 1, smallest α̃) and of plain lazy "
    "training (perpendicular_scale = 1, largest α̃), the references from the compressed "
    "campaign itself when it has them, else from the stripe learning curves (widest "
    "width). A P counts only where plain lazy is worse than feature by ≥ 3 s.e. (else "
    "'like feature' cannot be told from 'like lazy': not resolved). There: reproduced if "
    "compressed is within 3 s.e. of feature and better than plain lazy by ≥ 3 s.e.; not "
    "reproduced if worse than feature by ≥ 3 s.e.; partly if better than feature by ≥ 3 "
    "s.e.; otherwise not resolved. The P combine as in claim 1."
)


def _scale(cells: pd.DataFrame) -> pd.Series:
    if "perpendicular_scale" not in cells:
        return pd.Series(1.0, index=cells.index)
    return cells["perpendicular_scale"].astype(float).fillna(1.0)


def compressed_numbers(compressed: CampaignData, reference: CampaignData | None) -> dict:
    cells = compressed.unstalled_cells
    squeezed = cells.loc[_scale(cells) != 1]
    plain = cells.loc[_scale(cells) == 1]
    source = "the compressed campaign"
    if plain["alpha_tilde"].nunique() < 2 and reference is not None:
        plain = reference.unstalled_cells
        plain = plain.loc[_scale(plain) == 1]
        source = "the stripe learning curves"
    out: dict = {"verdict": NOT_RESOLVED, "reference": source, "per_p": []}
    if squeezed.empty or plain["alpha_tilde"].nunique() < 2:
        out["why"] = "no compressed cells or no feature/lazy reference"
        return out
    squeezed = squeezed.loc[squeezed["alpha_tilde"] == squeezed["alpha_tilde"].max()]
    plain = plain.loc[plain["width"] == plain["width"].max()]
    ends = {
        "compressed": squeezed,
        "feature": plain.loc[plain["alpha_tilde"] == plain["alpha_tilde"].min()],
        "lazy": plain.loc[plain["alpha_tilde"] == plain["alpha_tilde"].max()],
    }
    means = {k: seed_means(v, ["train_size"]).set_index("train_size") for k, v in ends.items()}
    scales = squeezed.groupby("train_size").apply(lambda c: float(_scale(c).mean()))
    common = sorted(set.intersection(*(set(m.index) for m in means.values())))
    verdicts = []
    for p in common:
        c, f, lz = (means[k].loc[p] for k in ("compressed", "feature", "lazy"))
        gap = verdict_of(lz["mean"] - f["mean"], quadrature(lz["error"], f["error"]))
        off = c["mean"] - f["mean"]
        off_error = quadrature(c["error"], f["error"])
        gain = verdict_of(lz["mean"] - c["mean"], quadrature(lz["error"], c["error"]))
        if gap != REPRODUCED:
            v = NOT_RESOLVED
        elif abs(off) <= SIGMAS * off_error and gain == REPRODUCED:
            v = REPRODUCED
        elif verdict_of(off, off_error) == REPRODUCED:
            v = NOT
        elif verdict_of(-off, off_error) == REPRODUCED:
            v = PARTLY
        else:
            v = NOT_RESOLVED
        verdicts.append(v)
        out["per_p"].append(
            {
                "train_size": int(p),
                "scale": float(scales.get(p, math.nan)),
                **{f"{k}_error_rate": float(means[k].loc[p, "mean"]) for k in means},
                **{f"{k}_se": float(means[k].loc[p, "error"]) for k in means},
                "verdict": v,
            }
        )
    out["verdict"] = combine(verdicts) if verdicts else NOT_RESOLVED
    out["why"] = tally(verdicts) or "no P in common"
    return out


def compressed(
    compressed_data: CampaignData | None, reference: CampaignData | None, label: str
) -> Claim:
    """Lazy training on Λ-compressed stripe data performs like feature learning."""
    title = "Lazy training on Λ-compressed data performs like feature learning (Fig. 9 right)"
    if compressed_data is None:
        return not_run("compressed", title, COMPRESSED_PAPER, COMPRESSED_RULE, label)
    r = compressed_numbers(compressed_data, reference)
    rows = [
        f"P = {x['train_size']} (x⊥/{g(x['scale'])}): compressed lazy "
        f"{g(x['compressed_error_rate'])} ± {g(x['compressed_se'])}, feature "
        f"{g(x['feature_error_rate'])} ± {g(x['feature_se'])}, plain lazy "
        f"{g(x['lazy_error_rate'])} ± {g(x['lazy_se'])}: {x['verdict']}"
        for x in r["per_p"]
    ]
    measured = "<br>".join([f"{label} (references from {r['reference']}): {r['why']}", *rows])
    return Claim("compressed", title, COMPRESSED_PAPER, measured, r["verdict"], COMPRESSED_RULE, r)


# --- kernel PCA of the NTK -------------------------------------------------------------

KPCA_TOP = 10  # the top eigenvectors of the Gram matrix whose information is averaged
KPCA_PAPER = (
    "The mutual information between the top eigenvectors of the NTK's Gram matrix and the "
    "labels, and the labels' projection on them, get large after learning, for the stripe "
    "model (FC, one hidden layer) and for MNIST (CNN) (Sec. 5, Fig. 10)."
)
KPCA_RULE = (
    f"Per cell: the mean mutual information with the labels of the top {KPCA_TOP} "
    "eigenvectors of Θ (kernels.kpca_mutual_information_*), at initialisation and at the "
    "end; its change over the fitted cells (seeds, widths, P) of the smallest α̃ "
    "(feature) and of the largest (lazy), each with its standard error: a net stopped by "
    "its budget has not finished learning, so it does not count (the unfitted are "
    "quoted). Reproduced if the feature "
    "end's change is ≥ 3 s.e. above 0 and (when a lazy end exists) ≥ 3 s.e. above the "
    "lazy end's; not reproduced if either is ≥ 3 s.e. the other way; otherwise (or with "
    "fewer than 2 cells) not resolved. The label projection ω of the same eigenvectors "
    "is quoted. Data sets combine as in claim 1."
)


def _top(values, k: int = KPCA_TOP) -> float:
    if values is None or len(values) == 0:
        return math.nan
    return float(np.mean(np.asarray(values, float)[:k]))


def describe(cells: pd.DataFrame) -> str:
    """'mnist, cnn': the data set and architecture of a campaign's cells."""
    parts = [str(cells[c].iloc[0]) for c in ("dataset", "arch") if c in cells and len(cells)]
    return ", ".join(parts) or "?"


def kpca_numbers(data: CampaignData) -> dict:
    out: dict = {"verdict": NOT_RESOLVED, "cells": 0, "what": describe(data.cells)}
    kernels = data.kernels
    needed = [
        f"kpca_{q}_{w}"
        for q in ("mutual_information", "label_projection")
        for w in ("initial", "final")
    ]
    if kernels is None or not set(needed) <= set(kernels):
        return out
    rows = data.unstalled_cells[["cell_id", "alpha_tilde", "fitted"]].merge(
        kernels[["cell_id", *needed]]
    )
    for column in needed:
        rows[column] = rows[column].map(_top)
    rows = rows.dropna(subset=needed)
    fitted = rows["fitted"].astype(bool)
    out["unfitted"] = int((~fitted).sum())
    rows = rows.loc[fitted]
    out["cells"] = len(rows)
    if rows.empty:
        return out
    rows["mi_change"] = (
        rows["kpca_mutual_information_final"] - rows["kpca_mutual_information_initial"]
    )
    ends = {"feature": rows["alpha_tilde"].min(), "lazy": rows["alpha_tilde"].max()}
    for end, alpha in ends.items():
        at = rows.loc[rows["alpha_tilde"] == alpha]
        change, error = mean_error(at["mi_change"])
        out[end] = {
            "alpha_tilde": float(alpha),
            "cells": len(at),
            "mi_initial": float(at["kpca_mutual_information_initial"].mean()),
            "mi_final": float(at["kpca_mutual_information_final"].mean()),
            "mi_change": change,
            "mi_change_error": error,
            "projection_initial": float(at["kpca_label_projection_initial"].mean()),
            "projection_final": float(at["kpca_label_projection_final"].mean()),
        }
    f = out["feature"]
    grows = verdict_of(f["mi_change"], f["mi_change_error"])
    tests = [grows]
    if ends["lazy"] != ends["feature"]:
        lz = out["lazy"]
        tests.append(
            verdict_of(
                f["mi_change"] - lz["mi_change"],
                quadrature(f["mi_change_error"], lz["mi_change_error"]),
            )
        )
    out["verdict"] = all_hold(tests)
    return out


def kpca(datasets: dict[str, CampaignData | None]) -> Claim:
    """The NTK's top eigenvectors become informative of the labels after feature learning."""
    title = "Kernel PCA: the NTK's top eigenvectors become informative of the labels (Fig. 10)"
    present = {k: v for k, v in datasets.items() if v is not None}
    if not present:
        return not_run("kpca", title, KPCA_PAPER, KPCA_RULE, " / ".join(datasets))
    numbers, lines = {}, []
    for label, data in present.items():
        r = kpca_numbers(data)
        numbers[label] = r
        left_out = f", {r['unfitted']} unfitted left out" if r.get("unfitted") else ""
        if "feature" not in r:
            lines.append(
                f"{label}: no kernel PCA of fitted nets ({r['cells']} cells{left_out}): "
                f"{r['verdict']}"
            )
            continue
        parts = [
            f"{end} (α̃ = {g(x['alpha_tilde'])}, {x['cells']} cells): MI {g(x['mi_initial'])} → "
            f"{g(x['mi_final'])} bits (change {g(x['mi_change'])} ± {g(x['mi_change_error'])}), "
            f"ω {g(x['projection_initial'])} → {g(x['projection_final'])}"
            for end, x in (("feature", r["feature"]), ("lazy", r["lazy"]))
        ]
        lines.append(
            f"{label} ({r['what']}), top {KPCA_TOP}: "
            + "; ".join(parts)
            + f"{left_out}: {r['verdict']}"
        )
    verdict = combine([r["verdict"] for r in numbers.values()])
    return Claim("kpca", title, KPCA_PAPER, "<br>".join(lines), verdict, KPCA_RULE, numbers)


# --- CNN vs its lazy limit -------------------------------------------------------------

LAZY_LIMIT = 0.1  # ‖ΔΘ‖/‖Θ₀‖ below which the large-α̃ end is taken as the lazy limit
CNN_PAPER = (
    "For CNN architectures, feature learning outperforms the NTK (lazy) regime "
    "(Sec. 4 (iii), Fig. 8)."
)
CNN_RULE = (
    "At the widest width and largest P: the ensemble test error ε(⟨f⟩) at the smallest "
    "α̃ (feature) against the largest (lazy), with the standard error "
    "s = √(2ε(1−ε)/n_test) of the difference. Not resolved unless the lazy end is lazy "
    f"(‖ΔΘ‖/‖Θ₀‖ < {LAZY_LIMIT:g}), the feature end is not (> 1) and at least half the "
    "seeds fitted at both ends (a net stopped by its budget has not finished). Then "
    "reproduced if "
    "feature < lazy − 3s, not reproduced if feature > lazy + 3s, otherwise not resolved. "
    "The mean single-net errors are quoted."
)


def cnn_numbers(data: CampaignData) -> dict:
    ens = data.ensembles.loc[data.ensembles["train_size"] == data.ensembles["train_size"].max()]
    line = ens.loc[ens["width"] == ens["width"].max()].sort_values("alpha_tilde")
    feature, lazy = line.iloc[0], line.iloc[-1]
    n_test = float(data.cells["test_size"].iloc[0])
    mid = float(np.nanmean([feature["ensemble_test_error"], lazy["ensemble_test_error"]]))
    s = math.sqrt(2) * binomial_error(mid, n_test)
    out = {
        "arch": str(data.cells["arch"].iloc[0]) if "arch" in data.cells else "?",
        "width": int(feature["width"]),
        "alpha_tilde": line["alpha_tilde"].tolist(),
        "ensemble_test_error": line["ensemble_test_error"].tolist(),
        "mean_test_error": line["mean_test_error"].tolist(),
        "ntk_change": line["ntk_change"].tolist(),
        "feature": float(feature["ensemble_test_error"]),
        "lazy": float(lazy["ensemble_test_error"]),
        "noise": s,
    }
    lazy_enough = lazy["ntk_change"] < LAZY_LIMIT and feature["ntk_change"] > 1
    out["fitted_fraction"] = [float(feature["fitted_fraction"]), float(lazy["fitted_fraction"])]
    finished = min(out["fitted_fraction"]) >= 0.5
    decided = lazy_enough and finished
    out["verdict"] = verdict_of(out["lazy"] - out["feature"], s) if decided else NOT_RESOLVED
    out["lazy_limit_reached"] = bool(lazy_enough)
    out["finished"] = bool(finished)
    return out


def cnn(data: CampaignData | None, label: str) -> Claim:
    """A CNN on raw pixels beats its lazy limit."""
    title = "A CNN on raw pixels: feature learning beats its lazy limit (Fig. 8)"
    if data is None:
        return not_run("cnn", title, CNN_PAPER, CNN_RULE, label)
    r = cnn_numbers(data)
    curve = ", ".join(
        f"{g(a)}: {g(e)} (single {g(m)}, ‖ΔΘ‖/‖Θ₀‖ {g(c)})"
        for a, e, m, c in zip(
            r["alpha_tilde"], r["ensemble_test_error"], r["mean_test_error"], r["ntk_change"]
        )
    )
    limit = "" if r["lazy_limit_reached"] else "; the ends are not lazy / feature enough"
    if not r["finished"]:
        limit += (
            f"; fitted fraction {g(r['fitted_fraction'][0])} (feature), "
            f"{g(r['fitted_fraction'][1])} (lazy): the nets had not finished"
        )
    measured = (
        f"{label} ({r['arch']}, h = {r['width']}): ε(⟨f⟩) by α̃ = {curve}; feature "
        f"{g(r['feature'])} vs lazy {g(r['lazy'])} (s.e. of the difference "
        f"{g(r['noise'])}){limit}"
    )
    return Claim("cnn", title, CNN_PAPER, measured, r["verdict"], CNN_RULE, r)
