"""What `train_cell` yields: plain frozen records, one field per stored column.

`tasks/` knows nothing of Parquet; `pipeline/` turns these into table rows using
`dataclasses.asdict`. Field names are the column names of results_schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# nan: the gradient became non-finite (divergence); stalled: the flow stopped moving
# although the point is finite (dt < 1e-12, an accepted step left θ unchanged, or flow
# time froze over 50 steps: tasks/flow.py) — never a result, never counted as jammed.
STOP_REASONS = ("fitted", "max_steps", "max_time", "max_wall", "nan", "stalled", "zero_gradient")


def _empty() -> np.ndarray:
    return np.zeros(0)


KERNEL_PCA_COLUMNS = tuple(
    f"kpca_{quantity}_{when}"
    for quantity in ("eigenvalues", "label_projection", "mutual_information")
    for when in ("initial", "final")
)


@dataclass(frozen=True)
class Measurement:
    """Observables at one (log-spaced) checkpoint of the flow."""

    step: int  # accepted steps so far
    flow_time: float  # t = sum of accepted dt (paper units)
    dt: float  # current step size
    wall_seconds: float  # since the start of training
    gradient_evaluations: int  # forward+backward passes so far (accepted + rejected)
    train_loss: float  # L = (1/P) sum_mu l(y_mu f(x_mu))  (not divided by alpha^2)
    train_error: float  # fraction of train points with y f <= 0
    n_unsatisfied: int  # N_Delta = #{mu : 1 - y_mu f(x_mu) > 0}
    unsatisfied_per_param: float  # N_Delta / N
    min_margin: float  # min_mu y_mu f(x_mu)
    median_margin: float
    test_loss: float
    test_error: float
    output_rms: float  # sqrt(mean f(x_train)^2)
    weight_change: float  # ||theta - theta_0||
    gradient_norm: float  # ||grad L~||
    ntk_change: float = float("nan")  # only when measured at checkpoints
    forward_evaluations: int = 0  # forward-only passes so far (euler-heun's error estimate)
    weight_alignment: float = float("nan")  # Λ = W∥/W⊥ (tasks.alignment); nan: no ∥ directions


@dataclass(frozen=True)
class CellResult:
    """The end of one cell: its summary, final test outputs and kernel results."""

    stop_reason: str  # one of STOP_REASONS
    fitted: bool  # N_Delta = 0 at the end
    steps: int
    flow_time: float
    wall_seconds: float
    gradient_evaluations: int
    n_params: int  # N
    train_loss: float
    train_error: float
    n_unsatisfied: int
    test_loss: float
    test_error: float
    ntk_change: float  # ||Theta_end - Theta_0||_F / ||Theta_0||_F (nan if not measured)
    ntk_norm_initial: float
    ntk_norm_final: float
    test_outputs: np.ndarray = field(repr=False)  # f(x_test), shape [test_size]
    test_labels: np.ndarray = field(repr=False)  # y_test in {-1, +1}
    h0_eigenvalues: np.ndarray = field(repr=False)  # non-zero spectrum of H0 (may be empty)
    forward_evaluations: int = 0  # forward-only passes (a third of a gradient evaluation)
    # kernel PCA of Θ₀ / Θ_end on the kernel set (tasks.kernel_pca), top ranks; empty if off
    kpca_eigenvalues_initial: np.ndarray = field(repr=False, default_factory=_empty)
    kpca_eigenvalues_final: np.ndarray = field(repr=False, default_factory=_empty)
    kpca_label_projection_initial: np.ndarray = field(repr=False, default_factory=_empty)
    kpca_label_projection_final: np.ndarray = field(repr=False, default_factory=_empty)
    kpca_mutual_information_initial: np.ndarray = field(repr=False, default_factory=_empty)
    kpca_mutual_information_final: np.ndarray = field(repr=False, default_factory=_empty)
    # first-layer weights W₁ [h, d] and output weights W₂ [n_out, h] at start and end of an FC
    # net ([observables] weights = true; tasks.alignment.layer_weights), else None
    weights_initial: tuple[np.ndarray, np.ndarray] | None = field(repr=False, default=None)
    weights_final: tuple[np.ndarray, np.ndarray] | None = field(repr=False, default=None)


@dataclass(frozen=True)
class TrainingState:
    """A snapshot of one cell's flow, enough to continue it exactly (`train_cell`'s
    ``resume_from``): the `tasks.flow.FlowState` as host arrays plus what the loop around
    it keeps. θ₀ and f̃_θ₀ are not here: they are recomputed from the cell's seeds.
    pipeline/store/snapshots.py stores it as raw arrays in Parquet (never pickled)."""

    step: int
    flow_time: float
    dt: float
    gradient_norm: float
    evaluations: int
    rejections: int
    wall_seconds: float  # training wall time so far (the resumed clock's offset)
    theta: np.ndarray = field(repr=False)  # θ [N]
    gradient: np.ndarray = field(repr=False)  # ∇L̃ at θ on the current batch [N]
    outputs: np.ndarray = field(repr=False)  # f at θ on the current batch [B]
    batch: np.ndarray | None = field(repr=False)  # current minibatch indices [B]; None: full batch
    batch_generator_state: np.ndarray = field(repr=False)  # uint8 state of the minibatch generator
    last_measurement: Measurement | None = None  # the latest Measurement yielded before it
    forward_evaluations: int = 0
    window_time: float = 0.0  # flow time at the last stall-window boundary
