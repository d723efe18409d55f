"""Ensemble: M seeds trained in one task (bundled) vs the same M cells one per task.

    .venv/bin/python -m benchmarks --only ensemble

Both sides run the same M `CellSpec`s (seeds 0..M−1, stripe model, α̃ = 1, swish β=10,
L=2, NTK and H₀ off so that training steps dominate) for a fixed number of accepted
steps (`max_steps`, not to convergence), so that their times compare. Each side does
what a Ray task of the campaign does with its cells (pipeline/execute/scheduler.py `bundle_task`),
without Ray, which is not needed here and absent on the GPU machine:

- bundled: one task of all M cells. `tasks.bundling.training_plan(specs, device)` — the
  bundler's cost model — decides: one batched ensemble (`tasks.train_bundle`) where
  batching pays, otherwise each cell alone on train_bundle's single-net fast path;
- one per task: M tasks of one cell each, run one after the other in this process. On
  this 2-core machine a campaign with `cpus_per_task = 1` runs one task per core on one
  torch thread; both sides here run on the same thread count, so the sequential loop is
  that per-core throughput without Ray's own overhead (the orchestration row measures it).

Both include preparing the cells (data, nets, initial outputs). Order: half the one-per-
task cells, then the bundle, then the other half (a drift of load hits both sides alike).
Throughput:
cells·steps/s = Σ accepted steps / wall seconds; ratio = bundled / one per task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from benchmarks.common import Row, stripe_spec, unavailable
from tasks.cell import resolve_device
from tasks.records import CellResult
from tasks.specs import CellSpec
from tasks.train_cell import train_cell

# (name, P, d, h, steps): steps are few at the paper size to stay within the time budget.
SIZES = (("small", 256, 5, 32, 100), ("medium", 1000, 10, 128, 30), ("paper", 5000, 10, 256, 3))
# On a GPU a step takes milliseconds: more steps, so that preparing the cells (data drawn
# on the CPU) does not dominate either side.
GPU_SIZES = (
    ("small", 256, 5, 32, 500),
    ("medium", 1000, 10, 128, 300),
    ("paper", 5000, 10, 256, 200),
)
QUICK_SIZES = (("tiny", 32, 3, 8, 5),)
TARGETS = {"small": 2.5}  # CPU; elsewhere: never slower (ratio ≥ 1)
GPU_TARGETS = {"paper": 10.0}


def bundler() -> tuple[Callable | None, Callable | None, str]:
    """(train_bundle, training_plan or None, "") or (None, None, why they are missing)."""
    try:
        from tasks.train_bundle import train_bundle
    except ImportError:
        return None, None, "not available yet: no tasks.train_bundle.train_bundle"
    except Exception as err:  # a trainer that exists but fails to import: say so
        return None, None, f"not available: importing tasks.train_bundle raised {err!r}"[:200]
    try:
        from tasks.bundling import training_plan
    except ImportError:
        training_plan = None
    return train_bundle, training_plan, ""


def _task(
    specs: Sequence[CellSpec], train_bundle: Callable, training_plan: Callable | None
) -> tuple[int, str]:
    """Train the cells as one task would; (Σ accepted steps, how they were trained)."""
    if training_plan is None:
        groups, alone = [list(specs)], []
    else:
        groups, alone = training_plan(specs, resolve_device(specs[0].observables.device))
    steps, finished = 0, 0
    for group in groups:
        for _member, item in train_bundle(group):
            if isinstance(item, CellResult):
                steps, finished = steps + item.steps, finished + 1
    for spec in alone:
        for item in train_cell(spec):
            if isinstance(item, CellResult):
                steps, finished = steps + item.steps, finished + 1
    if finished != len(specs):
        raise RuntimeError(f"the task finished {finished} of {len(specs)} cells")
    batched = [len(g) for g in groups if len(g) > 1]
    how = (
        f"batched {'+'.join(map(str, batched))}"
        if batched
        else f"{len(groups)} fast path" + (f", {len(alone)} train_cell" if alone else "")
    )
    return steps, how


def _timed(fn: Callable[[], tuple[int, str]]) -> tuple[float, int, str]:
    start = time.perf_counter()
    steps, how = fn()
    return time.perf_counter() - start, steps, how


def run(members: int = 16, sizes=SIZES, device: str = "cpu") -> list[Row]:
    """One row per size: bundled vs one-per-task throughput (cells·steps/s) and the ratio."""
    train_bundle, training_plan, why = bundler()
    if train_bundle is None:
        return [
            unavailable("ensemble", f"{name} P={P} d={d} h={h} M={members}", why)
            for name, P, d, h, _ in sizes
        ]
    warm = [
        stripe_spec(16, 2, 4, seed=s, max_steps=2, test_size=8, device=device) for s in range(2)
    ]
    _task(warm, train_bundle, training_plan), _task(warm[:1], train_bundle, training_plan)
    targets = GPU_TARGETS if device.startswith("cuda") else TARGETS
    rows = []
    for name, P, d, h, steps in sizes:
        specs = [
            stripe_spec(P, d, h, seed=s, max_steps=steps, device=device) for s in range(members)
        ]
        # Order: half the one-per-task cells, the bundle, the other half, so that a drift
        # of the machine's load over the row weighs on both sides alike.
        half = members // 2
        alone = [_timed(lambda s=s: _task([s], train_bundle, training_plan)) for s in specs[:half]]
        bun_seconds, bun_steps, how = _timed(lambda: _task(specs, train_bundle, training_plan))
        alone += [_timed(lambda s=s: _task([s], train_bundle, training_plan)) for s in specs[half:]]
        one_seconds, one_steps = sum(a[0] for a in alone), sum(a[1] for a in alone)
        ours, base = bun_steps / bun_seconds, one_steps / one_seconds
        same = how == f"{members} fast path" and alone[0][2] == "1 fast path"
        rows.append(
            Row(
                "ensemble",
                f"{name} P={P} d={d} h={h} M={members}",
                ours,
                base,
                "one per task (seq.)",
                "cells·steps/s",
                ours / base,
                targets.get(name, 1.0),
                f"{steps} steps/cell; bundle: {how}; alone: {alone[0][2]}"
                + (
                    "; same code on both sides (the cost model does not batch): ratio = 1 ± noise"
                    if same
                    else ""
                ),
                {
                    "members": members,
                    "steps": steps,
                    "bundled_seconds": bun_seconds,
                    "one_per_task_seconds": one_seconds,
                    "bundled_steps": bun_steps,
                    "one_per_task_steps": one_steps,
                    "plan": how,
                },
            )
        )
    return rows
