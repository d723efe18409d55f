"""A hand-built jamming line with one stalled cell on its jammed side, for the checks that
a stalled cell never counts as jammed (tests/reproduction/, tests/figures/)."""

from __future__ import annotations

import pandas as pd

from pipeline.analysis.ensembles import aggregate_tables
from pipeline.figures import CampaignData

STALLED_H0 = 1e6  # the stalled cell's H₀ eigenvalue: far from the jammed cells' 1 and 2


def jamming_line(stalled_reason: str = "stalled") -> CampaignData:
    """α̃ = 1, P = 40, widths 4, 8, 16 × 3 seeds, N = 4·h: jammed at 4 and 8 (N_Δ/N = 1/2),
    fitted at 16. At width 8 seed 2 stopped with ``stalled_reason`` and N_Δ = P (N_Δ/N =
    5/4, no jammed net has that); with "max_steps" it is an ordinary unfitted cell (the
    oracle the checks must tell apart)."""
    rows = []
    for width in (4, 8, 16):
        for seed in range(3):
            fitted = width == 16
            odd = width == 8 and seed == 2
            rows.append(
                dict(
                    cell_id=f"h{width}s{seed}",
                    status="done",
                    width=width,
                    alpha_tilde=1.0,
                    train_size=40,
                    alpha=1.0 / width**0.5,
                    seed=seed,
                    n_params=4 * width,
                    fitted=fitted,
                    stop_reason=stalled_reason if odd else "fitted" if fitted else "max_steps",
                    n_unsatisfied=40 if odd else 0 if fitted else 2 * width,
                    train_loss=0.0 if fitted else 0.3,
                    steps=500 if fitted else 30 if odd else 1000,
                    max_steps=1000,
                    test_error=0.2,
                    ntk_change=1.0,
                )
            )
    cells = pd.DataFrame(rows)
    h0 = [[STALLED_H0] if c == "h8s2" else [1.0, 2.0] for c in cells["cell_id"]]
    kernels = pd.DataFrame({"cell_id": cells["cell_id"], "h0_eigenvalues": h0})
    ensembles, boundaries = aggregate_tables(cells, None)
    return CampaignData(cells, ensembles, boundaries, kernels)
