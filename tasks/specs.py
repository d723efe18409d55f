"""Frozen specifications of one training cell (the unit of results and resume).

A `CellSpec` is the *fully resolved* configuration of one network training: every
setting that can change a number is a field here, so `cell_id` (a hash of all of
them) changes whenever any of them does. The pipeline builds CellSpecs from a
campaign TOML; `tasks.train_cell.train_cell` consumes one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

SYNTHETIC_DATASETS = ("stripe", "sphere", "cylinder", "random-labels")  # generated in code
DATASETS = ("mnist", "fashion-mnist", "cifar10", *SYNTHETIC_DATASETS)
ARCHITECTURES = ("fc", "cnn", "one-hidden")
ACTIVATIONS = ("relu", "softplus", "tanh", "swish")
LOSSES = ("hinge", "quadhinge", "softhinge", "logistic")
INTEGRATORS = ("euler-heun", "paper")  # tasks/flow.py; docs/integrator.md


@dataclass(frozen=True)
class DataSpec:
    """Which examples a cell sees. Seeds are separate so that the test and kernel
    sets are shared by every cell of a campaign while init seeds vary."""

    dataset: str = "stripe"
    dimension: int = 5  # d: PCA components (images) or input dimension (synthetic)
    train_size: int = 256  # P
    test_size: int = 1024
    kernel_size: int = 128  # P_K: points on which the NTK is measured
    train_seed: int = 0
    test_seed: int = 1
    kernel_seed: int = 2
    data_dir: str | None = None  # where image files live; None = search order of tasks.data
    pca: bool = True  # images: project on `dimension` PCs; False: raw pixels
    perpendicular_scale: float = 1.0  # stripe/cylinder: uninformative coordinates divided by it
    parallel_dimension: int = 2  # cylinder: d∥, the coordinates its labels depend on


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "fc"
    depth: int = 2  # L hidden layers
    width: int = 32  # h
    activation: str = "swish"
    activation_beta: float = 10.0
    bias: bool = False


@dataclass(frozen=True)
class LossSpec:
    kind: str = "softhinge"
    beta: float = 20.0  # sharpness of the soft hinge


@dataclass(frozen=True)
class FlowSpec:
    """Adaptive gradient flow (design.md §2, tasks/flow.py) and its budgets.

    ``integrator``: "euler-heun" (error-controlled: accept iff the Euler–Heun difference
    of the train outputs is ≤ max_local_error) or "paper" (the reference controller:
    the gradient-turn test with dt ×dt_grow / ÷dt_shrink). Both keep max_output_change
    as a trust region."""

    integrator: str = "euler-heun"
    dt_initial: float = 1.0
    max_local_error: float = (
        2e-4  # euler-heun: accept if max_mu |f_heun - f_euler| <= this (docs/integrator.md)
    )
    max_gradient_turn: float = 1e-4  # paper: accept if ||g-g'||^2/(|g||g'|) below this
    max_output_change: float = 0.1  # ... and max_mu |f'_mu - f_mu| below this
    dt_grow: float = 1.1  # paper only
    dt_shrink: float = 10.0  # paper only
    max_steps: int | None = 20_000
    max_time: float | None = None  # budget in flow time (paper units)
    max_wall_seconds: float | None = None
    batch_size: int | None = None  # None = full batch
    checkpoints_per_decade: int = 10  # log-spaced measurement steps


@dataclass(frozen=True)
class ObservableSpec:
    ntk: bool = True  # NTK on the kernel set at start and end
    ntk_at_checkpoints: bool = False
    h0_spectrum: bool = True  # spectrum of H0 at the end
    dtype: str = "float64"  # float64 | float32
    device: str = "cpu"  # cpu | cuda | auto
    kernel_pca_rank: int = 100  # top eigenvectors of Θ₀, Θ_end analysed (0 = none)
    weights: bool = False  # first-layer weights at start and end (`weights` table)


@dataclass(frozen=True)
class CellSpec:
    """One (h, alpha_tilde, P, seed) point plus the campaign's fixed settings."""

    alpha_tilde: float
    seed: int  # init seed: weights are drawn from it
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    loss: LossSpec = field(default_factory=LossSpec)
    flow: FlowSpec = field(default_factory=FlowSpec)
    observables: ObservableSpec = field(default_factory=ObservableSpec)
    checkpoint_every_seconds: float | None = None  # training-state snapshots for preemption

    @property
    def width(self) -> int:
        return self.model.width

    @property
    def train_size(self) -> int:
        return self.data.train_size

    @property
    def alpha(self) -> float:
        """alpha = alpha_tilde / sqrt(h) (Eq. 8)."""
        return self.alpha_tilde / math.sqrt(self.model.width)

    def to_dict(self) -> dict:
        """Every field, the sections as plain dicts: what `dataclasses.asdict` returns,
        built directly (every section's fields are scalars), ~20x faster: a campaign of
        10^5 cells computes 10^5 of them for its cell ids."""
        return {
            name: _section(value) if name in _SECTIONS else value
            for name, value in ((f.name, getattr(self, f.name)) for f in _fields(CellSpec))
        }

    @classmethod
    def from_dict(cls, d: dict) -> CellSpec:
        parts = {
            "data": DataSpec,
            "model": ModelSpec,
            "loss": LossSpec,
            "flow": FlowSpec,
            "observables": ObservableSpec,
        }
        d = dict(d)
        if "flow" in d and "integrator" not in d["flow"]:  # stored before the integrator key:
            d["flow"] = {**d["flow"], "integrator": "paper"}  # those cells ran the paper's
        kw = {k: (parts[k](**v) if k in parts else v) for k, v in d.items()}
        return cls(**kw)

    @functools.cached_property
    def cell_id(self) -> str:
        """Stable 16-hex hash of the fully resolved configuration.

        `data_dir` and `device` say *where*, not *what*: they are left out so that
        moving a campaign between machines keeps its cells. Wall budgets are kept in
        (they change results)."""
        d = self.to_dict()
        d["data"].pop("data_dir")
        d["observables"].pop("device")
        d.pop("checkpoint_every_seconds")
        if d["flow"]["integrator"] == "paper":  # ids of cells stored before the key existed
            for key in ("integrator", "max_local_error"):
                d["flow"].pop(key)
        _drop_later_defaults(d)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


_SECTIONS = ("data", "model", "loss", "flow", "observables")


@functools.cache
def _fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(cls)


def _section(spec: Any) -> dict:
    """A section spec (all of whose fields are scalars) as a dict, in field order."""
    section: type = type(spec)
    return {f.name: getattr(spec, f.name) for f in _fields(section)}


# Fields added after campaigns were stored, with the value every earlier cell had: left out
# of the hash while at that value, so existing campaigns keep their cell ids (section, key).
_LATER_FIELDS: dict[tuple[str, str], object] = {
    ("observables", "kernel_pca_rank"): ObservableSpec.kernel_pca_rank,
    ("observables", "weights"): ObservableSpec.weights,
    ("data", "pca"): DataSpec.pca,
    ("data", "perpendicular_scale"): DataSpec.perpendicular_scale,
    ("data", "parallel_dimension"): DataSpec.parallel_dimension,
}


def _drop_later_defaults(d: dict) -> None:
    for (section, key), default in _LATER_FIELDS.items():
        if d[section].get(key, default) == default:
            d[section].pop(key, None)
