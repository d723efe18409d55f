"""The pyarrow schema of every stored table; each field carries its column doc.

Names are the paper's terms in words (design.md §4). Every table repeats the grid
columns of its cell (width, alpha_tilde, alpha, train_size, seed, depth) so a reader
can group a table without joining it to `cells`. Columns produced from
tasks.records.Measurement / CellResult keep those records' field names.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
VERSION_KEY = b"phasegrid.schema_version"


def _field(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": doc})


def _schema(table: str, doc: str, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(
        fields,
        metadata={
            VERSION_KEY: str(SCHEMA_VERSION).encode(),
            b"phasegrid.table": table.encode(),
            b"description": doc.encode(),
        },
    )


F64, I64, STR, BOOL = pa.float64(), pa.int64(), pa.string(), pa.bool_()
TIME = pa.timestamp("us", tz="UTC")

CELL_ID = _field(
    "cell_id",
    STR,
    "Stable 16-hex hash of the cell's fully resolved configuration "
    "(tasks.specs.CellSpec.cell_id); the key that joins every table.",
    nullable=False,
)

GRID = [
    _field("width", I64, "h: hidden units per layer.", nullable=False),
    _field(
        "alpha_tilde",
        F64,
        "Rescaled initialisation scale α̃ = √h·α (the grid axis).",
        nullable=False,
    ),
    _field(
        "alpha",
        F64,
        "α = α̃/√h: output scale of f(x) = α(f̃_θ(x) − f̃_θ₀(x)) (Eq. 8).",
        nullable=False,
    ),
    _field("train_size", I64, "P: number of training points.", nullable=False),
    _field("seed", I64, "Initialisation seed of the weights.", nullable=False),
    _field("depth", I64, "L: number of hidden layers.", nullable=False),
]

SETTINGS = [
    _field(
        "dataset",
        STR,
        "Dataset name (mnist, fashion-mnist, cifar10, stripe, sphere, cylinder, random-labels).",
    ),
    _field(
        "dimension",
        I64,
        "d: PCA components (images), the pixel count C·H·W (images with "
        "pca = false) or input dimension (synthetic).",
    ),
    _field(
        "pca",
        BOOL,
        "Images projected on `dimension` principal components (true) or raw "
        "pixels, centred and rescaled to norm √D (false); true for synthetic data. Null in "
        "files written before this column existed (they all had true).",
    ),
    _field(
        "perpendicular_scale",
        F64,
        "Factor dividing the uninformative coordinates of "
        "stripe/cylinder data (the compressed-data control of Fig. 9 right; 1 = none). "
        "Null in files written before this column existed (they all had 1).",
    ),
    _field(
        "parallel_dimension",
        I64,
        "d∥ of the cylinder: its labels depend on |x∥| of the "
        "first d∥ coordinates (unused by other datasets).",
    ),
    _field("test_size", I64, "Number of test points."),
    _field("kernel_size", I64, "P_K: points on which the NTK is measured."),
    _field("train_seed", I64, "Seed of the training-set draw."),
    _field("test_seed", I64, "Seed of the test-set draw."),
    _field("kernel_seed", I64, "Seed of the kernel-set draw."),
    _field("arch", STR, "Architecture (fc, cnn, one-hidden)."),
    _field("activation", STR, "Activation σ (relu, softplus, tanh, swish)."),
    _field("activation_beta", F64, "Sharpness β of the activation σ(x) = σ₀(βx)/β."),
    _field("bias", BOOL, "Whether the layers have biases."),
    _field("loss", STR, "Loss ℓ on the margin (hinge, quadhinge, softhinge, logistic)."),
    _field("loss_beta", F64, "Sharpness β of the soft hinge."),
    _field("max_steps", I64, "Budget in accepted flow steps (null = none)."),
    _field("max_time", F64, "Budget in flow time, paper units (null = none)."),
    _field("max_wall_seconds", F64, "Budget in wall-clock seconds (null = none)."),
    _field(
        "integrator",
        STR,
        "Step controller of the flow: euler-heun (error-controlled, "
        "the default) or paper (the reference code's gradient-turn test); "
        "docs/integrator.md.",
    ),
    _field(
        "max_local_error",
        F64,
        "euler-heun's tolerance on max_μ |f_Heun − f_Euler| per step (null for paper).",
    ),
    _field("dtype", STR, "Floating-point type of the training (float64, float32)."),
]

MEASUREMENT = [
    _field("step", I64, "Accepted flow steps so far.", nullable=False),
    _field("flow_time", F64, "t = Σ accepted dt (paper units)."),
    _field("dt", F64, "Current step size of the adaptive flow."),
    _field("wall_seconds", F64, "Wall-clock seconds since the start of training."),
    _field("gradient_evaluations", I64, "Forward+backward passes so far (accepted and rejected)."),
    _field("train_loss", F64, "L = (1/P) Σ_μ ℓ(y_μ f(x_μ)) (not divided by α²)."),
    _field("train_error", F64, "Fraction of training points with y f(x) ≤ 0."),
    _field("n_unsatisfied", I64, "N_Δ = #{μ : 1 − y_μ f(x_μ) > 0}."),
    _field("unsatisfied_per_param", F64, "N_Δ / N."),
    _field("min_margin", F64, "min_μ y_μ f(x_μ)."),
    _field("median_margin", F64, "Median of y_μ f(x_μ) over the training set."),
    _field("test_loss", F64, "Mean loss on the test set."),
    _field("test_error", F64, "Fraction of test points misclassified."),
    _field("output_rms", F64, "√(mean f(x_train)²)."),
    _field("weight_change", F64, "‖θ − θ₀‖."),
    _field("gradient_norm", F64, "‖∇L̃‖."),
    _field("ntk_change", F64, "‖Θ_t − Θ₀‖_F / ‖Θ₀‖_F at this checkpoint (NaN if not measured)."),
    _field(
        "forward_evaluations",
        I64,
        "Forward-only passes so far (euler-heun's error "
        "estimate; each costs about a third of a gradient evaluation).",
    ),
    _field(
        "weight_alignment",
        F64,
        "Λ = W∥/W⊥ (Fig. 9 left): root-mean-square first-layer weight component along the "
        "informative input directions ∥ over that along the others ⊥, each neuron i weighted "
        "by the magnitude c_i = ‖W₂[:, i]‖ of its output weights: W∥² = Σ_i c_i Σ_{a∈∥} "
        "W₁[i,a]² / (d∥ Σ_i c_i), W⊥² likewise over ⊥ with d⊥ = d − d∥ "
        "(tasks/alignment.py). ∥ = x₁ for the stripe, the first d∥ coordinates for the "
        "cylinder. ≈ 1 at initialisation; NaN for image data and CNNs.",
    ),
]

RESULT = [
    _field("n_params", I64, "N: number of trained parameters."),
    _field(
        "status",
        STR,
        "done (the cell finished, whatever its stop_reason) or failed (a "
        "Python exception or the worker died every attempt: see error).",
        nullable=False,
    ),
    _field(
        "stop_reason",
        STR,
        "Why the flow stopped: fitted, max_steps, max_time, max_wall, "
        "nan (diverged), stalled (the flow stopped moving: dt < 1e-12, an accepted step "
        "left θ unchanged or flow time froze over 50 steps; never fitted, left out of "
        "jamming lines), zero_gradient (null when failed).",
    ),
    _field("fitted", BOOL, "N_Δ = 0 at the end (always false for a stalled cell)."),
    _field("steps", I64, "Accepted flow steps at the end."),
    _field("flow_time", F64, "Flow time at the end (paper units)."),
    _field("wall_seconds", F64, "Wall-clock seconds of training."),
    _field("gradient_evaluations", I64, "Forward+backward passes in total."),
    _field(
        "forward_evaluations", I64, "Forward-only passes in total (euler-heun's error estimate)."
    ),
    _field("train_loss", F64, "Final training loss L."),
    _field("train_error", F64, "Final training error."),
    _field("n_unsatisfied", I64, "Final N_Δ."),
    _field("test_loss", F64, "Final test loss."),
    _field("test_error", F64, "Final test error ε."),
    _field("ntk_change", F64, "‖Θ_end − Θ₀‖_F / ‖Θ₀‖_F on the kernel set (NaN if not measured)."),
    _field("ntk_norm_initial", F64, "‖Θ₀‖_F on the kernel set."),
    _field("ntk_norm_final", F64, "‖Θ_end‖_F on the kernel set."),
]

_KPCA_RANKS = (
    "top `[observables] kernel_pca_rank` (default 100, at most P_K) eigenpairs of "
    "the Gram matrix Θ on the kernel set (not centred), in descending order of λ; "
    "empty when the NTK is not measured or kernel_pca_rank = 0"
)
KERNEL_PCA = (
    [
        _field(
            f"kpca_eigenvalues_{when}",
            pa.list_(F64),
            f"Kernel PCA of {theta} (Fig. 10): its eigenvalues λ, for the {_KPCA_RANKS}.",
        )
        for when, theta in (("initial", "Θ₀"), ("final", "Θ_end"))
    ]
    + [
        _field(
            f"kpca_label_projection_{when}",
            pa.list_(F64),
            f"ω_λ = (φ_λ·y)²/‖y‖² per eigenvector φ_λ of {theta} (y: the kernel-set labels ±1; "
            f"Σ over all λ is 1), for the {_KPCA_RANKS}.",
        )
        for when, theta in (("initial", "Θ₀"), ("final", "Θ_end"))
    ]
    + [
        _field(
            f"kpca_mutual_information_{when}",
            pa.list_(F64),
            f"Mutual information in bits between the components φ_λ(x_μ) of each eigenvector "
            f"of {theta} and the labels y_μ over the kernel points: k-nearest-neighbour "
            "estimator of Ross (2014) with k = 5 (tasks/mutual_information.py; not clipped, "
            "so ≈ 0 may be slightly negative; a label that is a threshold of φ_λ gives 1), "
            f"for the {_KPCA_RANKS}.",
        )
        for when, theta in (("initial", "Θ₀"), ("final", "Θ_end"))
    ]
)

RUN = [
    _field(
        "attempts",
        I64,
        "Attempts counted for this cell over all runs: the one stored, "
        "retries after worker deaths and earlier failed runs (an attempt cut short with "
        "its driver is not counted).",
        nullable=False,
    ),
    _field("attempt_id", STR, "Id of the attempt whose rows are stored."),
    _field("error", STR, "Traceback of the failure (null when done)."),
    _field("host", STR, "Host name of the worker that ran the attempt."),
    _field("device", STR, "Device of the attempt (cpu, or cuda and its name)."),
    _field("code_version", STR, "phasegrid version and git describe of the driver."),
    _field("started_at", TIME, "When the attempt started (UTC)."),
    _field("finished_at", TIME, "When the attempt finished (UTC)."),
]

CELLS = _schema(
    "cells",
    "One row per finished cell (done or failed): parameters, outcome, provenance.",
    [CELL_ID, *GRID, *SETTINGS, *RESULT, *RUN],
)
MEASUREMENTS = _schema(
    "measurements",
    "Time series of the flow: one row per log-spaced checkpoint of a done cell.",
    [CELL_ID, *GRID, *MEASUREMENT],
)
PREDICTIONS = _schema(
    "predictions",
    "Final test outputs of a done cell, long format.",
    [
        CELL_ID,
        *GRID,
        _field(
            "test_index",
            I64,
            "Index of the test point (same test set for every cell of a "
            "campaign with the same data settings).",
            nullable=False,
        ),
        _field("test_output", F64, "f(x_test): the α-scaled network output."),
        _field("test_label", pa.int8(), "y_test ∈ {−1, +1}."),
    ],
)
KERNELS = _schema(
    "kernels",
    "NTK summaries and the H₀ spectrum of a done cell.",
    [
        CELL_ID,
        *GRID,
        _field("ntk_norm_initial", F64, "‖Θ₀‖_F on the kernel set."),
        _field("ntk_norm_final", F64, "‖Θ_end‖_F on the kernel set."),
        _field("ntk_change", F64, "‖Θ_end − Θ₀‖_F / ‖Θ₀‖_F."),
        _field(
            "h0_eigenvalues",
            pa.list_(F64),
            "Non-zero spectrum of H₀ = Σ_{μ:Δ_μ>0} ∇Δ_μ⊗∇Δ_μ "
            "at the end (those of the NTK restricted to the unsatisfied points, Fig. 7C).",
        ),
        *KERNEL_PCA,
    ],
)
WEIGHTS = _schema(
    "weights",
    "First-layer weight vectors and output weights of a done "
    "fully-connected cell at the start and the end of training, one row per "
    "(checkpoint, neuron), for the scatter of Fig. 9 left; written only with "
    "[observables] weights = true.",
    [
        CELL_ID,
        *GRID,
        _field("checkpoint", STR, "initial (θ₀) or final (the end of the flow).", nullable=False),
        _field("step", I64, "Accepted flow steps at this checkpoint (0 for initial)."),
        _field("flow_time", F64, "Flow time at this checkpoint (paper units)."),
        _field("neuron", I64, "Index i of the first-hidden-layer unit (0..h−1).", nullable=False),
        _field(
            "first_layer_weights",
            pa.list_(F64),
            "W₁[i, :]: the unit's d input weights, in the "
            "N(0,1) parametrisation (the forward pass divides by √d); for stripe/cylinder data "
            "the informative coordinates come first.",
        ),
        _field(
            "output_weights",
            pa.list_(F64),
            "W₂[:, i]: the weights leaving the unit (one "
            "value for the one-hidden-layer net: its readout β_i; h values for deeper nets). "
            "weight_alignment weights unit i by their norm.",
        ),
    ],
)
MANIFEST = _schema(
    "manifest",
    "Every cell ever requested of the campaign (manifest.parquet).",
    [
        CELL_ID,
        *GRID,
        *SETTINGS,
        _field(
            "config",
            STR,
            "The resolved CellSpec as JSON (CellSpec.to_dict()): what resume re-runs.",
            nullable=False,
        ),
        _field("added_at", TIME, "When the cell entered the manifest (UTC)."),
    ],
)

TABLES: dict[str, pa.Schema] = {
    "cells": CELLS,
    "measurements": MEASUREMENTS,
    "predictions": PREDICTIONS,
    "kernels": KERNELS,
    "weights": WEIGHTS,
    "manifest": MANIFEST,
}
