"""Checks that a run can start on this cluster, made before anything is written or (where
possible) Ray is started: each failure is one line with the fix (`InfeasibleRunError`).

- `unreachable_address`: a TCP connection to a `--address` within a bounded time
  (default 15 s, `$PHASEGRID_ADDRESS_TIMEOUT_S`), instead of Ray's own minutes of retries.
- `infeasible_resources`: a task shape the cluster can never place (a run would hang).
- `missing_cuda`: `device = "cuda"` without CUDA in this torch, or without a GPU per task.
"""

from __future__ import annotations

import os
import socket
import time

ADDRESS_TIMEOUT_ENV = "PHASEGRID_ADDRESS_TIMEOUT_S"
ADDRESS_TIMEOUT_DEFAULT_S = 15.0
EMBEDDED_HINT = "or leave --address (and $RAY_ADDRESS) out to run on embedded Ray here"


class InfeasibleRunError(ValueError):
    """The run cannot start as asked; the message (one line) says how to fix it."""


def address_timeout() -> float:
    """Seconds a `--address` may take to answer: $PHASEGRID_ADDRESS_TIMEOUT_S, else 15."""
    raw = os.environ.get(ADDRESS_TIMEOUT_ENV, "").strip()
    try:
        seconds = float(raw) if raw else ADDRESS_TIMEOUT_DEFAULT_S
    except ValueError:
        raise InfeasibleRunError(
            f"{ADDRESS_TIMEOUT_ENV}={raw!r} is not a number of seconds: set e.g. 15"
        ) from None
    return seconds if seconds > 0 else ADDRESS_TIMEOUT_DEFAULT_S


def unreachable_address(address: str, seconds: float) -> str | None:
    """Why `address` (HOST:PORT, optionally ray://HOST:PORT) does not answer a TCP connection
    within `seconds`; None when it does, or for "auto" (Ray finds the cluster itself)."""
    if address == "auto":
        return None
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        return (
            f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, the head "
            f"node's GCS port): fix it, {EMBEDDED_HINT}"
        )
    start = time.monotonic()
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return None
    except OSError as err:
        why = err.strerror or type(err).__name__
        waited = time.monotonic() - start
        return (
            f"cannot reach the Ray cluster at {address} ({why}, after {waited:.1f} s of at "
            f"most {seconds:g} s): check the head node's address and port (`ray status` on "
            f"the head node), that it is up and reachable from here, {EMBEDDED_HINT}"
        )


def infeasible_resources(
    cpus_per_task: float, gpus_per_task: float, available: dict[str, float], where: str
) -> str | None:
    """Why a task of this shape can never run on a cluster with `available` resources
    (Ray's names: "CPU", "GPU"); None when it can. `where` names the cluster in messages."""
    for name, need in (("CPU", cpus_per_task), ("GPU", gpus_per_task)):
        have = available.get(name, 0.0)
        if need > have:
            return (
                f"each task asks for {need:g} {name} ([resources] {name.lower()}s_per_task) "
                f"but {where} has {have:g}: lower it, or run on a cluster with enough "
                f"{name}s (--address)"
            )
    return None


def missing_cuda(device: str, gpus_per_task: float, torch_has_cuda: bool | None) -> str | None:
    """Why `device = "cuda"` cannot work: no GPU per task (Ray hides GPUs from tasks that
    ask for none), or (`torch_has_cuda` False: the torch that will train) no CUDA."""
    if device != "cuda":
        return None
    if gpus_per_task <= 0:
        return (
            '[observables] device = "cuda" but [resources] gpus_per_task = 0, so no task '
            "would see a GPU: set gpus_per_task (e.g. 1, or 0.25 to share one), or "
            'device = "cpu"'
        )
    if torch_has_cuda is False:
        import torch

        return (
            f'[observables] device = "cuda" but this torch ({torch.__version__}) has no CUDA '
            "device: install a CUDA build of torch (README, Installing), run where a GPU "
            'is, or set device = "cpu" (or "auto")'
        )
    return None
