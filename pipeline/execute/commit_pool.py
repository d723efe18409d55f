"""Commits of different cells in flight at once, so the driver is never the bottleneck.

On an object store one commit is a few requests of 20–50 ms each; one at a time, a
campaign of 10⁴ cells spends minutes to hours committing. `CommitPool` runs each cell's
commit on one of `concurrency` threads ([resources] commit_concurrency), while the driver
goes on consuming the stream:
- at most `concurrency` commits are in flight (a submit waits for a free slot), so
  finished results never pile up in memory;
- one cell's jobs never overlap: a job waits for the cell's previous one (and the sink
  waits for it before a new attempt of the cell starts);
- each job's `after` (counting, progress) runs on the driver's thread, when the job is
  collected (`collect`, `wait_for`, `close`);
- `close` waits for every job, even while an exception (SIGINT, SIGTERM) unwinds the
  driver, so nothing that finished is lost; the first job error is raised then, or by
  the next `collect` (a store failure stops the run, exit code 1).
With `concurrency` 1 a job runs inline, in the driver's thread, as before the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

DEFAULT_CONCURRENCY = 8  # [resources] commit_concurrency


@dataclass
class _Job:
    future: Future[None]
    after: Callable[[], None]


class CommitPool:
    """A bounded pool of per-cell store jobs; see the module docstring."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY):
        if concurrency < 1:
            raise ValueError(f"commit_concurrency must be ≥ 1, got {concurrency}")
        self.concurrency = concurrency
        self._executor = (
            ThreadPoolExecutor(concurrency, thread_name_prefix="phasegrid-commit")
            if concurrency > 1
            else None
        )
        self._jobs: dict[str, _Job] = {}  # cell_id -> its job in flight

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    def submit(self, cell_id: str, work: Callable[[], None], after: Callable[[], None]) -> None:
        """Run `work` (the cell's commit) on the pool, then `after` on this thread."""
        if self._executor is None:
            work()
            after()
            return
        self.wait_for(cell_id)
        while len(self._jobs) >= self.concurrency:
            wait([job.future for job in self._jobs.values()], return_when=FIRST_COMPLETED)
            self.collect()
        self._jobs[cell_id] = _Job(self._executor.submit(work), after)

    def collect(self) -> None:
        """Finish the jobs that are done: their `after`, or their error raised."""
        for cell_id, job in list(self._jobs.items()):
            if job.future.done():
                self._finish(cell_id)

    def wait_for(self, cell_id: str) -> None:
        """Wait until the cell's job in flight (if any) is done, and finish it."""
        if cell_id in self._jobs:
            self._jobs[cell_id].future.exception()  # waits
            self._finish(cell_id)

    def _finish(self, cell_id: str) -> None:
        job = self._jobs.pop(cell_id)
        job.future.result()  # raises the job's error
        job.after()

    def close(self, raise_errors: bool = True) -> None:
        """Wait for every job (each finished, errors or not), then stop the threads;
        raise the first job error if `raise_errors` (False while another exception is
        already unwinding the driver: that one is the news)."""
        first: BaseException | None = None
        for cell_id in list(self._jobs):
            try:
                self.wait_for(cell_id)
            except Exception as error:  # the others must still be stored
                first = first or error
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if first is not None and raise_errors:
            raise first
