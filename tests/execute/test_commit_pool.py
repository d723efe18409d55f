"""The driver's commit pool: commits of different cells overlap (bounded), one cell's
jobs never do, every finished job is kept when the driver unwinds (also through the real
driver, on a moto S3 store), and a job's error stops the run instead of vanishing. Real
threads, real sleeps of a few ms."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from pipeline.drivers.run import run_spec
from pipeline.execute.commit_pool import CommitPool
from pipeline.execute.stream import AttemptFinished, run_cell
from pipeline.spec.campaign import load_campaign_text
from pipeline.store.campaign_store import ParquetStore
from pipeline.store.location import join_uri
from pipeline.store.rows import utc_now


class Recorder:
    """Jobs that sleep, noting how many ran at once and in which order per cell."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.order: list[tuple[str, int]] = []
        self.after: list[tuple[str, int]] = []
        self.threads: set[str] = set()

    def job(self, cell: str, n: int, seconds: float = 0.02):
        def work() -> None:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            time.sleep(seconds)
            with self.lock:
                self.running -= 1
                self.order.append((cell, n))

        def after() -> None:
            self.after.append((cell, n))
            self.threads.add(threading.current_thread().name)

        return work, after


def test_commits_of_different_cells_overlap_up_to_the_bound():
    recorder, pool = Recorder(), CommitPool(4)
    for i in range(12):
        pool.submit(f"cell-{i}", *recorder.job(f"cell-{i}", 0, 0.1))
        assert pool.in_flight <= 4
    pool.close()
    assert recorder.most == 4  # overlapping, never above the bound
    assert sorted(recorder.after) == sorted((f"cell-{i}", 0) for i in range(12))
    assert recorder.threads == {threading.current_thread().name}  # `after` on the driver


def test_one_at_a_time_runs_inline_in_the_driver_thread():
    recorder, pool = Recorder(), CommitPool(1)
    for i in range(3):
        pool.submit(f"cell-{i}", *recorder.job(f"cell-{i}", 0, 0.0))
        assert recorder.after[-1] == (f"cell-{i}", 0) and pool.in_flight == 0
    assert recorder.most == 1


def test_jobs_of_one_cell_run_in_order_and_never_overlap():
    recorder, pool = Recorder(), CommitPool(8)
    for n in range(5):
        pool.submit("same", *recorder.job("same", n, 0.01))
        pool.submit(f"other-{n}", *recorder.job(f"other-{n}", n, 0.03))
    pool.close()
    assert [n for cell, n in recorder.order if cell == "same"] == list(range(5))
    assert [n for cell, n in recorder.after if cell == "same"] == list(range(5))


def test_an_interrupted_driver_still_stores_every_finished_commit():
    """The driver unwinds (SIGINT/SIGTERM arrive as exceptions) with commits in flight:
    closing the pool waits for each, and the unwinding exception is the one that shows."""
    recorder, pool = Recorder(), CommitPool(3)
    with pytest.raises(KeyboardInterrupt):
        try:
            for i in range(6):
                pool.submit(f"cell-{i}", *recorder.job(f"cell-{i}", 0, 0.05))
            raise KeyboardInterrupt
        finally:
            pool.close(raise_errors=False)
    assert len(recorder.order) == 6 and len(recorder.after) == 6


def test_a_failed_commit_is_raised_and_the_others_are_still_stored():
    recorder, pool = Recorder(), CommitPool(4)

    def broken() -> None:
        time.sleep(0.01)
        raise OSError("the store is gone")

    pool.submit("bad", broken, lambda: None)
    for i in range(3):
        pool.submit(f"cell-{i}", *recorder.job(f"cell-{i}", 0))
    with pytest.raises(OSError, match="the store is gone"):
        pool.close()
    assert len(recorder.after) == 3


def test_a_bound_below_one_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="commit_concurrency"):
        CommitPool(0)


class FinishAllThenInterrupt:
    """An executor whose cells all finish at once (one real attempt's rows each), then
    the driver is interrupted (SIGINT/SIGTERM unwind as exceptions) with the commits
    still in flight on a store that answers each request 20 ms late."""

    def __init__(self, end, server) -> None:
        self.end, self.server, self.in_flight_at_interrupt = end, server, 0
        self.sink = None

    def run(self, bundles, resources, sink) -> None:
        self.sink = sink
        self.server.requests.latency_seconds = 0.02
        for cell in (c for bundle in bundles for c in bundle):
            event = AttemptFinished(
                cell.cell_id, "a", self.end.measurements, self.end.result, None, utc_now()
            )
            sink.finished(event, cell, 1)
        self.in_flight_at_interrupt = sink.commits.in_flight
        raise KeyboardInterrupt


def test_a_driver_interrupted_with_commits_in_flight_keeps_every_finished_cell(
    stripe_spec, moto_s3
):
    spec, text = load_campaign_text(stripe_spec(flow={"max_steps": 60}))
    assert spec.resources.commit_concurrency == 8  # the default: commits overlap
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        end = next(e for e in run_cell(spec.cells()[0], 0.0) if isinstance(e, AttemptFinished))
    finally:
        torch.set_num_threads(threads)
    executor = FinishAllThenInterrupt(end, moto_s3)
    with pytest.raises(KeyboardInterrupt):
        run_spec(spec, text, moto_s3.uri("results"), executor)
    moto_s3.requests.latency_seconds = 0.0
    assert executor.in_flight_at_interrupt > 1  # really overlapping when interrupted
    sink = executor.sink
    assert (sink.commits.in_flight, sink.done) == (0, 8)  # all stored before it unwound
    store = ParquetStore.open(join_uri(moto_s3.uri("results"), spec.name))
    assert store.cell_states() == {c.cell_id: ("done", 1) for c in spec.cells()}
    assert not store.live_attempts()
