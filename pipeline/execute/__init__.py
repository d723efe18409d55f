"""Running cells: the Ray session, the scheduler, the store sink, progress, and an
in-process executor with the scheduler's interface for tests and tiny runs."""
