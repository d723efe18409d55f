"""Flow step vs its physical limit: achieved FLOP/s of a training step against
`torch.matmul` FLOP/s measured in the same run at the step's own shapes.

    .venv/bin/python -m benchmarks --only flow-step

A step is timed inside each engine that trains one cell: `train_cell` (autograd) and,
when it exists, the single-net fast path `train_bundle([spec])` (hand-written FC forward
and backward). Stripe model, L=2, swish β=10, float64, NTK and H₀ off, one checkpoint per
decade. Time: seconds between the first and the last Measurement over the
forward+backward passes made in between (accepted and rejected), each counted as 6·P·N
FLOPs (forward 2PN, backward 4PN). The limit: the best FLOP/s of `torch.matmul`
[P, h] @ [h, h] (2·P·h² FLOPs), the step's dominant product, on the same device and
threads. Step, matmul and swish are timed in turn, 3 rounds, the best of each kept.

Where the fraction is low, the note splits the measured step time into what its matmuls
would take at that peak, the activation's elementwise work (swish forward and backward on
the L pre-activations [P, h], timed alone: through autograd for train_cell, as the fused
silu/silu_backward kernels for the fast path) and the fixed per-step cost (a step of a tiny
net, P=16 h=4, timed the same way): what is left is Python/autograd work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from benchmarks.common import Row, best_seconds, fc_parameters, steps_for, stripe_spec, synchronizer
from tasks.activations import activation, unit_backward, unit_forward
from tasks.records import Measurement
from tasks.specs import CellSpec
from tasks.train_cell import train_cell

# (P, d, h, steps) at L=2; the target (≥ 50 % of matmul) applies from h = 256 on.
SIZES = ((2000, 10, 32, 30), (2000, 10, 128, 10), (2000, 10, 256, 5), (2000, 10, 512, 3))
QUICK_SIZES = ((64, 3, 16, 4),)
TARGET, TARGET_FROM_WIDTH, DEPTH = 0.5, 256, 2


def engines() -> dict[str, Callable[[CellSpec], Iterator]]:
    """The trainers of one cell, by name: train_cell (autograd, the reference engine) and,
    when it exists, the single-net fast path train_bundle([spec]) that campaign tasks use
    for a lone fully-connected cell."""
    found = {"train_cell": train_cell}
    try:
        from tasks.train_bundle import train_bundle
    except ImportError:
        return found
    found["fast path"] = lambda spec: (item for _, item in train_bundle([spec]))
    return found


def step_seconds(
    P: int,
    d: int,
    h: int,
    steps: int,
    device: str = "cpu",
    depth: int = DEPTH,
    repeats: int = 1,
    trainer: Callable[[CellSpec], Iterator] = train_cell,
) -> tuple[float, float]:
    """(seconds per step, forward+backward passes per step) of a trainer's flow: the
    fastest of `repeats` runs of `steps` steps (on a shared machine the minimum is the
    least disturbed)."""
    spec = stripe_spec(
        P,
        d,
        h,
        max_steps=steps_for(device, steps),
        depth=depth,
        test_size=16,
        device=device,
        checkpoints_per_decade=1,
    )
    best = (float("inf"), 1.0)
    for _ in range(repeats):
        marks = [m for m in trainer(spec) if isinstance(m, Measurement)]
        first, last = marks[0], marks[-1]
        n = max(last.step - first.step, 1)
        best = min(
            best,
            (
                (last.wall_seconds - first.wall_seconds) / n,
                (last.gradient_evaluations - first.gradient_evaluations) / n,
            ),
        )
    return best


def matmul_flops(P: int, h: int, device: str = "cpu", repeats: int = 10) -> float:
    """Best FLOP/s of torch.matmul [P, h] @ [h, h] in float64."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(P, h, generator=g, dtype=torch.float64).to(device)
    b = torch.randn(h, h, generator=g, dtype=torch.float64).to(device)
    sync = synchronizer(device)
    torch.matmul(a, b), sync()
    return 2.0 * P * h * h / best_seconds(lambda: torch.matmul(a, b), repeats, sync)


def activation_seconds(
    P: int, h: int, device: str = "cpu", depth: int = DEPTH, fused: bool = False
) -> float:
    """Seconds of the swish forward and backward on `depth` tensors [P, h]: through
    autograd on the normalised activation (what train_cell runs), or, `fused`, the two
    fused kernels silu and silu_backward (close to what a hand-written step runs)."""
    act = activation("swish", 10.0)
    x = torch.randn(P, h, dtype=torch.float64, device=device, requires_grad=not fused)
    ones = torch.ones_like(x)

    def both() -> None:
        for _ in range(depth):
            if fused:
                unit_backward("swish", ones, x, unit_forward("swish", x))
            else:
                torch.autograd.grad(act(x), x, ones)

    both()
    return best_seconds(both, 3, synchronizer(device))


def _interleaved(
    P: int, d: int, h: int, steps: int, device: str, trainer, fused: bool, rounds: int = 3
) -> tuple[float, float, float, float]:
    """(seconds per step, passes per step, matmul FLOP/s, swish seconds per step): step,
    matmul and swish timed in turn, `rounds` times, the best of each kept, so that a burst
    of load on the shared machine does not hit one side of the ratio only."""
    seconds, passes, peak, elementwise = float("inf"), 1.0, 0.0, float("inf")
    for _ in range(rounds):
        seconds, passes = min(
            (seconds, passes), step_seconds(P, d, h, steps, device, trainer=trainer)
        )
        peak = max(peak, matmul_flops(P, h, device, repeats=4))
        elementwise = min(elementwise, activation_seconds(P, h, device, fused=fused))
    return seconds, passes, peak, elementwise * passes


def _note(step: float, matmul: float, elementwise: float, fixed: float) -> str:
    parts = {"matmul at peak": matmul, "swish fwd+bwd": elementwise, "fixed per step": fixed}
    rest = step - sum(parts.values())
    text = ", ".join(f"{k} {100 * v / step:.0f}%" for k, v in parts.items())
    return f"{text}, other {100 * rest / step:.0f}% of {1e3 * step:.2f} ms/step"


def run(sizes=SIZES, device: str = "cpu") -> list[Row]:
    """Per engine and width: achieved step FLOP/s vs matmul FLOP/s (ratio = fraction of
    the matmul peak)."""
    rows = []
    for engine, trainer in engines().items():
        step_seconds(16, 2, 4, 3, device, trainer=trainer)  # one-time costs out
        fixed, _ = step_seconds(16, 2, 4, 30, device, repeats=3, trainer=trainer)
        for P, d, h, steps in sizes:
            seconds, passes, peak, elementwise = _interleaved(
                P, d, h, steps, device, trainer, engine != "train_cell"
            )
            flops = 6.0 * P * fc_parameters(d, h, DEPTH) * passes / seconds
            rows.append(
                Row(
                    "flow-step",
                    f"P={P} d={d} h={h} L={DEPTH} {engine}",
                    flops / 1e9,
                    peak / 1e9,
                    f"matmul [{P},{h}]@[{h},{h}]",
                    "GFLOP/s",
                    flops / peak,
                    TARGET if h >= TARGET_FROM_WIDTH else None,
                    _note(seconds, seconds * flops / peak, elementwise, fixed * passes),
                    {
                        "engine": engine,
                        "seconds_per_step": seconds,
                        "passes_per_step": passes,
                        "fixed_seconds": fixed,
                        "activation_seconds": elementwise,
                    },
                )
            )
    return rows
