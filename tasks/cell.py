"""One cell's fixed parts before it trains: `prepare_cell(spec)` loads its data, builds its
net (θ₀ from a generator derived from ``spec.seed``), its α-trick objective and Θ₀, as the
frozen `Cell` that both engines (`tasks.train_cell`, `tasks.train_bundle`) and the record
builder (`tasks.cell_records`) read.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tasks.data import Task, input_shape, load_task
from tasks.losses import AlphaObjective, has_kink, loss_derivative
from tasks.models import build_from_spec, count_parameters
from tasks.observables import ntk_at
from tasks.specs import CellSpec

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def derived_generator(seed: int, role: str) -> torch.Generator:
    """A CPU generator for one use of a cell's seed ("init", "batch"): seeded by a hash
    of (role, seed), so it shares no stream with the data sets' generators."""
    digest = hashlib.sha256(f"phasegrid:{role}:{int(seed)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def resolve_device(name: str) -> torch.device:
    """ "auto" → cuda if available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Cell:
    """What stays fixed while one cell trains (all tensors on the training device)."""

    spec: CellSpec
    task: Task
    model: nn.Module
    objective: AlphaObjective  # θ ↦ (∇L̃, f(x_train)); holds f̃_θ₀(x_train)
    theta0: Tensor  # θ₀ [N]
    test_initial: Tensor  # f̃_θ₀(x_test) [n_test]
    kernel_initial: Tensor  # f̃_θ₀(x_kernel) [P_K]
    ntk_initial: Tensor | None  # Θ₀ on the kernel set [P_K, P_K], if measured
    n_params: int


def prepare_cell(spec: CellSpec, task: Task | None = None) -> Cell:
    """Data, net (θ₀ from the "init" generator), α-trick objective and Θ₀ of one cell.
    ``task``: the data of ``spec.data`` already loaded on the device (a bundle's cells
    share one), else loaded here."""
    dtype = _DTYPES.get(spec.observables.dtype)
    if dtype is None:
        raise ValueError(
            f"observables.dtype must be one of {', '.join(_DTYPES)}, got {spec.observables.dtype!r}"
        )
    device = resolve_device(spec.observables.device)
    if task is None:
        raw = load_task(spec.data, dtype)
        fields = ("x_train", "y_train", "x_test", "y_test", "x_kernel", "y_kernel")
        task = Task(**{f: getattr(raw, f).to(device) for f in fields}, source=raw.source)
    shape = input_shape(spec.data)
    model = build_from_spec(
        spec.model,
        math.prod(shape),
        derived_generator(spec.seed, "init"),
        dtype,
        input_shape=shape,
    ).to(device)
    theta0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    with torch.no_grad():
        initial = [model(x) for x in (task.x_train, task.x_test, task.x_kernel)]
    objective = AlphaObjective(
        model,
        spec.alpha,
        loss_derivative(spec.loss),
        task.x_train,
        task.y_train,
        initial[0],
        kinked=has_kink(spec.loss),
    )
    ntk0 = ntk_at(model, theta0, task.x_kernel) if spec.observables.ntk else None
    return Cell(
        spec, task, model, objective, theta0, initial[1], initial[2], ntk0, count_parameters(model)
    )
