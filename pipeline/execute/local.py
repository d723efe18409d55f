"""The in-process executor: `RayExecutor`'s interface without Ray, for tests and tiny runs.

Each bundle runs `bundle_task` (the very body of a Ray task) in this process, one after
the other, and every event goes to the sink exactly as the Ray scheduler hands it on, so
a run through it stores the same rows, with the same provenance, as one through Ray.
There are no workers to lose: an exception that escapes the task body fails the bundle's
unfinished cells, as a `RayTaskError` does under Ray.
"""

from __future__ import annotations

import traceback

from pipeline.execute.stream import FLUSH_SECONDS, AttemptFinished, CellSink, bundle_task, deliver
from pipeline.spec.schema import Resources
from tasks.specs import CellSpec


class LocalExecutor:
    """Runs bundles one after the other in this process (no Ray session needed)."""

    def __init__(self, flush_seconds: float = FLUSH_SECONDS):
        self.flush_seconds = flush_seconds

    def run(self, bundles: list[list[CellSpec]], resources: Resources, sink: CellSink) -> None:
        for bundle in bundles:
            self.run_bundle(bundle, sink)

    def run_bundle(self, bundle: list[CellSpec], sink: CellSink) -> None:
        specs = {s.cell_id: s for s in bundle}
        finished: set[str] = set()
        try:
            for event in bundle_task(bundle, self.flush_seconds, sink.resume_points(bundle)):
                deliver(event, specs[event.cell_id], sink, 1)
                if isinstance(event, AttemptFinished):
                    finished.add(event.cell_id)
                sink.tick()
        except Exception:  # outside train_cell: deterministic, as a RayTaskError
            why = f"the task raised outside train_cell: {traceback.format_exc()}"
            for spec in bundle:
                if spec.cell_id not in finished:
                    sink.lost(spec, why, 1)
