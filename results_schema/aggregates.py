"""Schemas of the aggregate tables written by `phasegrid aggregate` (pipeline.analysis.ensembles):
`ensembles/part-0.parquet` and `boundaries/part-0.parquet`, recomputed from the done
cells each time. Like the cell tables, every row carries the grid and settings columns
(those constant over the campaign too), so a reader can filter without joins.
"""

from __future__ import annotations

import pyarrow as pa

from results_schema.tables import F64, GRID, I64, SETTINGS, STR, _field, _schema

_GRID = {f.name: f for f in GRID}

ENSEMBLES = _schema(
    "ensembles",
    "One row per grid point (width, alpha_tilde, train_size and "
    "every other grid / settings column), averaged over the seeds of its done "
    "cells.",
    [
        _GRID["width"],
        _GRID["alpha_tilde"],
        _GRID["alpha"],
        _GRID["train_size"],
        _GRID["depth"],
        *SETTINGS,
        _field(
            "n_seeds",
            I64,
            "M: done cells (initialisation seeds) averaged here; stalled cells are not among them.",
            nullable=False,
        ),
        _field(
            "n_stalled",
            I64,
            "Done cells of this grid point that stopped stalled "
            "(stop_reason = stalled): left out of every average here and of the boundaries; "
            "the phase diagram hatches a point where they are at least half.",
            nullable=False,
        ),
        _field("n_params", I64, "N: number of trained parameters."),
        _field("fitted_fraction", F64, "Fraction of the M seeds with N_Δ = 0 at the end."),
        _field("mean_test_error", F64, "⟨ε(f)⟩: test error averaged over seeds."),
        _field(
            "ensemble_test_error",
            F64,
            "ε(⟨f⟩): fraction of test points with y·⟨f⟩(x) ≤ 0, "
            "⟨f⟩ the seed-averaged test output (null without predictions).",
        ),
        _field(
            "ensemble_gain",
            F64,
            "⟨ε(f)⟩ − ε(⟨f⟩) = mean_test_error − ensemble_test_error: "
            "what averaging the outputs over seeds gains, ~N^{-1/2} past jamming (boundaries "
            "rows with boundary = ensemble_gain fit the exponent; null without predictions).",
        ),
        _field(
            "fluctuation",
            F64,
            "(1/M) Σ_s √(mean_x (f_s(x) − ⟨f⟩(x))²): output fluctuations "
            "over seeds, ~N^{-1/4} past jamming (null with fewer than two seeds).",
        ),
        _field(
            "output_norm",
            F64,
            "‖f‖ = (1/M) Σ_s √(mean_x f_s(x)²) on the test set at the end "
            "(the paper's ‖f‖, which peaks near jamming; the per-checkpoint train-set value is "
            "measurements.output_rms; null without predictions).",
        ),
        _field(
            "ntk_change",
            F64,
            "Geometric mean over seeds of ‖Θ_end − Θ₀‖_F/‖Θ₀‖_F (seeds "
            "where it was not measured are left out).",
        ),
        _field("mean_train_loss", F64, "Final training loss L averaged over seeds."),
        _field("mean_n_unsatisfied", F64, "Final N_Δ averaged over seeds."),
    ],
)


def _coordinate(field: pa.Field) -> pa.Field:
    """A grid column as a nullable coordinate: null where the boundary does not fix it."""
    doc = field.metadata[b"description"].decode()
    return _field(field.name, field.type, doc + " Null on rows located along this axis.")


BOUNDARIES = _schema(
    "boundaries",
    "Phase boundaries located on the grid, long format: jamming "
    "lines h*(α̃) per step budget, N*(P), lazy/feature crossovers α̃*(h) per "
    "level c, and learning-curve exponents β. Each row is found between the "
    "two grid points that bracket it (never extrapolated).",
    [
        _field(
            "boundary",
            STR,
            "jamming (fitted fraction crosses 1/2, interpolated in log h) | "
            "n_star (N at h*, log-log in (h, N)) | crossover (geometric-mean ntk_change "
            "crosses level, log-log) | learning_curve (ε(P) ~ P^{-β}, least squares in "
            "log-log) | ensemble_gain (⟨ε(f)⟩ − ε(⟨f⟩) ~ N^{-γ} over the widths, least "
            "squares in log-log over the points with a positive gain; value = γ).",
            nullable=False,
        ),
        _field(
            "quantity",
            STR,
            "The ensembles quantity located or fitted: fitted_fraction, "
            "ntk_change, ensemble_test_error, mean_test_error.",
        ),
        _field(
            "level",
            F64,
            "The level crossed: 0.5 (jamming, n_star), c (crossover); null for learning_curve.",
        ),
        _field(
            "budget_steps",
            F64,
            "jamming / n_star: the step budget B; a cell counts as "
            "fitted when N_Δ = 0 within B accepted steps. Null on jamming / n_star rows: the "
            "line as run (each cell's own flow-time / wall-clock budgets, its `fitted`).",
        ),
        _field(
            "along",
            STR,
            "The axis the value lies on: width, n_params (n_star, "
            "ensemble_gain), alpha_tilde, train_size (learning_curve).",
        ),
        _field("value", F64, "h*, N*, α̃*, β or γ; null unless located (see status)."),
        _field("value_error", F64, "Standard error of β or γ (with ≥ 3 points)."),
        _field(
            "lower",
            F64,
            "Bracketing grid point below the value (the largest grid value "
            "when the crossing lies above the grid); learning_curve: smallest P fitted; "
            "ensemble_gain: smallest N fitted.",
        ),
        _field(
            "upper",
            F64,
            "Bracketing grid point above the value (the smallest grid value "
            "when the crossing lies below the grid); learning_curve: largest P fitted; "
            "ensemble_gain: largest N fitted.",
        ),
        _field(
            "status",
            STR,
            "bracketed | below_grid | above_grid | not_monotone (several "
            "crossings; the first is given) | no_data; learning_curve, ensemble_gain: fitted | "
            "two_points (no error) | too_few_points.",
        ),
        _field("n_points", I64, "Grid points used along the axis."),
        *[_coordinate(_GRID[name]) for name in ("width", "alpha_tilde", "train_size", "depth")],
        *SETTINGS,
    ],
)

AGGREGATE_TABLES: dict[str, pa.Schema] = {"ensembles": ENSEMBLES, "boundaries": BOUNDARIES}
