"""The driver's commit pool: commits of different cells overlap (bounded), one cell's
jobs never do, every finished job is kept when the driver unwinds, and a job's error
stops the run instead of vanishing. Real threads, real sleeps of a few ms."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.execute.commit_pool import CommitPool


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
