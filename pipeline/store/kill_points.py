"""Fault injection for the fault-tolerance tests: kill this process at a named point.

With `PHASEGRID_FAULT_KILL_AT=<event>:<n>` (several separated by commas) in the
environment, the n-th time this process reaches `kill_point(<event>)` it SIGKILLs itself:
no `finally`, no flush, exactly what a preempted node or an OOM kill does. Unset (always, in
normal use) a kill point is one dictionary lookup. The count is per process, over every
thread (commits of different cells run in the driver's commit pool). Events, in the order
a commit meets them (pipeline/store/commits.py; local disk / object store):

    write     a file half written (local: the temp name, before its rename; object
              store: an upload not completed, so nothing is visible): a torn write
    started   a cell's attempt made visible in _live/
    live      a live measurement part written
    snapshot  a training-state snapshot stored (pipeline/store/snapshots.py)
    put       object store: one data object of a commit written at its final key
    pending   a cell's files written (local: under _pending/, no COMMIT marker yet;
              object store: every data object, no cells record yet)
    commit    local: the COMMIT marker written, no file moved yet; object store: the
              cells record written (the commit point)
    move      local: one file moved from _pending/ into its table (mid-commit)
    committed a cell's commit finished
    recover   one interrupted commit finished or discarded by `recover`
    quarantine one file moved to _quarantine/
    compact_staged   a compaction's parts written under _compact/, no plan yet
    compact_planned  its plan written (the commit point), no table swapped yet
    compact_swap     one table swapped for its compacted folder (mid-compaction)
    compacted        a compaction finished
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "PHASEGRID_FAULT_KILL_AT"
EVENTS = (
    "write",
    "started",
    "live",
    "snapshot",
    "put",
    "pending",
    "commit",
    "move",
    "committed",
    "recover",
    "quarantine",
    "compact_staged",
    "compact_planned",
    "compact_swap",
    "compacted",
)
_reached: Counter[str] = Counter()
_lock = threading.Lock()


def parse_kill_at(text: str) -> dict[str, int]:
    """ "commit:2,move:1" -> {"commit": 2, "move": 1}; raises ValueError naming the fix."""
    points = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        event, _, count = item.partition(":")
        if event not in EVENTS or not count.isdigit() or int(count) < 1:
            raise ValueError(
                f"{ENV}={text!r}: each item is <event>:<n> with n ≥ 1 and event "
                f"one of {', '.join(EVENTS)}, got {item!r}"
            )
        points[event] = int(count)
    return points


def kill_point(event: str) -> None:
    """SIGKILL this process if `event` is armed in $PHASEGRID_FAULT_KILL_AT and reached for
    the n-th time; otherwise nothing."""
    text = os.environ.get(ENV)
    if not text:
        return
    with _lock:
        _reached[event] += 1
        armed = parse_kill_at(text).get(event) == _reached[event]
    if armed:
        os.kill(os.getpid(), signal.SIGKILL)
