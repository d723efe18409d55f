"""store-object: a cell's commit on an object store, and commits that overlap (issue 17).

    .venv/bin/python -m benchmarks --only store-object

A moto S3 server on loopback (benchmarks/moto_s3.py) counts every request and sleeps
LATENCY_SECONDS (30 ms) before answering each, as a remote object store would. One real
stripe cell is trained once; its rows are committed under distinct cells (seeds):
- requests and wall seconds per commit, `ParquetStore.commit` (the object-store protocol:
  final keys, cells record last), against the staged protocol (`_pending/`, a marker,
  then a copy and a delete per file: what the local disk does with renames, and what
  every object-store commit did before), both on the same server, in turn;
- the same commit on the local disk (tmp dir), the figure the object store is held to;
- the driver's whole path per cell (attempt start, one live batch, finish) in requests;
- cells committed per second through the driver's sink (`StoreSink.finished`: commit,
  live rows and snapshot deleted) with the commit pool ([resources] commit_concurrency,
  POOL) against one at a time (commit_concurrency = 1).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable

from benchmarks.common import REPO, Row

LATENCY_SECONDS = 0.030
POOL = 8  # the default [resources] commit_concurrency
SIZES = {"commits": 6, "cells": 48}
QUICK_SIZES = {"commits": 1, "cells": 4}
REQUESTS_TARGET = 10  # issue 17: a cell's commit in ≤ 10 requests
POOL_TARGET = 4.0  # cells/s with the pool ≥ 4× one at a time at 30 ms


def _trained(n: int, max_steps: int) -> tuple[list, object]:
    """`n` distinct cells (seeds) of campaigns/stripe_small.toml and one real finished
    attempt of the first (`max_steps` steps), whose rows every cell commits."""
    import torch

    from pipeline.execute.stream import AttemptFinished, run_cell
    from pipeline.spec.campaign import load_campaign

    base = load_campaign(REPO / "campaigns" / "stripe_small.toml").cells()[0]
    base = dataclasses.replace(base, flow=dataclasses.replace(base.flow, max_steps=max_steps))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        end = next(e for e in run_cell(base, 0.0) if isinstance(e, AttemptFinished))
    finally:
        torch.set_num_threads(threads)
    return [dataclasses.replace(base, seed=1000 + i) for i in range(n)], end


def _tables(cell, end, attempt: str = "bench") -> dict:
    from pipeline.store.rows import Provenance, done_tables, utc_now

    run = Provenance(attempt, 1, "bench", "cpu", "bench", None, utc_now())
    return done_tables(cell, end.result, list(end.measurements), run)


def _per_commit(
    commit: Callable[[str, dict], None], cells: list, end, count: Callable[[], int]
) -> tuple[float, float]:
    """(requests, seconds) per commit, averaged over `cells`."""
    tables = [_tables(c, end) for c in cells]
    first, start = count(), time.perf_counter()
    for cell, table in zip(cells, tables):
        commit(cell.cell_id, table)
    seconds = time.perf_counter() - start
    return (count() - first) / len(cells), seconds / len(cells)


def _cells_per_second(uri: str, cells: list, end, concurrency: int) -> float:
    """Cells through the driver's sink per second (finish events only: commit, live rows
    and snapshot deleted), `concurrency` commits in flight at most."""
    from pipeline.execute.sink import StoreSink
    from pipeline.execute.stream import AttemptFinished
    from pipeline.store.campaign_store import ParquetStore

    store = ParquetStore.open(uri, create=True)
    start = time.perf_counter()
    with StoreSink(store, {}, len(cells), None, concurrency) as sink:
        for cell in cells:
            event = AttemptFinished(
                cell.cell_id, "a", end.measurements, end.result, None, end.finished_at
            )
            sink.finished(event, cell, 1)
    seconds = time.perf_counter() - start
    assert sink.done == len(cells), (sink.done, len(cells))
    return len(cells) / seconds


def _driver_path(store, cell, end, count: Callable[[], int]) -> int:
    """Requests of one cell's whole path through the sink: attempt start, one live
    batch, finish (one at a time, so the count is the cell's alone)."""
    from pipeline.execute.sink import StoreSink
    from pipeline.execute.stream import AttemptStarted, MeasurementBatch

    first = count()
    with StoreSink(store, {}, 1, None, 1) as sink:
        started = AttemptStarted(cell.cell_id, "p", "bench", "cpu", os.getpid(), end.finished_at)
        sink.started(started, cell)
        batch = MeasurementBatch(cell.cell_id, "p", 0, end.measurements[:5])
        sink.batch(batch, cell)
        finished = dataclasses.replace(end, cell_id=cell.cell_id, attempt_id="p")
        sink.finished(finished, cell, 1)
    return count() - first


def run(
    sizes: dict[str, int] = SIZES,
    latency_seconds: float = LATENCY_SECONDS,
    own_process: bool = True,
    max_steps: int = 100,
) -> list[Row]:
    """The rows; `own_process` False (the quick smoke run) keeps moto in this process."""
    from benchmarks.moto_s3 import CREDENTIALS, moto_s3
    from pipeline.store import commits
    from pipeline.store.campaign_store import ParquetStore

    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    n_commits, n_cells = sizes["commits"], sizes["cells"]
    cells, end = _trained(3 * n_commits + 1 + 2 * n_cells, max_steps)
    staged_cells, object_cells, local_cells = (
        cells[i * n_commits : (i + 1) * n_commits] for i in range(3)
    )
    path_cell, pool_cells = cells[3 * n_commits], cells[3 * n_commits + 1 :]
    with moto_s3(latency_seconds, own_process=own_process) as server:
        count = lambda: server.requests.total
        store = ParquetStore.open(server.uri("bench/commits"), create=True)
        staged = _per_commit(
            lambda c, t: commits.commit_local(store.location, c, t), staged_cells, end, count
        )
        ours = _per_commit(store.commit, object_cells, end, count)
        path = _driver_path(store, path_cell, end, count)
        one = _cells_per_second(server.uri("bench/one"), pool_cells[:n_cells], end, 1)
        pooled = _cells_per_second(server.uri("bench/pool"), pool_cells[n_cells:], end, POOL)
    with tempfile.TemporaryDirectory() as tmp:
        local_store = ParquetStore.open(os.path.join(tmp, "campaign"), create=True)
        local = _per_commit(local_store.commit, local_cells, end, lambda: 0)
    ms = latency_seconds * 1000
    at = f"moto S3, {ms:.0f} ms per request"
    details = {
        "latency_seconds": latency_seconds,
        "requests_per_commit": {"object": ours[0], "staged": staged[0]},
        "seconds_per_commit": {"object": ours[1], "staged": staged[1], "local": local[1]},
        "driver_path_requests": path,
        "cells_per_second": {"pool": pooled, "one_at_a_time": one, "pool_size": POOL},
        "sizes": sizes,
    }
    return [
        Row(
            "store-object",
            f"requests per commit ({at})",
            ours[0],
            staged[0],
            "staged + copied (_pending/)",
            "requests",
            staged[0] / ours[0],
            staged[0] / REQUESTS_TARGET,
            f"target: ≤ {REQUESTS_TARGET} requests; the driver's whole path for a cell "
            f"(start, one live batch, finish): {path} requests",
            details,
        ),
        Row(
            "store-object",
            f"seconds per commit ({at})",
            ours[1],
            staged[1],
            "staged + copied (_pending/)",
            "s",
            staged[1] / ours[1],
            None,
            f"local disk: {local[1] * 1000:.1f} ms per commit (same rows)",
            details,
        ),
        Row(
            "store-object",
            f"commit, {at} vs local disk",
            ours[1],
            local[1],
            "local disk (tmp)",
            "s",
            local[1] / ours[1],
            None,
            "informative: what the latency costs one commit",
            details,
        ),
        Row(
            "store-object",
            f"cells committed per second ({at}, pool of {POOL})",
            pooled,
            one,
            "one at a time (commit_concurrency = 1)",
            "cells/s",
            pooled / one,
            POOL_TARGET,
            f"{n_cells} cells each, through StoreSink.finished",
            details,
        ),
    ]
