"""Batched ensembles: which cells can train together, when it pays, and their objective.

A *bundle* is a list of cells trained as one batched ensemble by `tasks.train_bundle`:
M fully-connected nets of one shape on the same data, stacked as θ [M, N] and evaluated
with batched matmuls (`tasks.batched_fc`). Members may differ in α̃ and init seed only;
every other setting (data, net, loss, flow, observables) must be equal (`bundle_key`).

Cost model (`bundle_pays`), measured on this project's 2-core CPU, one thread, float64,
L = 2 swish nets, steady-state flow trials, M = 16 bundled vs the same cells one at a time
on train_bundle's fast single-net path (time per member-trial):

    P·N      P     d   h     alone    bundled  ratio
    3.1e5    256   5   32    504 µs   254 µs   2.0
    6.2e5    512   5   32    864 µs   478 µs   1.8
    7.3e5    256   10  48    554 µs   395 µs   1.4
    1.2e6    256   10  64    690 µs   640 µs   1.1
    1.4e6    1000  10  32    1.36 ms  1.08 ms  1.3
    1.5e6    512   10  48    972 µs   810 µs   1.2
    2.5e6    512   10  64    1.28 ms  1.38 ms  0.93
    4.8e6    1000  10  64    2.45 ms  2.48 ms  0.99
    1.8e7    1000  10  128   5.08 ms  6.37 ms  0.80
    1.4e8    2000  10  256   35.7 ms  36.5 ms  0.98 (M = 4)

A small net's step is mostly fixed Python and dispatch overhead, which a bundle pays once;
from P·N ≈ 2·10⁶ up one member's matmuls run as fast alone, and a bundle's [M, P, h]
activations leave the cache. So on a CPU a bundle is batched while P·N (N = parameters
of one member) is at most `CPU_WORK_LIMIT`; on a GPU, where one small net leaves the
device idle, always (not measured here: no GPU was available).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from tasks.batched_fc import BatchedFC
from tasks.data import input_shape
from tasks.losses import LossFn
from tasks.specs import CellSpec

CPU_WORK_LIMIT = 1_500_000  # P·N per member above which a CPU bundle runs one cell at a time
BATCHED_ARCHITECTURES = ("fc", "one-hidden")


def bundle_key(spec: CellSpec) -> tuple | None:
    """What members of one batched bundle share: everything but α̃ and the init seed.
    None when the cell cannot be batched: a CNN, a minibatch flow, or a cell that takes
    training-state snapshots (`checkpoint_every_seconds`, train_cell's resume path)."""
    batch = spec.flow.batch_size
    if (
        spec.model.arch not in BATCHED_ARCHITECTURES
        or spec.checkpoint_every_seconds
        or (batch is not None and batch < spec.data.train_size)
    ):
        return None
    model = spec.model if spec.model.arch == "fc" else dataclasses.replace(spec.model, depth=1)
    return (spec.data, model, spec.loss, spec.flow, spec.observables)


def can_batch(specs: Sequence[CellSpec]) -> bool:
    """Whether ``specs`` can train as one batched ensemble (one shared `bundle_key`)."""
    keys = {bundle_key(s) for s in specs}
    return len(specs) > 0 and None not in keys and len(keys) == 1


def bundle_pays(
    device: str | torch.device,
    train_size: int,
    width: int,
    depth: int,
    members: int,
    dimension: int = 10,
) -> bool:
    """Whether training ``members`` same-shape cells as one batched ensemble beats training
    them one after the other on ``device`` (module docstring: the measured cost model)."""
    if members < 2:
        return False
    if torch.device(device).type != "cpu":
        return True
    n_params = dimension * width + (depth - 1) * width * width + width
    return train_size * n_params <= CPU_WORK_LIMIT


def training_plan(
    specs: Sequence[CellSpec], device: str | torch.device
) -> tuple[list[list[CellSpec]], list[CellSpec]]:
    """How one task trains its bundle on ``device``: (groups for `train_bundle`, cells for
    `train_cell`). The whole bundle is one group when it can batch and `bundle_pays`;
    otherwise each batchable cell is a group of one (train_bundle's fast path for a single
    net, about twice as fast as train_cell's autograd) and the rest go to train_cell."""
    if len(specs) > 1 and can_batch(specs):
        first = specs[0]
        if bundle_pays(
            device,
            first.data.train_size,
            first.model.width,
            _depth(first),
            len(specs),
            math.prod(input_shape(first.data)),
        ):
            return [list(specs)], []
    return (
        [[s] for s in specs if bundle_key(s) is not None],
        [s for s in specs if bundle_key(s) is None],
    )


def _depth(spec: CellSpec) -> int:
    return 1 if spec.model.arch == "one-hidden" else spec.model.depth


def plan_bundles(cells: Sequence[CellSpec], bundle_size: int) -> list[list[CellSpec]]:
    """Cells grouped into bundles (one task each) of at most ``bundle_size``: cells sharing
    a `bundle_key` go together in their given order (grid order puts the seeds, then the
    α̃, of one shape next to each other); cells that cannot batch are chunked in order,
    trained one after the other by their task (tasks/bundling.py's `training_plan`)."""
    if not (isinstance(bundle_size, int) and bundle_size >= 1):
        raise ValueError(f"bundle_size must be a positive integer, got {bundle_size!r}")
    groups: dict[object, list[CellSpec]] = {}
    for cell in cells:
        groups.setdefault(bundle_key(cell), []).append(cell)  # key None: not batchable
    return [
        group[i : i + bundle_size]
        for group in groups.values()
        for i in range(0, len(group), bundle_size)
    ]


class EnsembleObjective:
    """θ [m, N] ↦ (∇_θ L̃ [m, N], f [m, P], margins y·f [m, P]) for m members at once.

    The α-trick objective of `tasks.losses.AlphaObjective`, per member i:
    f_i = α_i (f̃_θi(x) − f̃_θ₀i(x)) and ∂L̃/∂f̃_iμ = ℓ'(y_μ f_iμ)·y_μ/(P α_i), back-propagated
    by `BatchedFC.backward`. With ``frozen`` outputs f_ref [m, P], ℓ' is taken at y·f_ref
    (the flow's continuation across a kink of ℓ)."""

    def __init__(
        self,
        net: BatchedFC,
        x: Tensor,
        y: Tensor,
        alpha: Tensor,
        initial_outputs: Tensor,
        loss_derivative: LossFn,
    ) -> None:
        self.net, self.x, self.y, self.loss_derivative = net, x, y, loss_derivative
        self.alpha = alpha.reshape(-1, 1)  # [m, 1]
        self.initial_outputs = initial_outputs  # f̃_θ₀(x_train) [m, P]
        self.coefficient = y / (y.shape[0] * self.alpha)  # y_μ/(P α_i) [m, P]
        self.workspace = net.workspace(self.alpha.shape[0], x.shape[0], x)

    def select(self, rows: Tensor) -> EnsembleObjective:
        """The objective of the members ``rows`` (indices into the current m)."""
        return EnsembleObjective(
            self.net,
            self.x,
            self.y,
            self.alpha[rows],
            self.initial_outputs[rows],
            self.loss_derivative,
        )

    def outputs(self, theta: Tensor) -> Tensor:
        """f [m, P] at θ [m, N] (a forward only: euler-heun's error estimate)."""
        raw, _ = self.net.forward(theta, self.x, self.workspace)
        return (raw - self.initial_outputs).mul_(self.alpha)

    def __call__(
        self, theta: Tensor, frozen: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        raw, saved = self.net.forward(theta, self.x, self.workspace)  # f̃ [m, P]
        outputs = (raw - self.initial_outputs).mul_(self.alpha)  # f [m, P]
        margins = self.y * outputs
        reference = margins if frozen is None else self.y * frozen
        cotangent = self.loss_derivative(reference).mul_(self.coefficient)
        return self.net.backward(saved, cotangent), outputs, margins
