"""Batched ensembles: which cells can train together, when it pays, and their objective.

A *bundle* is a list of cells trained as one batched ensemble by `tasks.train_bundle`:
M fully-connected nets of one shape on the same data, stacked as θ [M, N] and evaluated
with batched matmuls (`tasks.batched_fc`). Members may differ in α̃ and init seed only;
every other setting (data, net, loss, flow, observables) must be equal (`bundle_key`).

Cost model (`bundle_pays`), measured on this project's 2-core CPU on one thread
(benchmarks; float64; stripe data, swish, L = 2): bundling 16 members divides the
per-step time of a member by 2–3 at P=256, h=32 — where a step is mostly fixed Python and
dispatch overhead, which a bundle pays once — and gains nothing from about P·h² ≈ 2·10⁷
(P=1000, h=128: ×1.0) up, where one member's matmuls already run near the CPU's peak and
the [M, P, h] activations of a bundle leave the cache (P=2000, h=256: ×0.55). So on a CPU
a bundle is batched only while the work of one member's step, P·N (N = parameters), is
below `CPU_WORK_LIMIT`; on a GPU, where one small net leaves the device idle, always.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from tasks.batched_fc import BatchedFC
from tasks.losses import LossFn
from tasks.specs import CellSpec

CPU_WORK_LIMIT = 4_000_000   # P·N per member above which a CPU bundle runs one cell at a time
BATCHED_ARCHITECTURES = ("fc", "one-hidden")


def bundle_key(spec: CellSpec) -> tuple | None:
    """What members of one batched bundle share: everything but α̃, the init seed and the
    snapshot period. None when the cell cannot be batched (a CNN, or a minibatch flow)."""
    batch = spec.flow.batch_size
    if spec.model.arch not in BATCHED_ARCHITECTURES or (batch is not None
                                                        and batch < spec.data.train_size):
        return None
    model = spec.model if spec.model.arch == "fc" else dataclasses.replace(spec.model, depth=1)
    return (spec.data, model, spec.loss, spec.flow, spec.observables)


def can_batch(specs: Sequence[CellSpec]) -> bool:
    """Whether ``specs`` can train as one batched ensemble (one shared `bundle_key`)."""
    keys = {bundle_key(s) for s in specs}
    return len(specs) > 0 and None not in keys and len(keys) == 1


def member_work(spec: CellSpec) -> int:
    """P·N: the multiply-adds of one member's forward pass (a step costs ~3× this)."""
    d, h = spec.data.dimension, spec.model.width
    depth = 1 if spec.model.arch == "one-hidden" else spec.model.depth
    n_params = d * h + (depth - 1) * h * h + h + (depth * h if spec.model.bias else 0)
    return spec.data.train_size * n_params


def bundle_pays(device: str | torch.device, train_size: int, width: int, depth: int,
                members: int, dimension: int = 10) -> bool:
    """Whether training ``members`` same-shape cells as one batched ensemble beats training
    them one after the other on ``device`` (module docstring: the measured cost model)."""
    if members < 2:
        return False
    if torch.device(device).type != "cpu":
        return True
    n_params = dimension * width + (depth - 1) * width * width + width
    return train_size * n_params <= CPU_WORK_LIMIT


def plan_bundles(cells: Sequence[CellSpec], bundle_size: int) -> list[list[CellSpec]]:
    """Cells grouped into bundles of at most ``bundle_size``: cells sharing a `bundle_key`
    go together, in their given order (grid order puts seeds, then α̃, of one shape next to
    each other); a cell that cannot be batched is a bundle alone when ``bundle_size`` > 1."""
    if bundle_size < 1:
        raise ValueError(f"bundle_size must be a positive integer, got {bundle_size}")
    groups: dict[object, list[CellSpec]] = {}
    for i, cell in enumerate(cells):
        key = bundle_key(cell)
        groups.setdefault(("alone", i) if key is None else key, []).append(cell)
    return [group[i:i + bundle_size] for group in groups.values()
            for i in range(0, len(group), bundle_size)]


class EnsembleObjective:
    """θ [m, N] ↦ (∇_θ L̃ [m, N], f [m, P], margins y·f [m, P]) for m members at once.

    The α-trick objective of `tasks.losses.AlphaObjective`, per member i:
    f_i = α_i (f̃_θi(x) − f̃_θ₀i(x)) and ∂L̃/∂f̃_iμ = ℓ'(y_μ f_iμ)·y_μ/(P α_i), back-propagated
    by `BatchedFC.backward`. With ``frozen`` outputs f_ref [m, P], ℓ' is taken at y·f_ref
    (the flow's continuation across a kink of ℓ)."""

    def __init__(self, net: BatchedFC, x: Tensor, y: Tensor, alpha: Tensor,
                 initial_outputs: Tensor, loss_derivative: LossFn) -> None:
        self.net, self.x, self.y, self.loss_derivative = net, x, y, loss_derivative
        self.alpha = alpha.reshape(-1, 1)                        # [m, 1]
        self.initial_outputs = initial_outputs                    # f̃_θ₀(x_train) [m, P]
        self.coefficient = y / (y.shape[0] * self.alpha)          # y_μ/(P α_i) [m, P]

    def select(self, rows: Tensor) -> "EnsembleObjective":
        """The objective of the members ``rows`` (indices into the current m)."""
        return EnsembleObjective(self.net, self.x, self.y, self.alpha[rows],
                                 self.initial_outputs[rows], self.loss_derivative)

    def __call__(self, theta: Tensor, frozen: Tensor | None = None
                 ) -> tuple[Tensor, Tensor, Tensor]:
        raw, saved = self.net.forward(theta, self.x)                 # f̃ [m, P]
        outputs = (raw - self.initial_outputs).mul_(self.alpha)      # f [m, P]
        margins = self.y * outputs
        reference = margins if frozen is None else self.y * frozen
        cotangent = self.loss_derivative(reference).mul_(self.coefficient)
        return self.net.backward(saved, cotangent), outputs, margins
