"""euler-heun vs the paper's controller: gradient evaluations (a forward alone counts 1/3)
and wall seconds per unit flow time and to fit, on the four cell types of issue 11:

    (a) MNIST 10 PCA, FC L=2, swish β=10, soft hinge (the paper's Fig. 4 cell)
    (b) stripe, FC L=2, relu, soft hinge
    (c) stripe, one hidden layer, relu, plain hinge
    (d) random labels, FC L=2, relu, quadratic hinge

    .venv/bin/python -m benchmarks --only integrator

Each cell trains on train_bundle's single-net fast path, float64, NTK and H₀ off.
Targets: on (a) no more evaluations to fit than paper (ratio paper/ours ≥ 1); on (b)-(d)
a fit where paper stalls, at ≤ 3 evaluations per accepted step (ratio 3/ours ≥ 1).
"""

from __future__ import annotations

import math
import time

from benchmarks.common import Row
from tasks.records import CellResult
from tasks.specs import CellSpec, DataSpec, FlowSpec, LossSpec, ModelSpec, ObservableSpec
from tasks.train_bundle import train_bundle

# name: (dataset, d, P, arch, width, activation, loss, alpha_tilde)
CASES = {
    "(a) mnist swish soft hinge": ("mnist", 10, 256, "fc", 32, "swish", "softhinge", 1.0),
    "(b) stripe relu soft hinge": ("stripe", 5, 128, "fc", 64, "relu", "softhinge", 100.0),
    "(c) stripe one-hidden relu hinge": ("stripe", 5, 32, "one-hidden", 128, "relu", "hinge", 1.0),
    "(d) random labels relu quad hinge": (
        "random-labels",
        5,
        40,
        "fc",
        48,
        "relu",
        "quadhinge",
        1.0,
    ),
}
MAX_STEPS, QUICK_STEPS = 30_000, 30
PER_STEP_LIMIT = 3.0


def cell(case: tuple, integrator: str, max_steps: int, quick: bool, device: str) -> CellSpec:
    dataset, d, p, arch, width, act, loss, alpha_tilde = case
    if quick:
        p, width = min(p, 16), min(width, 8)
    return CellSpec(
        alpha_tilde=alpha_tilde,
        seed=0,
        data=DataSpec(dataset, dimension=d, train_size=p, test_size=64, kernel_size=16),
        model=ModelSpec(
            arch=arch,
            width=width,
            depth=1 if arch == "one-hidden" else 2,
            activation=act,
            activation_beta=10.0 if act == "swish" else 1.0,
        ),
        loss=LossSpec(loss),
        flow=FlowSpec(integrator=integrator, max_steps=max_steps),
        observables=ObservableSpec(ntk=False, h0_spectrum=False, device=device),
    )


def train(spec: CellSpec) -> dict:
    """The cell's outcome: evaluations (forwards at 1/3), steps, flow time, wall seconds."""
    start = time.perf_counter()
    result = next(r for _, r in train_bundle([spec]) if isinstance(r, CellResult))
    evaluations = result.gradient_evaluations + result.forward_evaluations / 3
    return {
        "stop_reason": result.stop_reason,
        "steps": result.steps,
        "flow_time": result.flow_time,
        "evaluations": evaluations,
        "seconds": time.perf_counter() - start,
        "per_step": evaluations / max(result.steps, 1),
        "per_time": evaluations / result.flow_time if result.flow_time > 0 else math.inf,
    }


def _describe(o: dict) -> str:
    return (
        f"{o['stop_reason']} at step {o['steps']}, t={o['flow_time']:.3g}, "
        f"{o['evaluations']:.0f} evals ({o['per_step']:.2f}/step, {o['per_time']:.3g}/unit t), "
        f"{o['seconds']:.1f} s"
    )


def run(quick: bool = False, device: str = "cpu") -> list[Row]:
    rows = []
    for name, case in CASES.items():
        steps = QUICK_STEPS if quick else MAX_STEPS
        train(cell(case, "paper", 1, quick, device))  # warm-up: data loading, PCA, caches
        ours, paper = (train(cell(case, i, steps, quick, device)) for i in ("euler-heun", "paper"))
        note = f"euler-heun: {_describe(ours)}; paper: {_describe(paper)}"
        details = {"euler-heun": ours, "paper": paper}
        if name.startswith("(a)"):
            rows.append(
                Row(
                    "integrator",
                    f"{name}: evals to fit",
                    ours["evaluations"],
                    paper["evaluations"],
                    "paper",
                    "evals",
                    paper["evaluations"] / ours["evaluations"],
                    1.0,
                    note,
                    details,
                )
            )
        else:
            # a run that did not fit gets baseline 0 (ratio 0: the target is not met)
            limit = PER_STEP_LIMIT if ours["stop_reason"] == "fitted" else 0.0
            rows.append(
                Row(
                    "integrator",
                    f"{name}: evals per accepted step, to fit",
                    ours["per_step"],
                    limit,
                    "limit (0: no fit)",
                    "evals/step",
                    limit / ours["per_step"],
                    1.0,
                    note,
                    details,
                )
            )
        ours_wall = ours["seconds"] / ours["flow_time"] if ours["flow_time"] else math.inf
        paper_wall = paper["seconds"] / paper["flow_time"] if paper["flow_time"] else math.inf
        rows.append(
            Row(
                "integrator",
                f"{name}: wall s per unit flow time",
                ours_wall,
                paper_wall,
                "paper",
                "s",
                paper_wall / ours_wall,
                None,
                "informative: where paper stalls its flow time is frozen",
                {},
            )
        )
    return rows
