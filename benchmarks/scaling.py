"""Scaling: time per training step and per NTK as P and h double, with fitted exponents.

    .venv/bin/python -m benchmarks --only scaling

Expected at L=2 (the dominant products): a forward+backward pass costs ∝ P·h² (the
[P, h] @ [h, h] products), the layer-wise NTK ∝ P²·h (the [P, h] @ [h, P] Gram products,
tasks/ntk.py). Each series doubles one of P, h with the other fixed; the exponent is the
least-squares slope of log time against log size. Step times come from the engine a
campaign task uses for a lone FC cell (benchmarks/flow_step.py `engines`: the fast path
when it exists; seconds per forward+backward pass, best of 3 runs), NTK times are the
best of 3 calls of `tasks.ntk.ntk_gram` on a float64 swish net. Exponents below the expected
value mean that terms of lower order (elementwise work ∝ P·h, fixed per-call costs)
still weigh at these sizes.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import Row, best_seconds, synchronizer
from benchmarks.flow_step import engines, step_seconds
from tasks.models import build_model
from tasks.ntk import ntk_gram

DIM, DEPTH = 10, 2
# (what, varied axis, fixed value, values of the varied axis, expected exponent)
SERIES = (
    ("step", "P", 256, (500, 1000, 2000), 1.0),
    ("step", "h", 1000, (128, 256, 512), 2.0),
    ("ntk", "P", 256, (1000, 2000, 4000), 2.0),
    ("ntk", "h", 2000, (256, 512, 1024), 1.0),
)
QUICK_SERIES = (("step", "P", 8, (16, 32), 1.0), ("ntk", "P", 8, (16, 32), 2.0))
STEPS = 4


def ntk_seconds(P: int, h: int, device: str = "cpu") -> float:
    """Best of 3 wall seconds of ntk_gram on P points for a swish net of width h, L=2."""
    model = build_model(
        DIM, h, DEPTH, "swish", 10.0, generator=torch.Generator().manual_seed(0)
    ).to(device)
    x = torch.randn(P, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(
        device
    )
    ntk_gram(model, x[:2])
    return best_seconds(lambda: ntk_gram(model, x), 3, synchronizer(device))


def _seconds(what: str, P: int, h: int, device: str, trainer) -> float:
    if what == "ntk":
        return ntk_seconds(P, h, device)
    seconds, passes = step_seconds(P, DIM, h, STEPS, device, repeats=3, trainer=trainer)
    return seconds / passes


def run(series=SERIES, device: str = "cpu") -> list[Row]:
    """One row per series: the fitted exponent vs the expected one (ratio fitted/expected).
    Steps run on the engine a campaign uses for a lone FC cell (the fast path if present)."""
    engine, trainer = list(engines().items())[-1]
    step_seconds(16, 2, 4, 3, device, trainer=trainer)  # one-time costs out
    rows = []
    for what, axis, fixed, values, expected in series:
        sizes = [(v, fixed) if axis == "P" else (fixed, v) for v in values]
        times = [_seconds(what, P, h, device, trainer) for P, h in sizes]
        slope = float(np.polyfit(np.log(values), np.log(times), 1)[0])
        other = "h" if axis == "P" else "P"
        listed = ", ".join(f"{1e3 * t:.3g}" for t in times)
        unit = f"ms per pass ({engine})" if what == "step" else "ms per NTK"
        rows.append(
            Row(
                "scaling",
                f"{what} vs {axis}={values} ({other}={fixed})",
                slope,
                expected,
                "expected exponent",
                "exponent",
                slope / expected,
                None,
                f"{unit}: {listed}",
                {"values": list(values), "seconds": times, "fixed": fixed},
            )
        )
    return rows
