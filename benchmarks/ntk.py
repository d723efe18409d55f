"""Fast layer-wise NTK vs the torch.func Jacobian NTK on the same net and points.

    .venv/bin/python -m benchmarks.ntk [--points 1000 --width 512 --depth 2 --dim 10]

How it measures (CPU, Linux/glibc):
- Each method runs in its own fresh, spawned process, so neither sees the other's
  allocations or warm caches; the net (swish β=10, no bias, float64) and the points are
  rebuilt there from the same seeds. Θ of both is sent back and compared.
- Each method is first called once on 2 points, so one-time costs (loading kernels and
  library code pages, lazy initialisation) count in neither time nor memory.
- Time: best wall seconds over `repeats` calls (5 for the fast path, 1 for the Jacobian
  path, whose single call lasts tens of seconds), with the default allocator.
- Peak memory: one more call, measured as the resident-set high-water mark during the
  call minus the resident set just before it (VmHWM is reset by writing 5 to
  /proc/self/clear_refs, then read from /proc/self/status). It counts every byte the
  call touches — tensors, autograd/vmap intermediates, BLAS buffers — which tracemalloc
  misses (torch allocates outside Python's allocator). Before this call glibc is told
  (mallopt M_MMAP_THRESHOLD = 64 KiB, then malloc_trim) to unmap every freed block above
  64 KiB at once (and malloc_trim returns what the timed calls freed): by default glibc
  raises that threshold after large frees and keeps freed tensors resident, so the
  high-water mark would also count memory that is free
  but not reusable by the next, larger tensor (fast path: ~99 MiB that way vs ~50 MiB
  live at the default size). `run(eager_free=False)` / `--glibc-default` skips this.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import multiprocessing
import re
import time

import torch

from tasks.models import build_model, count_parameters
from tasks.ntk import ntk_gram, ntk_gram_jacobian

METHODS = {"fast layer-wise": (ntk_gram, 5), "torch.func jacobian": (ntk_gram_jacobian, 1)}
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+) kB", f.read()).group(1))


def _best_seconds(fn, model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(model, x)
        times.append(time.perf_counter() - start)
    return min(times)


def _peak_mib(
    fn, model: torch.nn.Module, x: torch.Tensor, eager_free: bool
) -> tuple[float, torch.Tensor]:
    """(resident high-water mark during fn(model, x) minus resident set before, in MiB; Θ)."""
    libc = ctypes.CDLL("libc.so.6")
    if eager_free:
        libc.mallopt(_M_MMAP_THRESHOLD, 65536)
    libc.malloc_trim(0)  # give back what the timed calls freed
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    rss_before = _status_kib("VmRSS")
    theta = fn(model, x)
    return (_status_kib("VmHWM") - rss_before) / 1024, theta


def _measure(method: str, points: int, width: int, depth: int, dim: int, eager_free: bool) -> dict:
    """Runs in a fresh process: build net and points, then time and measure one NTK method."""
    model = build_model(
        dim, width, depth, "swish", 10.0, generator=torch.Generator().manual_seed(0)
    )
    x = torch.randn(points, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    fn, repeats = METHODS[method]
    fn(model, x[:2])  # warm-up: one-time costs out
    seconds = _best_seconds(fn, model, x, repeats)
    peak_mib, theta = _peak_mib(fn, model, x, eager_free)
    return {
        "benchmark": "ntk",
        "method": method,
        "points": points,
        "width": width,
        "depth": depth,
        "dim": dim,
        "n_params": count_parameters(model),
        "seconds": seconds,
        "repeats": repeats,
        "peak_mib": peak_mib,
        "eager_free": eager_free,
        "threads": torch.get_num_threads(),
        "theta": theta,
    }


def _in_fresh_process(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_measure, *args).result()


def run(
    points: int = 1000,
    width: int = 512,
    depth: int = 2,
    dim: int = 10,
    eager_free: bool = True,
    fresh_processes: bool = True,
) -> list[dict]:
    """One row per method, with speed and memory ratios against the Jacobian path.
    `fresh_processes=False` measures both in this process (quicker; for smoke tests)."""
    measure = _in_fresh_process if fresh_processes else _measure
    rows = [measure(m, points, width, depth, dim, eager_free) for m in METHODS]
    fast, reference = rows
    difference = float(
        torch.linalg.norm(fast["theta"] - reference["theta"])
        / torch.linalg.norm(reference["theta"])
    )
    for row in rows:
        del row["theta"]
        row["speedup_vs_jacobian"] = reference["seconds"] / row["seconds"]
        row["memory_ratio_vs_jacobian"] = reference["peak_mib"] / row["peak_mib"]
        row["relative_difference"] = difference
    return rows


def _table(rows: list[dict]) -> str:
    head = f"{'method':<22}{'seconds':>10}{'peak MiB':>11}{'faster ×':>10}{'less memory ×':>15}"
    lines = [head, "-" * len(head)]
    lines += [
        f"{r['method']:<22}{r['seconds']:>10.3f}{r['peak_mib']:>11.1f}"
        f"{r['speedup_vs_jacobian']:>10.1f}{r['memory_ratio_vs_jacobian']:>15.1f}"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="measure memory with glibc's default (adaptive) mmap threshold",
    )
    args = parser.parse_args()
    rows = run(args.points, args.width, args.depth, args.dim, eager_free=not args.glibc_default)
    r = rows[0]
    print(
        f"NTK Gram matrix: P={r['points']}, h={r['width']}, L={r['depth']}, d={r['dim']}, "
        f"N={r['n_params']} parameters, float64, CPU, {r['threads']} torch threads"
    )
    print(_table(rows))
    print(f"relative Frobenius difference between the two Θ: {r['relative_difference']:.1e}")


if __name__ == "__main__":
    main()
