"""Aggregates of issue 14: ‖f‖ on the test set and the ensemble gain ⟨ε(f)⟩ − ε(⟨f⟩)
per grid point (hand-computed), and its exponent γ against N in `boundaries`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_aggregate import hand_cells, hand_predictions

from pipeline.analysis.ensembles import aggregate_tables, ensemble_table


def test_output_norm_and_ensemble_gain_equal_hand_values():
    table = ensemble_table(hand_cells(), hand_predictions()).set_index("depth")
    # depth 2 seeds: f = (1, 4), (2, −2), (6, 1) → √mean f² = √8.5, √4, √18.5
    assert table.loc[2, "output_norm"] == pytest.approx((math.sqrt(8.5) + 2 + math.sqrt(18.5)) / 3)
    # mean test error 1/3, ensemble error 1/2: ensembling hurt here, the gain is negative
    assert table.loc[2, "ensemble_gain"] == pytest.approx(1 / 3 - 1 / 2)
    assert table.loc[3, "output_norm"] == pytest.approx(1.0)
    assert table.loc[3, "ensemble_gain"] == pytest.approx(0.0)


def _gain_campaign(gamma: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cells at 4 widths × 2 α̃ whose mean test error exceeds the ensemble error by
    0.3·(N/100)^{-γ}: 2 seeds, one test point per 1/1000 of error."""
    cells, predictions, n_test = [], [], 1000
    for width in (8, 16, 32, 64):
        n_params = 5 * width + width
        gain = 0.3 * (n_params / 100) ** -gamma
        for alpha_tilde in (0.1, 10.0):
            for seed in (0, 1):
                cell_id = f"w{width}a{alpha_tilde}s{seed}"
                wrong = int(round(gain * n_test))  # seed s errs on its own points
                outputs = np.ones(n_test)
                outputs[seed * wrong : (seed + 1) * wrong] = -0.5  # the other seed outvotes it
                cells.append(
                    dict(
                        cell_id=cell_id,
                        width=width,
                        alpha_tilde=alpha_tilde,
                        alpha=alpha_tilde / math.sqrt(width),
                        train_size=10,
                        seed=seed,
                        depth=1,
                        dataset="stripe",
                        n_params=n_params,
                        status="done",
                        stop_reason="fitted",
                        fitted=True,
                        train_loss=0.0,
                        n_unsatisfied=0,
                        test_error=wrong / n_test,
                        ntk_change=1.0,
                        steps=10,
                        max_steps=100,
                    )
                )
                predictions += [
                    dict(cell_id=cell_id, test_index=i, test_output=o, test_label=1)
                    for i, o in enumerate(outputs)
                ]
    return pd.DataFrame(cells), pd.DataFrame(predictions)


@pytest.mark.parametrize("gamma", [0.5, 1.0])
def test_ensemble_gain_exponent_is_recovered_per_alpha(gamma):
    cells, predictions = _gain_campaign(gamma)
    ensembles, boundaries = aggregate_tables(cells, predictions)
    assert (ensembles.ensemble_test_error == 0).all()
    rows = boundaries[boundaries.boundary == "ensemble_gain"].set_index("alpha_tilde")
    assert sorted(rows.index) == [0.1, 10.0]
    for alpha_tilde in (0.1, 10.0):
        row = rows.loc[alpha_tilde]
        assert row.value == pytest.approx(gamma, abs=0.01)  # rounding to 1/1000 only
        assert row.status == "fitted" and row.n_points == 4 and row.along == "n_params"
        assert (row.lower, row.upper) == (48.0, 384.0)
