"""How a long command ends: its exit code, its signals, and the one line saying how to go on.

Exit codes (also in `phasegrid --help` and the README):
  0    every cell done
  1    runtime failure (Ray, the store, the campaign lock)
  2    bad input, found by the pre-flight before anything is written or Ray is started
       (spec, data, device, resources, store, --address)
  3    some cells failed or stalled (after retries; the summary names them)
  130  interrupted (SIGINT, Ctrl-C)
  143  terminated (SIGTERM: walltime, preemption)
An interrupted or terminated run keeps its finished cells; running ones run again on
`resume`, whose exact, shell-quoted command line is printed.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator

OK, RUNTIME_FAILURE, BAD_INPUT, CELLS_FAILED = 0, 1, 2, 3
INTERRUPTED, TERMINATED = 130, 143

EXIT_CODES_HELP = (
    "Exit codes: 0 every cell done; 1 runtime failure (Ray, store, lock); 2 bad input "
    "(spec, data, device, resources, store, --address), found before anything is written; "
    "3 some cells failed or stalled (summary printed); 130 interrupted (SIGINT); "
    "143 terminated (SIGTERM). Interrupted runs print the exact `phasegrid resume` line."
)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt (not caught by `except Exception`)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread (so `with` blocks close:
    the store lock is released, Ray shut down); the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def resume_line(campaign: str, address: str | None = None) -> str:
    """The exact command that continues `campaign`, quoted for a POSIX shell."""
    words = ["phasegrid", "resume", campaign]
    if address:
        words += ["--address", address]
    return shlex.join(words)


def stopped_message(signal_name: str, again: str) -> str:
    """One line: what stopping left behind, and the command that goes on."""
    return (
        f"{signal_name}: finished cells are stored, running ones will run again; "
        f"continue with: {again}"
    )
