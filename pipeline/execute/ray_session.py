"""Start or join Ray, working around the Ray 2.60 pitfalls measured here (design.md §3).

- Embedded (no address): `ray.init(address="local")` always starts a fresh Ray inside this
  process. Unlike `address=None` it never reads a stale `ray_current_cluster` file left in
  Ray's temp dir (which makes `ray.init(num_cpus=...)` fail with "When connecting to an
  existing cluster, num_cpus and num_gpus must not be provided"), so that file is left
  alone. The dashboard is off, and every port binds to 127.0.0.1 only: Ray replaces a
  loopback `_node_ip_address` by the machine's address (and GCS, raylet, agents and
  workers then listen on all interfaces) unless its "cluster mode" is off, which
  `_loopback_only` switches for the init (measured with `ss -ltnp`).
- Cluster (`--address` or RAY_ADDRESS): Ray 2.60 clusters use token auth by default and
  a client without `RAY_AUTH_MODE=token` is refused (it retries silently, then raises a
  bare ConnectionError). When RAY_AUTH_MODE is unset and a token is available
  (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, where `ray start` writes it),
  token mode is switched on; a token client also joins a cluster started with
  RAY_AUTH_MODE=disabled (measured), but gets no streamed result back (see Pre-flight).
  Setting the variable alone is not enough once ray is imported (Ray caches it; measured),
  see `_enable_token_auth`. A failed connection
  raises RayConnectError saying what to do.
- Pre-flight (cluster path only): a driver whose token mode differs from the cluster's can
  join it, yet the workers cannot send results back (InvalidAuthToken in their logs) and a
  run would hang with 0 cells done. `_preflight` runs one trivial streaming task after
  joining and waits at most PHASEGRID_RAY_PREFLIGHT_S (default 60) seconds for its item;
  otherwise it disconnects and raises RayConnectError with the fix.
- GPU tasks (pipeline/execute/scheduler.py): `max_calls=0` (Ray's default for GPU tasks is 1, a
  fresh worker process per task) and an explicit `num_cpus` (a GPU task otherwise also
  takes one CPU).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_FILE = Path.home() / ".ray" / "auth_token"
PREFLIGHT_ENV = "PHASEGRID_RAY_PREFLIGHT_S"
PREFLIGHT_DEFAULT_S = 60.0


class RayConnectError(RuntimeError):
    """Ray could not be started or joined; the message says how to fix it."""


@dataclass(frozen=True)
class RaySession:
    """The Ray this driver uses. `owned`: started by us (and shut down by `close`)."""

    address: str
    owned: bool

    def close(self) -> None:
        if self.owned:
            import ray

            ray.shutdown()


def resolve_address(address: str | None) -> str | None:
    """The cluster address to join: the argument, else $RAY_ADDRESS, else None (embedded)."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    return None if address in (None, "local") else address


def _enable_token_auth() -> None:
    """RAY_AUTH_MODE=token when it is unset and a token exists, also in a process that has
    already imported ray: Ray caches its config at import, so this goes through Ray's own
    helper, which sets the variable and refreshes that cache (what `ray.init()` does for a
    new local cluster, but not when joining one)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray version: the variable is all we can set
        if (
            os.environ.get("RAY_AUTH_TOKEN")
            or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or TOKEN_FILE.exists()
        ):
            os.environ["RAY_AUTH_MODE"] = "token"
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def connect_error(address: str, err: Exception) -> RayConnectError:
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    return RayConnectError(
        f"could not connect to the Ray cluster at {address} ({type(err).__name__}: {err}). "
        f"Check the address (`ray status --address {address}` on the head node). Ray 2.60 "
        f"clusters use token auth by default (RAY_AUTH_MODE is {mode} here): export "
        "RAY_AUTH_MODE=token and make the cluster's token available (RAY_AUTH_TOKEN, or "
        f"copy the head node's ~/.ray/auth_token to {TOKEN_FILE}), or start the cluster "
        "with RAY_AUTH_MODE=disabled on a trusted network. Without --address, phasegrid "
        "runs on embedded Ray on this machine."
    )


def preflight_seconds() -> float:
    """How long the pre-flight task may take: $PHASEGRID_RAY_PREFLIGHT_S, else 60 s."""
    raw = os.environ.get(PREFLIGHT_ENV, "").strip()
    try:
        seconds = float(raw) if raw else PREFLIGHT_DEFAULT_S
    except ValueError:
        raise RayConnectError(f"{PREFLIGHT_ENV}={raw!r} is not a number of seconds") from None
    return seconds if seconds > 0 else PREFLIGHT_DEFAULT_S


def preflight_error(address: str, seconds: float, err: Exception) -> RayConnectError:
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    return RayConnectError(
        f"joined the Ray cluster at {address}, but it did not run a test task within "
        f"{seconds:g} s ({type(err).__name__}: {err}). The usual cause is a token-auth "
        f"mismatch between this driver (RAY_AUTH_MODE is {mode} here) and the cluster: "
        "its workers cannot send results back (InvalidAuthToken in their logs). Start the "
        "cluster with RAY_AUTH_MODE=token and the same token as this driver (RAY_AUTH_TOKEN "
        f"or {TOKEN_FILE}), or set RAY_AUTH_MODE=disabled on both, see cluster/README.md. "
        f"(A busy cluster may just be slow: raise {PREFLIGHT_ENV}.)"
    )


def _ping() -> Iterator[int]:
    yield 1


def _preflight(address: str, seconds: float) -> None:
    """Run one zero-CPU streaming-generator task (how pipeline/execute/scheduler.py gets results:
    a plain task's return rides on the driver's own call and passes even on a mismatch,
    measured) and wait at most `seconds` for its item; on timeout or any Ray error,
    disconnect and raise RayConnectError."""
    import ray

    err: Exception = RuntimeError("the test task returned a wrong value")
    try:
        stream = ray.remote(num_cpus=0, max_retries=0, num_returns="streaming")(_ping).remote()
        ready, _ = ray.wait([stream], timeout=seconds)
        if not ready:
            err = TimeoutError("no streamed item came back")
        # ray's stubs type a streaming task's return as ObjectRef; it is an ObjectRefGenerator
        elif ray.get(next(stream), timeout=seconds) == 1:  # type: ignore[call-overload]
            return
    except Exception as caught:  # GetTimeoutError, RayError, auth errors: all mean unusable
        err = caught
    ray.shutdown()
    raise preflight_error(address, seconds, err) from None


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Keep an embedded Ray on 127.0.0.1 while it starts. Ray reads
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, at import, into `ENABLE_RAY_CLUSTER`; while it is
    off, a loopback node address is kept as given. Switched on the imported constant (so it
    works whenever ray was imported) and restored afterwards."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def start_ray(address: str | None = None, num_cpus: int | None = None) -> RaySession:
    """Join the cluster at `address` (or $RAY_ADDRESS), or start an embedded Ray with
    `num_cpus` (default: this machine's CPU count). Reuses a Ray already initialised in
    this process (then `owned` is False). Side effects: may set RAY_AUTH_MODE (see module)."""
    address = resolve_address(address)
    if address is not None:
        _enable_token_auth()
    import ray

    if ray.is_initialized():
        return RaySession(ray.get_runtime_context().gcs_address, owned=False)
    seconds = preflight_seconds() if address is not None else 0.0
    common: dict[str, Any] = dict(
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=True,
        include_dashboard=False,
    )
    if address is None:
        with _loopback_only():
            ray.init(
                address="local",
                num_cpus=num_cpus or os.cpu_count(),
                _node_ip_address="127.0.0.1",
                **common,
            )
        return RaySession(ray.get_runtime_context().gcs_address, owned=True)
    try:
        ray.init(address=address, **{k: v for k, v in common.items() if k != "include_dashboard"})
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise connect_error(address, err) from None
    _preflight(address, seconds)
    return RaySession(address, owned=True)


def task_capacity(cpus_per_task: float, gpus_per_task: float) -> int:
    """How many tasks of this shape the cluster can run at once (at least 1)."""
    import ray

    total = ray.cluster_resources()
    fits = [total.get("CPU", 0.0) / cpus_per_task] if cpus_per_task > 0 else []
    if gpus_per_task > 0:
        fits.append(total.get("GPU", 0.0) / gpus_per_task)
    return max(1, int(min(fits))) if fits else 1
