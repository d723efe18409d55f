"""Campaign specs, property tests: malformed specs and edge-number axis forms give values
or a SpecError naming a field, never another exception."""

from __future__ import annotations

import copy
import itertools
import json
import math
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.spec.campaign import SpecError, parse_campaign
from pipeline.spec.schema import CampaignModel
from support.spec_examples import EXAMPLE, parse

TRAVERSAL = [
    "../x",
    "a/b",
    "..",
    ".",
    ".hidden",
    "/etc",
    "a/../../b",
    "x\\..\\y",
    "",
    "~",
    "a" * 101,
    "ok-name",
    "名前",
]
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(10**400),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(TRAVERSAL),
)
JUNK = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
OUT_OF_RANGE = st.one_of(
    st.integers(max_value=0),
    st.floats(max_value=0.0),
    st.sampled_from([math.nan, math.inf, -math.inf, 10**30]),
)
SECTIONS = [k for k, f in CampaignModel.model_fields.items() if k not in ("name", "description")]
FIELD_PATHS = (
    ["name", "description"]
    + SECTIONS
    + [
        f"{section}.{key}"
        for section in SECTIONS
        for key in getattr(CampaignModel.model_fields[section].annotation, "model_fields", {})
    ]
)
HUGE = st.sampled_from(
    [
        {"range": [0, 10**9]},
        {"logspace": [-2, 4, 10**12]},
        {"geomspace": [1, 10**6, 10**9]},
        list(range(200_000)),
    ]
)
FORM = st.builds(
    lambda key, args: {key: args},
    st.sampled_from(["range", "logspace", "geomspace"]),
    st.lists(st.one_of(LEAF, OUT_OF_RANGE, st.integers(-3, 3)), max_size=4),
)
MUTATION = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(FIELD_PATHS), st.one_of(JUNK, OUT_OF_RANGE)),
    st.tuples(st.just("delete"), st.sampled_from(FIELD_PATHS), st.none()),
    st.tuples(st.just("set"), st.sampled_from(SECTIONS).map(lambda s: s + "."), JUNK),
    st.tuples(
        st.just("set"),
        st.sampled_from(["grid.width", "grid.alpha_tilde", "grid.seed", "grid.train_size"]),
        HUGE | FORM,
    ),
    st.tuples(st.just("set"), st.just("name"), st.sampled_from(TRAVERSAL)),
)
WRITES = []  # file-system changes seen while parsing (an audit hook fills it when armed)


def _audit(event: str, args: tuple) -> None:
    if not WRITES or WRITES[0] is not True:
        return
    writing = event == "open" and isinstance(args[1], str) and any(c in args[1] for c in "wax+")
    if writing or event in (
        "os.mkdir",
        "os.rename",
        "os.remove",
        "os.rmdir",
        "os.truncate",
        "shutil.copyfile",
        "shutil.rmtree",
        "os.symlink",
        "os.link",
    ):
        WRITES.append((event, args))


sys.addaudithook(_audit)


def _apply(spec: dict, mutation: tuple, salt: str) -> None:
    action, path, value = mutation
    *parents, key = path.split(".")
    key = key or f"unknown_{salt}"  # "section." adds an unknown key there
    table = spec
    for part in parents:
        table = table.get(part) if isinstance(table, dict) else None
        if not isinstance(table, dict):
            return  # an earlier mutation replaced the section
    if action == "delete":
        table.pop(key, None)
    else:
        table[key] = value


def _names_a_field(path: str, spec: dict) -> bool:
    roots = set(CampaignModel.model_fields) | {str(k) for k in spec}
    return any(path == r or path.startswith((r + ".", r + "[")) for r in roots)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4), salt=st.text(max_size=4))
def test_malformed_specs_give_only_spec_errors_that_name_a_field(mutations, salt):
    spec = copy.deepcopy(EXAMPLE)
    for mutation in mutations:
        _apply(spec, mutation, salt)
    WRITES[:] = [True]
    try:
        campaign = parse_campaign(spec, "prop.toml")
    except SpecError as error:
        assert error.problems
        for p in error.problems:
            assert _names_a_field(p.path, spec), p
            assert p.message.endswith(f"({p.path} in prop.toml)"), p
            assert "Input should" not in p.message and "Value error" not in p.message, p
    else:
        assert campaign.n_cells <= campaign.resources.max_cells
        json.dumps(campaign.to_dict())
        if campaign.n_cells <= 1000:
            assert len(campaign.cells()) == campaign.n_cells
    finally:
        armed, *seen = WRITES
        WRITES.clear()
    assert armed is True and seen == [], seen


EDGE_ARGS = [0, 1, -1, 2, 10**400, 1e300, 0.5]


@pytest.mark.parametrize("axis_name", ["width", "alpha_tilde", "seed"])
def test_every_form_with_edge_numbers_gives_values_or_a_spec_error(axis_name):
    """Exhaustive over small argument lists, where the property test only samples."""
    for key in ("range", "logspace", "geomspace"):
        for n_args in (2, 3):
            for args in itertools.product(EDGE_ARGS, repeat=n_args):
                try:
                    spec = parse(lambda d: d["grid"].update({axis_name: {key: list(args)}}))
                except SpecError as error:
                    assert all(
                        p.path.startswith(f"grid.{axis_name}") or p.path == "grid"
                        for p in error.problems
                    )
                    assert all(len(p.message) < 300 for p in error.problems)
                else:
                    got = getattr(spec.grid, axis_name)
                    assert got and len(set(got)) == len(got)
                    low = 0 if axis_name == "seed" else math.ulp(0.0)  # seeds ≥ 0, others > 0
                    assert all(math.isfinite(v) and v >= low for v in got)
