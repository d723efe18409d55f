"""Peer: the stripe cell that the paper's reference code ran on this machine, through
`train_cell`, against the reference's recorded ms per step.

    .venv/bin/python -m benchmarks --only peer

The cell: stripe model, d=5, P=256, test set 1,024, h=32, L=2, swish β=10, soft hinge
β=20, α̃=1, float64, full observables (every checkpoint's train/test statistics at 10
log-spaced checkpoints per decade, the NTK on 128 kernel points at start and end, the
H₀ spectrum at the end), `STEPS` accepted steps. Ours: the wall seconds of the whole
`train_cell` (preparation and final observables included) over its accepted steps. A
second row runs the same cell as a one-cell `train_bundle([spec])` (the hand-written FC
fast path that a campaign task uses for a lone FC cell), when that trainer exists.

The baseline is a RECORDED CONSTANT, not re-measured here: the paper's reference code
ran this cell at 5.2 ms per step on this machine, measured earlier. The ratio is
5.2 ms / ours.
"""

from __future__ import annotations

import time

from benchmarks.common import Row, stripe_spec
from tasks.records import CellResult
from tasks.specs import CellSpec
from tasks.train_cell import train_cell

REFERENCE_MS_PER_STEP = 5.2  # recorded with the reference code on this machine
STEPS = 2000
TARGET = 10.0


def _fast_path(spec: CellSpec):
    """train_cell's records, from train_bundle([spec]) (None if that trainer is missing)."""
    try:
        from tasks.train_bundle import train_bundle
    except ImportError:
        return None
    return (item for _, item in train_bundle([spec]))


def _ms_per_step(spec: CellSpec, trainer=train_cell) -> tuple[float, int, str]:
    """(wall ms per accepted step of trainer(spec), steps, stop reason)."""
    start = time.perf_counter()
    result = next(item for item in trainer(spec) if isinstance(item, CellResult))
    return (
        1e3 * (time.perf_counter() - start) / max(result.steps, 1),
        result.steps,
        result.stop_reason,
    )


def run(steps: int = STEPS, device: str = "cpu") -> list[Row]:
    """Our ms/step on the reference's cell vs the recorded 5.2 ms/step: through
    train_cell, and through the single-net fast path if it exists."""
    warm = stripe_spec(32, 5, 8, max_steps=5, test_size=32, observables=True, device=device)
    spec = stripe_spec(256, 5, 32, max_steps=steps, test_size=1024, observables=True, device=device)
    rows = []
    for name, trainer in (("train_cell", train_cell), ("train_bundle([cell])", _fast_path)):
        if trainer(warm) is None:
            continue
        _ms_per_step(warm, trainer)  # one-time costs out
        ms, done, reason = _ms_per_step(spec, trainer)
        rows.append(
            Row(
                "peer",
                f"stripe d=5 P=256 h=32 L=2 {name}",
                ms,
                REFERENCE_MS_PER_STEP,
                "reference (recorded)",
                "ms/step",
                REFERENCE_MS_PER_STEP / ms,
                TARGET,
                f"baseline: recorded constant; {done} steps, stop: {reason}",
                {"steps": done, "stop_reason": reason, "trainer": name},
            )
        )
    return rows
