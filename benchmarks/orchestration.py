"""Orchestration overhead: the same trivial cells through `phasegrid run`, as bare Ray
tasks, and as a Ray Tune grid, in one run.

    .venv/bin/python -m benchmarks --only orchestration

The cells: a campaign of `cells` trivial stripe cells (one-hidden-layer nets of width 2-5,
d=2, P=8, 5 steps, NTK and H₀ off), so that the work is negligible and what is measured
is the machinery. Each way runs in its own fresh process, timed from the outside (Python
start, imports and Ray start-up included), on embedded Ray with this machine's CPUs and
one CPU per cell:

- phasegrid: the CLI, `phasegrid run SPEC --store TMP` (one cell per task, bundle_size 1):
  validation, manifest, streaming events, Parquet commits of every table;
- bare Ray: `ray.remote(num_cpus=1)` of `train_cell` per cell, all results `ray.get`;
- Ray Tune: `tune.Tuner` over `tune.grid_search` of the same cell configs, a function
  trainable that runs `train_cell` and reports the final result once.

Overhead per cell = (wall − Ray start-up − loop / CPUs) / cells, where "Ray start-up" is
a fresh process that imports the same code and starts and stops embedded Ray, and "loop"
is the cells run by `train_cell` in a plain loop in this process (the work itself).
Ray is imported only inside the functions: the rest of the suite must run without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, Row, unavailable

CELLS = 200
SPEC = """name = "orchestration-bench"
[data]
dataset = "stripe"
dimension = 2
train_size = 8
test_size = 8
kernel_size = 4
[model]
arch = "one-hidden"
[flow]
max_steps = 5
[observables]
ntk = false
h0_spectrum = false
[grid]
width = {widths}
alpha_tilde = [0.1, 1.0, 10.0, 100.0, 1000.0]
seed = {{range = [0, {seeds}]}}
[resources]
cpus_per_task = 1
bundle_size = 1
"""


def write_spec(directory: Path, cells: int) -> Path:
    """A campaign TOML of `cells` trivial cells (a multiple of 5 alpha_tilde values)."""
    widths = [2, 3, 4, 5] if cells % 20 == 0 else [2]
    seeds = cells // (5 * len(widths))
    path = directory / "orchestration.toml"
    path.write_text(SPEC.format(widths=widths, seeds=seeds))
    return path


def _cells(spec_path: Path) -> list:
    from pipeline.spec.campaign import load_campaign

    return load_campaign(spec_path).cells()


def _train(spec) -> list:
    from tasks.train_cell import train_cell

    return list(train_cell(spec))


def startup() -> None:
    """Import what the other ways import, start and stop embedded Ray."""
    import tasks.train_cell  # noqa: F401
    from pipeline.execute.ray_session import start_ray

    start_ray().close()


def bare(spec_path: Path) -> None:
    """Every cell as one bare Ray task; wait for all results."""
    import ray

    from pipeline.execute.ray_session import start_ray

    cells = _cells(spec_path)
    session = start_ray()
    task = ray.remote(num_cpus=1, max_retries=0)(_train)
    results = ray.get([task.remote(spec) for spec in cells])
    session.close()
    assert len(results) == len(cells)


def tune_grid(spec_path: Path, storage: Path, reuse_actors: bool = True) -> None:
    """Every cell as one trial of a Ray Tune grid search (`reuse_actors`: Tune's option;
    its default, False, starts a fresh worker process per trial)."""
    from ray import tune

    from pipeline.execute.ray_session import start_ray
    from tasks.specs import CellSpec

    cells = _cells(spec_path)
    session = start_ray()

    def trainable(config: dict) -> None:
        result = _train(CellSpec.from_dict(config["cell"]))[-1]
        tune.report({"test_error": result.test_error, "steps": result.steps})

    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(reuse_actors=reuse_actors),
        param_space={"cell": tune.grid_search([c.to_dict() for c in cells])},
        run_config=tune.RunConfig(storage_path=str(storage), name="bench", verbose=0),
    )
    results = tuner.fit()
    session.close()
    assert len(results) == len(cells) and not results.errors, results.errors


def _timed(argv: list[str]) -> tuple[float, str]:
    """(wall seconds, '' or the tail of the output if it failed) of a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0"}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    failure = "" if done.returncode == 0 else (done.stdout + done.stderr)[-600:]
    return seconds, failure


def _tune_importable() -> str:
    """'' if ray.tune imports in this environment, else the error."""
    probe = subprocess.run(
        [sys.executable, "-c", "import ray.tune"], capture_output=True, text=True
    )
    return "" if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1]


def run(cells: int = CELLS, reuse_actors: bool = True) -> list[Row]:
    """Two rows: phasegrid vs bare Ray tasks (target: within 2×, ratio ≥ 0.5) and
    phasegrid vs Ray Tune (target: ≥ 5× faster; Tune's `reuse_actors` as given)."""
    with tempfile.TemporaryDirectory(prefix="phasegrid-bench-") as tmp:
        tmp = Path(tmp)
        spec = write_spec(tmp, cells)
        me = [sys.executable, "-m", "benchmarks.orchestration"]
        phasegrid = str(Path(sys.executable).parent / "phasegrid")
        loop = time.perf_counter()
        for cell in _cells(spec):
            _train(cell)
        loop = time.perf_counter() - loop
        walls = {
            "startup": _timed(me + ["startup"]),
            "phasegrid": _timed([phasegrid, "run", str(spec), "--store", str(tmp / "s")]),
            "bare": _timed(me + ["bare", str(spec)]),
        }
        why_not = _tune_importable()
        walls["tune"] = (
            (float("nan"), why_not)
            if why_not
            else _timed(me + ["tune", str(spec), str(tmp / "tune"), str(reuse_actors)])
        )
    return _rows(walls, loop, cells, reuse_actors)


def _rows(walls: dict, loop: float, cells: int, reuse_actors: bool = True) -> list[Row]:
    """The two rows from the wall seconds (and '' or failure) of each way."""
    for way in ("startup", "phasegrid", "bare"):
        if walls[way][1]:
            raise RuntimeError(f"orchestration: {way} failed:\n{walls[way][1]}")
    start, slots = walls["startup"][0], os.cpu_count() or 1

    def overhead(way: str) -> float:
        return 1e3 * (walls[way][0] - start - loop / slots) / cells

    ours, bare_wall = walls["phasegrid"][0], walls["bare"][0]
    details = {
        "cells": cells,
        "loop_seconds": loop,
        "ray_startup_seconds": start,
        **{f"{w}_seconds": s for w, (s, _) in walls.items()},
    }
    note = (
        f"{cells} cells; overhead/cell: phasegrid {overhead('phasegrid'):.1f} ms, "
        f"bare {overhead('bare'):.1f} ms; Ray start-up {start:.1f} s, loop {loop:.1f} s"
    )
    rows = [
        Row(
            "orchestration",
            "phasegrid run vs bare Ray tasks",
            ours,
            bare_wall,
            "bare Ray tasks",
            "s (wall)",
            bare_wall / ours,
            0.5,
            note,
            details,
        )
    ]
    tune_wall, failure = walls["tune"]
    if failure:
        rows.append(
            unavailable(
                "orchestration",
                "phasegrid run vs Ray Tune grid",
                f"Ray Tune not run: {failure.splitlines()[-1][:200]}",
            )
        )
    else:
        workers = "reused" if reuse_actors else "fresh per trial"
        rows.append(
            Row(
                "orchestration",
                "phasegrid run vs Ray Tune grid",
                ours,
                tune_wall,
                "Ray Tune grid",
                "s (wall)",
                tune_wall / ours,
                5.0,
                f"overhead/cell: Ray Tune {overhead('tune'):.1f} ms (reuse_actors: "
                f"workers {workers})",
                {**details, "tune_reuse_actors": reuse_actors},
            )
        )
    return rows


def main(argv: list[str]) -> None:
    way, *args = argv
    {
        "startup": startup,
        "bare": lambda p: bare(Path(p)),
        "tune": lambda p, s, reuse: tune_grid(Path(p), Path(s), reuse == "True"),
    }[way](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
