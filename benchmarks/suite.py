"""The benchmark rows, by name, at full or quick (`--quick`: tiny, for the smoke test)
sizes, on a CPU or a CUDA device. Modules are imported when their row runs, so that a
machine without Ray (the GPU machine) runs every row but orchestration."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.common import Row, best_seconds, synchronizer, unavailable

ROWS = (
    "ensemble",
    "peer",
    "flow-step",
    "ntk",
    "orchestration",
    "scaling",
    "integrator",
    "store-scale",
    "store-object",
)
NTK_SIZE = {"points": 1000, "width": 512, "depth": 2, "dim": 10}
NTK_QUICK = {"points": 20, "width": 16, "depth": 2, "dim": 3}
NTK_TARGET = 20.0  # issue 2: ≥ 20× faster and ≥ 20× less memory


def ensemble(quick: bool, device: str, **_) -> list[Row]:
    from benchmarks import ensemble as bench

    if quick:
        return bench.run(members=2, sizes=bench.QUICK_SIZES, device=device)
    return bench.run(
        device=device, sizes=bench.GPU_SIZES if device.startswith("cuda") else bench.SIZES
    )


def peer(quick: bool, device: str, **_) -> list[Row]:
    from benchmarks import peer as bench

    return bench.run(steps=20 if quick else bench.STEPS, device=device)


def flow_step(quick: bool, device: str, **_) -> list[Row]:
    from benchmarks import flow_step as bench

    return bench.run(bench.QUICK_SIZES if quick else bench.SIZES, device=device)


def integrator(quick: bool, device: str, **_) -> list[Row]:
    from benchmarks import integrator as bench

    return bench.run(quick=quick, device=device)


def scaling(quick: bool, device: str, **_) -> list[Row]:
    from benchmarks import scaling as bench

    return bench.run(bench.QUICK_SERIES if quick else bench.SERIES, device=device)


def store_scale(quick: bool, device: str, **_) -> list[Row]:
    """The store's commands at 10³, 10⁴, 10⁵ cells ($PHASEGRID_STORE_SCALE_SIZES, e.g.
    "1000,10000", to measure fewer on a slow machine: say so when quoting; "" for none),
    one file per cell up to $PHASEGRID_STORE_SCALE_PER_CELL_MAX cells, and the requests of
    `status` on S3 at $PHASEGRID_STORE_SCALE_S3 cells (default 10⁴; 0: not counted)."""
    import os

    from benchmarks import store_scale as bench

    chosen = os.environ.get("PHASEGRID_STORE_SCALE_SIZES")
    sizes = tuple(int(n) for n in chosen.split(",") if n) if chosen is not None else bench.SIZES
    s3 = int(os.environ.get("PHASEGRID_STORE_SCALE_S3", "10000"))  # 0: no S3 count
    per_cell = int(os.environ.get("PHASEGRID_STORE_SCALE_PER_CELL_MAX", bench.PER_CELL_MAX))
    if quick:
        return bench.run(bench.QUICK_SIZES, s3_cells=0)
    return bench.run(sizes, per_cell, s3_cells=s3)


def store_object(quick: bool, device: str, **_) -> list[Row]:
    """A cell's commit on moto S3 at 30 ms per request (quick: 1 ms, a few cells, moto in
    this process)."""
    from benchmarks import store_object as bench

    if quick:
        return bench.run(bench.QUICK_SIZES, 0.001, own_process=False, max_steps=30)
    return bench.run()


def orchestration(quick: bool, device: str, tune_fresh_workers: bool = False, **_) -> list[Row]:
    if device != "cpu":
        return [
            unavailable(
                "orchestration",
                "phasegrid vs Ray",
                f"skipped on {device}: the GPU machine has no Ray; run it on a CPU machine",
            )
        ]
    try:
        import ray  # noqa: F401
    except ImportError:
        return [unavailable("orchestration", "phasegrid vs Ray", "skipped: ray not installed")]
    from benchmarks import orchestration as bench

    return bench.run(5 if quick else bench.CELLS, reuse_actors=not tune_fresh_workers)


def ntk(quick: bool, device: str, **_) -> list[Row]:
    """Fast layer-wise NTK vs the torch.func Jacobian NTK: time and peak memory rows.
    CPU: benchmarks/ntk.py (fresh processes, resident-set peaks). CUDA: both in this
    process, peak from torch.cuda.max_memory_allocated."""
    size = NTK_QUICK if quick else NTK_SIZE
    if device.startswith("cuda"):
        fast, ref = _ntk_cuda(device, **size)
    else:
        from benchmarks.ntk import run

        fast, ref = run(**size, fresh_processes=not quick)
    case = f"P={size['points']} h={size['width']} L={size['depth']} d={size['dim']}"
    note = f"relative difference of the two Θ {fast['relative_difference']:.1e}"
    return [
        Row(
            "ntk",
            f"time, {case}",
            fast["seconds"],
            ref["seconds"],
            "torch.func Jacobian",
            "s",
            ref["seconds"] / fast["seconds"],
            NTK_TARGET,
            note,
            _plain(fast, ref),
        ),
        Row(
            "ntk",
            f"peak memory, {case}",
            fast["peak_mib"],
            ref["peak_mib"],
            "torch.func Jacobian",
            "MiB",
            ref["peak_mib"] / fast["peak_mib"],
            NTK_TARGET,
            "CPU: resident-set peak"
            if not device.startswith("cuda")
            else "CUDA: max_memory_allocated",
            _plain(fast, ref),
        ),
    ]


def _plain(fast: dict, ref: dict) -> dict:
    return {
        "fast": {k: v for k, v in fast.items() if k != "theta"},
        "jacobian": {k: v for k, v in ref.items() if k != "theta"},
    }


def _ntk_cuda(device: str, points: int, width: int, depth: int, dim: int) -> tuple[dict, dict]:
    import torch

    from tasks.models import build_model
    from tasks.ntk import ntk_gram, ntk_gram_jacobian

    model = build_model(
        dim, width, depth, "swish", 10.0, generator=torch.Generator().manual_seed(0)
    ).to(device)
    x = torch.randn(
        points, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    ).to(device)
    out = []
    for fn in (ntk_gram, ntk_gram_jacobian):
        fn(model, x[:2])
        seconds = best_seconds(lambda: fn(model, x), 3, synchronizer(device))
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        theta = fn(model, x)
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        out.append({"seconds": seconds, "peak_mib": peak, "theta": theta})
    difference = float(
        torch.linalg.norm(out[0]["theta"] - out[1]["theta"]) / torch.linalg.norm(out[1]["theta"])
    )
    for row in out:
        row["relative_difference"] = difference
        del row["theta"]
    return out[0], out[1]


BENCHMARKS: dict[str, Callable[..., list[Row]]] = {
    "ensemble": ensemble,
    "peer": peer,
    "flow-step": flow_step,
    "ntk": ntk,
    "orchestration": orchestration,
    "scaling": scaling,
    "integrator": integrator,
    "store-scale": store_scale,
    "store-object": store_object,
}
