"""Campaign specs: a TOML file → a validated, frozen `CampaignSpec` → its `CellSpec`s.

    spec = load_campaign("campaigns/demo.toml")  # SpecError (a ValueError) if anything is wrong
    spec.cells()      # [CellSpec, ...]: product of the axes width × α̃ × P × depth × seed
    spec.to_dict()    # resolved and JSON-able; parse_campaign(spec.to_dict()) gives the same spec

Everything is checked before anything runs, in three layers: the schema of each section
(pipeline/spec/schema.py: keys, types, ranges), rules across sections (here: an axis both
fixed and swept, the size of the grid), and the data (`check_against_data`: the dataset is
there and has enough examples). All problems are reported together, each naming the TOML
path, the bad value and the fix. Nothing here writes anything; `load_campaign` only reads
the TOML file (and `check_against_data` asks tasks.data how big the dataset is).

A relative `data_dir` is taken relative to the spec file's directory and stored absolute.
"""

from __future__ import annotations

import itertools
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Set
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.spec import axes as grid
from pipeline.spec.axes import AXES
from pipeline.spec.data_rules import data_problems
from pipeline.spec.errors import Problem, SpecError, problem, show, translate
from pipeline.spec.from_campaign import PerpendicularSource
from pipeline.spec.schema import (
    AXIS_HOMES,
    REFINE_LEVELS,
    CampaignModel,
    Refinement,
    RefineSection,
    Resources,
)
from tasks.specs import CellSpec, DataSpec, FlowSpec, LossSpec, ModelSpec, ObservableSpec

__all__ = [
    "CampaignSpec",
    "Grid",
    "Problem",
    "Resources",
    "SpecError",
    "check_against_data",
    "load_campaign",
    "parse_campaign",
]

# Pixels per image, the most PCA components a dimension can ask for.
IMAGE_PIXELS = {"mnist": 28 * 28, "fashion-mnist": 28 * 28, "cifar10": 32 * 32 * 3}


@dataclass(frozen=True)
class Grid:
    """The swept values of each axis, in the order written (forms: ascending)."""

    width: tuple[int, ...]
    alpha_tilde: tuple[float, ...]
    seed: tuple[int, ...]
    train_size: tuple[int, ...] | None = None  # None: fixed by [data] train_size
    depth: tuple[int, ...] | None = None  # None: fixed by [model] depth


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign. `data`, `model`, … are the templates every cell shares;
    `model.width` (and `data.train_size` / `model.depth` when swept) are placeholders
    that `cells()` replaces with the grid's values."""

    name: str
    data: DataSpec
    model: ModelSpec
    loss: LossSpec
    flow: FlowSpec
    observables: ObservableSpec
    grid: Grid
    resources: Resources
    description: str = ""
    source_path: str | None = None  # the TOML it came from, if any
    refine: Refinement | None = None  # [refine]: refine a boundary after the coarse grid
    # [data] perpendicular_scale = {from_campaign = …}: where Λ(P) comes from, and the
    # factors {P: Λ} once resolved (pipeline/spec/from_campaign.py, pipeline/drivers/sources.py)
    perpendicular_source: PerpendicularSource | None = None
    perpendicular_scales: tuple[tuple[int, float], ...] | None = None

    @property
    def swept(self) -> tuple[str, ...]:
        """Axes given in [grid], in product order."""
        return tuple(a for a in AXES if getattr(self.grid, a) is not None)

    @property
    def axes(self) -> dict[str, tuple]:
        """Values of every axis in product order; a fixed axis has one value."""
        fixed = {"train_size": (self.data.train_size,), "depth": (self.model.depth,)}
        return {a: getattr(self.grid, a) or fixed[a] for a in AXES}

    @property
    def n_cells(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    def cells(self) -> list[CellSpec]:
        """One CellSpec per point of width × α̃ × P × depth × seed (seed varies fastest)."""
        return [
            self.cell(width, alpha_tilde, train_size, depth, seed)
            for width, alpha_tilde, train_size, depth, seed in itertools.product(
                *self.axes.values()
            )
        ]

    def cells_at(self, points: Iterable[Mapping[str, Any]]) -> list[CellSpec]:
        """Every seed of each grid point (a mapping with width, alpha_tilde and, if it
        varies them, train_size and depth), with the spec's fixed settings: what
        refinement adds between the points of the grid."""
        return [
            self.cell(
                int(point["width"]),
                float(point["alpha_tilde"]),
                int(point.get("train_size", self.data.train_size)),
                int(point.get("depth", self.model.depth)),
                seed,
            )
            for point in points
            for seed in self.grid.seed
        ]

    def cell(
        self, width: int, alpha_tilde: float, train_size: int, depth: int, seed: int
    ) -> CellSpec:
        """The cell of one grid point and seed, with the spec's fixed settings."""
        return CellSpec(
            alpha_tilde=alpha_tilde,
            seed=seed,
            data=replace(
                self.data,
                train_size=train_size,
                perpendicular_scale=self._perpendicular_scale(train_size),
            ),
            model=replace(self.model, width=width, depth=depth),
            loss=self.loss,
            flow=self.flow,
            observables=self.observables,
            checkpoint_every_seconds=self.resources.checkpoint_every_seconds,
        )

    def _perpendicular_scale(self, train_size: int) -> float:
        """The [data] factor, or the Λ(P) resolved from another campaign."""
        if self.perpendicular_source is None:
            return self.data.perpendicular_scale
        if self.perpendicular_scales is None:
            raise ValueError(
                "perpendicular_scale comes from another campaign: resolve it first with "
                "pipeline.drivers.sources.resolve_sources (phasegrid run does), which reads "
                "that campaign through the store"
            )
        scales = dict(self.perpendicular_scales)
        if train_size not in scales:
            raise ValueError(
                f"perpendicular_scale was resolved for train_size {sorted(scales)}, not "
                f"{train_size}: add it to [grid] train_size and load the spec again"
            )
        return scales[train_size]

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as TOML-shaped, JSON-able data (unset options left out)."""
        swept = set(self.swept)
        data = _set_fields(
            self.data, {"train_size"} & swept | ({"dimension"} if _raw_pixels(self.data) else set())
        )
        if self.perpendicular_source is not None:
            data["perpendicular_scale"] = self.perpendicular_source.to_dict()
        return {
            "name": self.name,
            "description": self.description,
            "data": data,
            "model": _set_fields(self.model, {"width"} | ({"depth"} & swept)),
            "loss": _set_fields(self.loss),
            "flow": _set_fields(self.flow),
            "observables": _set_fields(self.observables),
            "grid": {a: list(getattr(self.grid, a)) for a in AXES if a in swept},
            "resources": _set_fields(self.resources),
            **({"refine": _set_fields(self.refine)} if self.refine else {}),
        }


def _raw_pixels(data: Any) -> bool:
    """Image data read as raw pixels ([data] pca = false)."""
    return data.dataset in IMAGE_PIXELS and not data.pca


def _set_fields(spec: Any, drop: Set[str] = frozenset()) -> dict[str, Any]:
    return {k: v for k, v in asdict(spec).items() if v is not None and k not in drop}


def load_campaign(path: str | Path, *, check_data: bool = True) -> CampaignSpec:
    """Read and validate a campaign TOML; with `check_data`, also `check_against_data`.

    Raises SpecError naming every problem. Reads the file; writes nothing. A
    perpendicular_scale taken from another campaign is left to resolve
    (`pipeline.drivers.sources.resolve_sources`, which reads that campaign)."""
    return load_campaign_text(path, check_data=check_data)[0]


def load_campaign_text(path: str | Path, *, check_data: bool = True) -> tuple[CampaignSpec, str]:
    """`load_campaign`, and the TOML text it read (stored with the campaign): the file
    is read once."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode()
        raw = tomllib.loads(text)
    except OSError as err:
        raise SpecError(
            [
                problem(
                    "",
                    f"cannot read the campaign spec: {err.strerror or err}; check the path",
                    source,
                )
            ],
            source,
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(
            [problem("", f"not valid TOML: {err}; fix the syntax", source)], source
        ) from None
    spec = parse_campaign(raw, source, base_dir=Path(path).parent)
    spec = replace(spec, source_path=source)
    if check_data:
        check_against_data(spec)
    return spec, text


def parse_campaign(
    data: Mapping[str, Any], source: str = "<spec>", *, base_dir: str | Path | None = None
) -> CampaignSpec:
    """Validate TOML-shaped data (e.g. `CampaignSpec.to_dict()`) into a CampaignSpec.

    `source` names the origin in messages; a relative data_dir is joined to `base_dir`.
    Raises SpecError listing every problem; pure (no I/O)."""
    if not isinstance(data, Mapping):
        raise SpecError(
            [
                problem(
                    "",
                    "a campaign spec must be a table of sections ([data], "
                    f"[grid], ...), got {show(data)}",
                    source,
                )
            ],
            source,
        )
    problems = _cross_section_problems(data, source)
    try:
        model = CampaignModel.model_validate(dict(data))
    except ValidationError as err:
        problems += [translate(e, source) for e in err.errors(include_url=False)]
        raise SpecError(problems, source) from None
    problems += _grid_size_problems(model, source) + _refine_problems(model, source)
    problems += data_problems(model, source)
    if problems:
        raise SpecError(problems, source)
    return _build(model, base_dir)


def _cross_section_problems(raw: Mapping[str, Any], source: str) -> list[Problem]:
    """Rules that span sections, checked on the raw data so they show up with the rest."""
    grid_section = raw.get("grid")
    swept: Mapping[str, Any] = grid_section if isinstance(grid_section, Mapping) else {}
    problems = []
    for axis_name, home in AXIS_HOMES.items():
        section = raw.get(home)
        if isinstance(section, Mapping) and axis_name in section and axis_name in swept:
            problems.append(
                problem(
                    f"grid.{axis_name}",
                    f"{axis_name} is both fixed in [{home}] ({home}."
                    f"{axis_name} = {show(section[axis_name])}) and swept in [grid]: keep only one "
                    f"of the two",
                    source,
                )
            )
    model = raw.get("model")
    if isinstance(model, Mapping) and model.get("arch") == "one-hidden":
        fix = 'remove depth, or use arch = "fc" to choose the depth'
        if "depth" in swept:
            problems.append(
                problem(
                    "grid.depth",
                    'arch "one-hidden" has exactly one hidden '
                    f"layer, so depth cannot be swept: {fix}",
                    source,
                )
            )
        elif "depth" in model and not (type(model["depth"]) is int and model["depth"] == 1):
            problems.append(
                problem(
                    "model.depth",
                    'arch "one-hidden" has exactly one hidden '
                    f"layer, got depth = {show(model['depth'])}: {fix}",
                    source,
                )
            )
    return problems


def _grid_size_problems(model: CampaignModel, source: str) -> list[Problem]:
    """The grid must not exceed [resources] max_cells; sizes are known before expanding."""
    sizes = {a: grid.size(v) for a in AXES if (v := getattr(model.grid, a)) is not None}
    total, cap = math.prod(sizes.values()), model.resources.max_cells
    if total <= cap:
        return []
    product = " × ".join(f"{_count(n)} {a}" for a, n in sizes.items())
    raise_cap = f", or raise the cap with [resources] max_cells = {total}" if total < 10**15 else ""
    return [
        problem(
            "grid",
            f"the grid has {_count(total)} cells ({product}), more than "
            f"max_cells = {cap:,}: shrink the grid{raise_cap}",
            source,
        )
    ]


def _refine_problems(model: CampaignModel, source: str) -> list[Problem]:
    """[refine] max_cells counts the coarse grid too, so it must leave room to refine; the
    crossover is located with ntk_change, so the NTK must be measured."""
    if model.refine is None:
        return []
    problems, cap = [], model.refine.max_cells
    total = math.prod(grid.size(v) for a in AXES if (v := getattr(model.grid, a)) is not None)
    if cap is not None and cap <= total:
        problems.append(
            problem(
                "refine.max_cells",
                f"max_cells counts every cell of the campaign, the coarse "
                f"grid's {_count(total)} included, so {cap:,} leaves none to refine with: raise it "
                f"above {total:,}",
                source,
            )
        )
    if model.refine.boundary == "crossover" and not model.observables.ntk:
        problems.append(
            problem(
                "refine.boundary",
                "the crossover is where ntk_change crosses the level, but "
                '[observables] ntk = false: set ntk = true, or refine boundary = "jamming"',
                source,
            )
        )
    return problems


def _count(n: int) -> str:
    """12,000 or, for absurd counts, about 10^400."""
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(n)) - 1}"


def _build(model: CampaignModel, base_dir: str | Path | None) -> CampaignSpec:
    """The frozen spec from a validated model (pydantic stays inside this module)."""
    axes: dict[str, Any] = {
        a: grid.values(v) if (v := getattr(model.grid, a)) is not None else None for a in AXES
    }
    data = model.data.model_dump()
    data["data_dir"] = _resolve_dir(data["data_dir"], base_dir)
    source = None
    if isinstance(data["perpendicular_scale"], dict):  # {from_campaign = …}: resolved later
        source = data.pop("perpendicular_scale")
        source = PerpendicularSource(
            **{**source, "from_campaign": _resolve_dir(source["from_campaign"], base_dir)}
        )
    if _raw_pixels(model.data):  # the input dimension is the pixel count
        data["dimension"] = IMAGE_PIXELS[data["dataset"]]
    arch = model.model.model_dump()
    if arch["arch"] == "one-hidden":
        arch["depth"] = 1
    return CampaignSpec(
        name=model.name,
        description=model.description,
        data=DataSpec(**data),
        model=ModelSpec(**arch),
        loss=LossSpec(**model.loss.model_dump()),
        flow=FlowSpec(**model.flow.model_dump()),
        observables=ObservableSpec(**model.observables.model_dump()),
        grid=Grid(**axes),
        resources=Resources(**model.resources.model_dump()),
        refine=_refinement(model.refine),
        perpendicular_source=source,
    )


def _refinement(section: RefineSection | None) -> Refinement | None:
    """The frozen [refine] with the boundary's default level filled in."""
    if section is None:
        return None
    level = section.level if section.level is not None else REFINE_LEVELS[section.boundary]
    return Refinement(section.boundary, level, section.tolerance, section.max_cells)


def _resolve_dir(path: str | None, base_dir: str | Path | None) -> str | None:
    """`~` expanded; a relative path joined to the spec's directory (when known)."""
    if path is None:
        return None
    path = os.path.expanduser(path)
    if base_dir is not None and not os.path.isabs(path):
        path = os.path.normpath(os.path.join(os.path.abspath(base_dir), path))
    return path


def check_against_data(spec: CampaignSpec) -> None:
    """Check the dataset exists and holds the examples asked for; SpecError if not.

    Needs test_size + kernel_size + max(train_size) ≤ available examples (the three sets
    are disjoint) and, for images, dimension ≤ pixels. Reads only dataset metadata."""
    from tasks import data as datasets  # lazy: reading datasets is not needed to validate

    d, source = spec.data, spec.source_path or "<spec>"
    try:
        available = datasets.dataset_size(d.dataset, d.data_dir)
    except datasets.DatasetNotFoundError as err:
        raise SpecError(
            [
                problem(
                    "data.dataset",
                    f"dataset {d.dataset!r} is not available here "
                    f"({err}): run `phasegrid data` to see where it is looked for, "
                    "or set data.data_dir",
                    source,
                )
            ],
            source,
        ) from None
    problems = []
    largest = max(spec.axes["train_size"])
    needed = largest + d.test_size + d.kernel_size
    if available is not None and needed > available:
        path = "grid.train_size" if spec.grid.train_size else "data.train_size"
        where = datasets.locate_dataset(d.dataset, d.data_dir)
        problems.append(
            problem(
                path,
                f"train_size + test_size + kernel_size = {largest} + "
                f"{d.test_size} + {d.kernel_size} = {needed} examples, but "
                f"{d.dataset} has {available} usable here ({where}): lower "
                "them, or point data.data_dir at the full dataset",
                source,
            )
        )
    pixels = IMAGE_PIXELS.get(d.dataset)
    if pixels is not None and d.dimension > pixels:
        problems.append(
            problem(
                "data.dimension",
                f"dimension (PCA components) must be at most "
                f"the {pixels} pixels of {d.dataset}, got {d.dimension}",
                source,
            )
        )
    if problems:
        raise SpecError(problems, source)
