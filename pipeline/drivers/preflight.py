"""Pre-flight: everything a run needs, checked before any file is written and, where the
check allows it, before Ray is started. Each failure is one line with its fix; together
they raise `InfeasibleRunError` (exit code 2).

1. the spec and its data (`pipeline.spec.campaign.load_campaign_text`, by the caller);
2. the device: `device = "cuda"` needs a GPU per task, and on embedded Ray a torch with CUDA;
3. the resources: on embedded Ray, a task shape this machine can place (CPUs, GPUs);
4. the store: the campaign location is writable (`pipeline.store.writable`);
5. `--address`: a TCP answer within `address_timeout()` (default 15 s);
then, on a cluster only, Ray is joined and 3. is checked against the cluster's resources
(`cluster_preflight`), still before anything is written.
"""

from __future__ import annotations

import os

from pipeline.execute.feasibility import (
    InfeasibleRunError,
    address_timeout,
    infeasible_resources,
    missing_cuda,
    unreachable_address,
)
from pipeline.execute.ray_session import resolve_address
from pipeline.execute.scheduler import RayExecutor, check_feasible
from pipeline.spec.schema import Resources
from pipeline.store.writable import unwritable_reason


def _embedded_resources(gpus_asked: float) -> dict[str, float]:
    """What embedded Ray will have here: every CPU (as `start_ray` asks for), the GPUs
    torch sees (counted only when a task asks for one: importing torch costs a second)."""
    available = {"CPU": float(os.cpu_count() or 1)}
    if gpus_asked > 0:
        import torch

        available["GPU"] = float(torch.cuda.device_count())
    return available


def _torch_has_cuda(device: str) -> bool | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.is_available()


def run_problems(
    device: str, resources: Resources, campaign: str, address: str | None
) -> list[str]:
    """Every reason (one line each, with its fix) why a run of `campaign` with this
    device and these resources cannot start here; [] when it can. Writes nothing."""
    cluster = resolve_address(address)
    cpus, gpus = float(resources.cpus_per_task), float(resources.gpus_per_task)
    found = [
        missing_cuda(device, gpus, None if cluster else _torch_has_cuda(device)),
        None
        if cluster
        else infeasible_resources(cpus, gpus, _embedded_resources(gpus), "this machine"),
        unwritable_reason(campaign),
        unreachable_address(cluster, address_timeout()) if cluster else None,
    ]
    return [problem for problem in found if problem]


def check_run(device: str, resources: Resources, campaign: str, address: str | None) -> None:
    """`run_problems`, raised as one InfeasibleRunError (one line per problem)."""
    problems = run_problems(device, resources, campaign, address)
    if problems:
        raise InfeasibleRunError("\n".join(problems))


def cluster_preflight(executor: RayExecutor, resources: Resources) -> None:
    """On a cluster (`--address`), join it now and check the task shape against its
    resources; embedded Ray is left unstarted (checked against this machine instead)."""
    if resolve_address(executor.address) is None:
        return
    executor.connect()
    check_feasible(float(resources.cpus_per_task), float(resources.gpus_per_task))
