"""Rules between [data] and [model] keys that pydantic's per-field types cannot state:
raw pixels vs PCA inputs, the compressed-data control and the cylinder (issue 14).

`data_problems(model, source)` lists every broken rule as a `Problem` naming the key and
the fix; `pipeline.spec.campaign.parse_campaign` reports them with the rest, before anything runs.
With ``pca = false`` the spec's `dimension` is the pixel count, set by the parser (a user's
`dimension` is refused, so a resolved spec leaves it out)."""

from __future__ import annotations

from pipeline.spec.errors import Problem, problem
from pipeline.spec.schema import CampaignModel
from tasks.specs import SYNTHETIC_DATASETS, DataSpec

DATA = DataSpec()  # the defaults
INFORMATIVE = ("stripe", "cylinder")  # datasets whose label directions are known


def data_problems(model: CampaignModel, source: str) -> list[Problem]:
    """Every [data]/[model] rule that ``model`` breaks (empty if none)."""
    data, arch, given = model.data, model.model.arch, model.data.model_fields_set
    problems = []
    synthetic = data.dataset in SYNTHETIC_DATASETS
    if not data.pca and synthetic:
        problems.append(
            problem(
                "data.pca",
                f"pca applies to image datasets only; "
                f"{data.dataset!r} is generated in `dimension` coordinates: "
                "remove pca",
                source,
            )
        )
    if not synthetic and not data.pca and "dimension" in given:
        problems.append(
            problem(
                "data.dimension",
                "with pca = false the inputs are the raw "
                "pixels, so dimension (the number of PCA components) does not "
                "apply: remove dimension, or set pca = true",
                source,
            )
        )
    if arch == "cnn" and not synthetic and data.pca:
        problems.append(
            problem(
                "model.arch",
                "a CNN needs images with their spatial order, "
                "but principal components have none: set [data] pca = false "
                '(raw pixels), or use arch = "fc"',
                source,
            )
        )
    if data.perpendicular_scale != DATA.perpendicular_scale and data.dataset not in INFORMATIVE:
        problems.append(
            problem(
                "data.perpendicular_scale",
                "perpendicular_scale compresses "
                "the directions the labels do not depend on, known only for "
                f"{' and '.join(INFORMATIVE)}, not {data.dataset!r}: remove it",
                source,
            )
        )
    if data.parallel_dimension != DATA.parallel_dimension and data.dataset != "cylinder":
        problems.append(
            problem(
                "data.parallel_dimension",
                "parallel_dimension (d∥) is the "
                'cylinder\'s; remove it, or set dataset = "cylinder"',
                source,
            )
        )
    if data.dataset == "cylinder" and data.parallel_dimension >= data.dimension:
        problems.append(
            problem(
                "data.parallel_dimension",
                f"the cylinder needs at least one "
                f"uninformative direction: parallel_dimension must be below "
                f"dimension = {data.dimension}, got {data.parallel_dimension}",
                source,
            )
        )
    return problems
