"""The campaign TOML as pydantic models: one model per `[section]`, unknown keys forbidden.

Defaults are read from the frozen dataclasses of `tasks.specs` (and `Resources` here), never
written twice. Types are strict where TOML could silently coerce (a width of 8.5, a `bias`
of 1, a seed of "3"); a float field accepts an integer. Each value type carries, as its
`description`, the phrase used in error messages ("a positive integer"), so the message and
the rule live on the same line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, model_validator

from pipeline.spec.axes import Form, axis
from tasks.specs import (
    ACTIVATIONS,
    ARCHITECTURES,
    DATASETS,
    INTEGRATORS,
    LOSSES,
    DataSpec,
    FlowSpec,
    LossSpec,
    ModelSpec,
    ObservableSpec,
)

DTYPES = ("float64", "float32")
DEVICES = ("cpu", "cuda", "auto")
REFINE_BOUNDARIES = ("crossover", "jamming")
SOURCE_CELLS = ("fitted", "end")  # perpendicular_scale.at: which cells of the source campaign
BUDGETS = ("max_steps", "max_time", "max_wall_seconds")


@dataclass(frozen=True)
class Resources:
    """What each Ray task asks for, and how the campaign is run (not part of cell ids)."""

    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0  # fractions share a GPU (e.g. 0.25: four tasks per GPU)
    bundle_size: int = 1  # cells trained together by one task
    max_in_flight: int | None = None  # tasks submitted at once; None = scheduler's choice
    retries: int = 2  # re-runs of a task whose worker died or raised
    max_cells: int = 100_000  # guard against a grid written too large by mistake
    checkpoint_every_seconds: float | None = None  # training-state snapshots for preemption
    compact_when_done: bool = True  # compact the store when a run ends with every cell done
    commit_concurrency: int = 8  # cells' commits in flight at once (1: one at a time, inline)


# Instances holding the defaults: `_DATA.test_size` is DataSpec's default test_size.
_DATA, _MODEL, _LOSS = DataSpec(), ModelSpec(), LossSpec()
_FLOW, _OBSERVE, _RESOURCES = FlowSpec(), ObservableSpec(), Resources()

PositiveInt = Annotated[int, Strict(), Field(gt=0, description="a positive integer")]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0, description="a non-negative integer")]
PositiveNumber = Annotated[
    float, Strict(), Field(gt=0, allow_inf_nan=False, description="a positive finite number")
]
NonNegativeNumber = Annotated[
    float, Strict(), Field(ge=0, allow_inf_nan=False, description="a finite number ≥ 0")
]
Factor = Annotated[
    float, Strict(), Field(gt=1, allow_inf_nan=False, description="a finite number > 1")
]
Flag = Annotated[bool, Strict(), Field(description="true or false")]
Text = Annotated[
    str, Strict(), Field(max_length=10_000, description="a string of at most 10,000 characters")
]
Directory = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=4096, description="a directory path (a non-empty string)"),
]


def one_of(choices: tuple[str, ...]) -> Any:
    return Annotated[Literal[choices], Field(description="one of " + ", ".join(choices))]


# The section fields' types. pydantic builds them at run time from the choices in
# tasks.specs; a type checker sees what they validate to (a str, an axis list or form).
if TYPE_CHECKING:
    Dataset: TypeAlias = str
    Architecture: TypeAlias = str
    Activation: TypeAlias = str
    Loss: TypeAlias = str
    Dtype: TypeAlias = str
    Device: TypeAlias = str
    Boundary: TypeAlias = str
    Integrator: TypeAlias = str
    SourceCells: TypeAlias = str
    IntAxis: TypeAlias = list[int] | Form
    FloatAxis: TypeAlias = list[float] | Form
    SeedAxis: TypeAlias = list[int] | Form
else:
    Dataset, Architecture, Activation = (
        one_of(DATASETS),
        one_of(ARCHITECTURES),
        one_of(ACTIVATIONS),
    )
    Loss, Dtype, Device, Boundary = (
        one_of(LOSSES),
        one_of(DTYPES),
        one_of(DEVICES),
        one_of(REFINE_BOUNDARIES),
    )
    Integrator = one_of(INTEGRATORS)
    SourceCells = one_of(SOURCE_CELLS)
    IntAxis = axis(PositiveInt, integer=True)
    FloatAxis = axis(PositiveNumber, integer=False)
    SeedAxis = axis(NonNegativeInt, integer=True)


def _safe_name(name: str) -> str:
    if ".." in name:
        raise ValueError(
            f"name must not contain '..', got {name!r}: the campaign directory "
            "is named after it and must stay inside the store"
        )
    return name


NAME_RULE = "letters, digits, '.', '_' or '-' (1 to 100 of them), not starting with '.'"
CampaignName = Annotated[
    str,
    Strict(),
    Field(
        pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$",
        max_length=100,
        description=f"a directory name of {NAME_RULE}",
    ),
    AfterValidator(_safe_name),
]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FromCampaignSection(Section):
    """perpendicular_scale = {from_campaign = "…", at = "fitted"} (pipeline/spec/from_campaign.py,
    resolved by pipeline/drivers/sources.py)."""

    from_campaign: Directory
    at: SourceCells = "fitted"
    alpha_tilde: PositiveNumber | None = None


class DataSection(Section):
    dataset: Dataset
    dimension: PositiveInt = _DATA.dimension
    train_size: PositiveInt = _DATA.train_size
    test_size: PositiveInt = _DATA.test_size
    kernel_size: PositiveInt = _DATA.kernel_size
    train_seed: NonNegativeInt = _DATA.train_seed
    test_seed: NonNegativeInt = _DATA.test_seed
    kernel_seed: NonNegativeInt = _DATA.kernel_seed
    data_dir: Directory | None = _DATA.data_dir
    pca: Flag = _DATA.pca
    perpendicular_scale: PositiveNumber | FromCampaignSection = _DATA.perpendicular_scale
    parallel_dimension: PositiveInt = _DATA.parallel_dimension


class ModelSection(Section):
    arch: Architecture = _MODEL.arch
    depth: PositiveInt = _MODEL.depth
    activation: Activation = _MODEL.activation
    activation_beta: PositiveNumber = _MODEL.activation_beta
    bias: Flag = _MODEL.bias


class LossSection(Section):
    kind: Loss = _LOSS.kind
    beta: PositiveNumber = _LOSS.beta


class FlowSection(Section):
    # Budgets have no default here (FlowSpec's max_steps is only the example in the error):
    # the budget decides the jamming line, so a campaign states it. Unset ones are unlimited.
    max_steps: PositiveInt | None = None
    max_time: PositiveNumber | None = None
    max_wall_seconds: PositiveNumber | None = None
    integrator: Integrator = _FLOW.integrator
    dt_initial: PositiveNumber = _FLOW.dt_initial
    max_local_error: PositiveNumber = _FLOW.max_local_error
    max_gradient_turn: PositiveNumber = _FLOW.max_gradient_turn
    max_output_change: PositiveNumber = _FLOW.max_output_change
    dt_grow: Factor = _FLOW.dt_grow
    dt_shrink: Factor = _FLOW.dt_shrink
    batch_size: PositiveInt | None = _FLOW.batch_size
    checkpoints_per_decade: PositiveInt = _FLOW.checkpoints_per_decade

    @model_validator(mode="after")
    def _has_budget(self) -> FlowSection:
        if all(getattr(self, key) is None for key in BUDGETS):
            raise ValueError(
                f"no budget: set at least one of {', '.join(BUDGETS)} in [flow], "
                f"e.g. max_steps = {_FLOW.max_steps}"
            )
        return self


class ObservablesSection(Section):
    ntk: Flag = _OBSERVE.ntk
    ntk_at_checkpoints: Flag = _OBSERVE.ntk_at_checkpoints
    h0_spectrum: Flag = _OBSERVE.h0_spectrum
    dtype: Dtype = _OBSERVE.dtype
    device: Device = _OBSERVE.device
    kernel_pca_rank: NonNegativeInt = _OBSERVE.kernel_pca_rank
    weights: Flag = _OBSERVE.weights


class GridSection(Section):
    """Swept axes. width, alpha_tilde and seed have no fixed value anywhere, so they are
    required here; train_size and depth are swept here or fixed in [data] / [model]."""

    width: IntAxis
    alpha_tilde: FloatAxis
    seed: SeedAxis
    train_size: IntAxis | None = None
    depth: IntAxis | None = None


class ResourcesSection(Section):
    cpus_per_task: Annotated[
        float, Strict(), Field(gt=0, allow_inf_nan=False, description="a number > 0")
    ] = _RESOURCES.cpus_per_task
    gpus_per_task: NonNegativeNumber = _RESOURCES.gpus_per_task
    bundle_size: PositiveInt = _RESOURCES.bundle_size
    max_in_flight: PositiveInt | None = _RESOURCES.max_in_flight
    retries: NonNegativeInt = _RESOURCES.retries
    max_cells: PositiveInt = _RESOURCES.max_cells
    checkpoint_every_seconds: PositiveNumber | None = _RESOURCES.checkpoint_every_seconds
    compact_when_done: Flag = _RESOURCES.compact_when_done
    commit_concurrency: PositiveInt = _RESOURCES.commit_concurrency

    @model_validator(mode="after")
    def _whole_gpus_above_one(self) -> ResourcesSection:
        gpus = self.gpus_per_task
        if gpus > 1 and gpus != int(gpus):
            raise ValueError(
                f"gpus_per_task above 1 must be a whole number (Ray's rule), got "
                f"{gpus}: use {int(gpus)} or {int(gpus) + 1}, or a fraction ≤ 1"
            )
        return self


REFINE_LEVELS = {"crossover": 1.0, "jamming": 0.5}  # default level of each boundary


@dataclass(frozen=True)
class Refinement:
    """Adaptive refinement of one phase boundary (pipeline/drivers/refine.py): grid points are added
    by bisection until every boundary point is bracketed within a factor `tolerance`, or
    the campaign holds `max_cells` cells, coarse grid included (None: no cap but
    [resources] max_cells)."""

    boundary: str  # crossover: ntk_change = level; jamming: fitted fraction = level
    level: float  # c of the crossover, or the fitted fraction of jamming (½)
    tolerance: float = 1.25  # resolved when upper/lower ≤ tolerance (or adjacent widths)
    max_cells: int | None = None


class RefineSection(Section):
    """[refine]: `phasegrid run` does the coarse grid, then refines this boundary."""

    boundary: Boundary
    level: PositiveNumber | None = None
    tolerance: Factor = Refinement.tolerance
    max_cells: PositiveInt | None = None

    @model_validator(mode="after")
    def _jamming_level_is_a_fraction(self) -> RefineSection:
        if self.boundary == "jamming" and self.level is not None and self.level >= 1:
            raise ValueError(
                f"the jamming level is a fraction of seeds fitted, below 1, got "
                f"level = {self.level}: use 0.5 (half the seeds fitted)"
            )
        return self


class CampaignModel(Section):
    name: CampaignName
    description: Text = ""
    data: DataSection
    model: ModelSection = Field(default_factory=ModelSection)
    loss: LossSection = Field(default_factory=LossSection)
    flow: FlowSection
    observables: ObservablesSection = Field(default_factory=ObservablesSection)
    grid: GridSection
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    refine: RefineSection | None = None


# Where a grid axis may instead be fixed: train_size in [data], depth in [model].
AXIS_HOMES = {"train_size": "data", "depth": "model"}

REQUIRED_HINTS = {
    "name": 'add name = "my-campaign" at the top of the file',
    "data": 'add a [data] table with at least dataset = "stripe" (or mnist, ...)',
    "data.dataset": "add dataset = one of " + ", ".join(DATASETS),
    "flow": f"add a [flow] table with a budget, e.g. max_steps = {_FLOW.max_steps}",
    "grid": "add a [grid] table with width, alpha_tilde and seed, e.g. width = [8, 32, 128]",
    "grid.width": "add width = [8, 32, 128] to [grid] (width has no fixed default)",
    "grid.alpha_tilde": "add alpha_tilde = {logspace = [-2, 4, 7]} or a list to [grid]",
    "grid.seed": "add seed = {range = [0, 10]} or a list such as [0] to [grid]",
    "refine.boundary": 'add boundary = "crossover" (or "jamming") to [refine]',
}
