"""What every benchmark shares: the `Row` it reports, timing, cell specs, the table, the
results file.

A `Row` is one side-by-side comparison: `ours` against a `baseline` measured in the same
run (or, where stated, a recorded constant), the `ratio` oriented so that > 1 means ours
is better, and the `target` that ratio should reach. Speed targets live here, in
benchmarks, never as timed assertions in tests.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tasks.specs import CellSpec, DataSpec, FlowSpec, ModelSpec, ObservableSpec

RESULTS = Path(__file__).parent / "results" / "bench.csv"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    """One line of the table: `ours` vs `baseline` (same `unit`), ratio > 1 = ours better."""

    benchmark: str  # ensemble, peer, flow-step, ntk, orchestration, scaling
    case: str  # the size or variant, e.g. "small P=256 d=5 h=32"
    ours: float
    baseline: float
    baseline_name: str  # what the baseline is, e.g. "sequential", "matmul"
    unit: str
    ratio: float
    target: float | None = None  # None: no target (informative rows)
    note: str = ""
    details: dict = field(default_factory=dict)  # raw numbers, kept in the results file

    @property
    def met(self) -> str:
        if self.target is None or self.ratio != self.ratio:  # no target, or NaN
            return ""
        return "yes" if self.ratio >= self.target else "NO"


def unavailable(benchmark: str, case: str, why: str) -> Row:
    """A row for a benchmark that cannot run here (yet): NaN numbers and the reason."""
    nan = float("nan")
    return Row(benchmark, case, nan, nan, "-", "-", nan, None, why)


def best_seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """min over `repeats` of the wall seconds of fn() (sync() before the clock stops)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def synchronizer(device: str) -> Callable[[], None]:
    """A no-op on CPU; torch.cuda.synchronize on a GPU (so the clock sees the kernels)."""
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def stripe_spec(
    train_size: int,
    dimension: int,
    width: int,
    *,
    seed: int = 0,
    max_steps: int = 100,
    depth: int = 2,
    test_size: int = 256,
    observables: bool = False,
    device: str = "cpu",
    checkpoints_per_decade: int = 10,
) -> CellSpec:
    """A stripe-model cell (swish β=10, soft hinge β=20, α̃=1, float64). With
    `observables` False the NTK and H₀ are off, so the cell times training steps."""
    return CellSpec(
        alpha_tilde=1.0,
        seed=seed,
        data=DataSpec(
            dataset="stripe",
            dimension=dimension,
            train_size=train_size,
            test_size=test_size,
            kernel_size=min(128, train_size),
        ),
        model=ModelSpec(
            arch="fc", depth=depth, width=width, activation="swish", activation_beta=10.0
        ),
        flow=FlowSpec(max_steps=max_steps, checkpoints_per_decade=checkpoints_per_decade),
        observables=ObservableSpec(ntk=observables, h0_spectrum=observables, device=device),
    )


def steps_for(device: str, steps: int) -> int:
    """Steps to time: ×20 on a GPU, where a step takes milliseconds and a few of them
    would be lost in the clock's noise."""
    return 20 * steps if device.startswith("cuda") else steps


def fc_parameters(dimension: int, width: int, depth: int) -> int:
    """N of the bias-free FC net: d·h + (L−1)·h² + h."""
    return dimension * width + (depth - 1) * width * width + width


def machine(device: str, threads: int) -> dict:
    """Where this run happened: host, CPU, cores, torch, threads, device, load average."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": threads,
        "device": device,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def commit() -> str:
    """`git describe --always --dirty` of the repository (or "unknown")."""
    try:
        return (
            subprocess.run(
                ["git", "describe", "--always", "--dirty"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _number(x: float, width: int) -> str:
    if x != x:
        return f"{'-':>{width}}"
    if abs(x) >= 1e4 or (0 < abs(x) < 1e-2):
        return f"{x:>{width}.2e}"
    return f"{x:>{width}.3g}"


def table(rows: Iterable[Row]) -> str:
    """The rows as a fixed-width text table (also valid Markdown inside a code block)."""
    head = (
        f"{'benchmark':<14}{'case':<38}{'ours':>10}{'baseline':>10}  {'vs':<28}"
        f"{'unit':<16}{'ratio':>8}{'target':>8}{'met':>5}  note"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        target = "-" if r.target is None else f"≥{r.target:g}"
        lines.append(
            f"{r.benchmark:<14}{r.case:<38}{_number(r.ours, 10)}"
            f"{_number(r.baseline, 10)}  {r.baseline_name:<28}{r.unit:<16}"
            f"{_number(r.ratio, 8)}{target:>8}{r.met:>5}  {r.note}"
        )
    return "\n".join(lines)


def append_results(rows: Iterable[Row], info: dict, path: Path = RESULTS) -> Path:
    """Append the rows to the CSV at `path` (header if new), each with the run's date,
    commit and machine, so runs can be compared across commits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    version, where = commit(), json.dumps(info, sort_keys=True)
    names = [f.name for f in dataclasses.fields(Row)]
    fresh = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if fresh:
            writer.writerow(["date", "commit", "machine", *names, "met"])
        for r in rows:
            values = [
                json.dumps(r.details, sort_keys=True, default=str)
                if n == "details"
                else getattr(r, n)
                for n in names
            ]
            writer.writerow([stamp, version, where, *values, r.met])
    return path
