"""Bad input and security basics: a malformed spec through `phasegrid run` gets a clear
error and writes nothing; nothing in pipeline/ or tasks/ unpickles (a store file can
never run code when read); no campaign name or store path leaves the store. (Embedded Ray
listening on loopback only is tests/execute/test_pipeline.py's
test_embedded_ray_listens_on_loopback_only; property-based spec checks are in test_spec.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.store.location import Location, join_uri
from support.fault_tools import REPO

GOOD = (REPO / "campaigns" / "stripe_small.toml").read_text()
MALFORMED = {  # case: (edit of stripe_small.toml, what the message must name)
    "name escaping the store": (
        lambda t: t.replace('name = "stripe-small"', 'name = "../x"'),
        "name",
    ),
    "absolute name": (lambda t: t.replace('name = "stripe-small"', 'name = "/tmp/x"'), "name"),
    "unknown key": (lambda t: t.replace("[flow]", "[flow]\nmax_step = 10"), "max_step"),
    "wrong type": (lambda t: t.replace("width = [8, 16]", 'width = ["8", 16]'), "grid.width"),
    "missing section": (lambda t: t.split("[grid]")[0], "grid"),
    "out of range": (
        lambda t: t.replace("alpha_tilde = [1e-1, 1e2]", "alpha_tilde = [0.0]"),
        "alpha_tilde",
    ),
    "huge grid": (
        lambda t: t.replace("seed = [0, 1]", "seed = {range = [0, 10000000]}"),
        "max_cells",
    ),
    "not TOML": (lambda t: t.replace("[flow]", "[flow"), "toml"),
}


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_spec_through_phasegrid_run_is_refused_and_writes_nothing(tmp_path, case):
    edit, named = MALFORMED[case]
    spec = tmp_path / "spec.toml"
    spec.write_text(edit(GOOD))
    before = files_under(tmp_path)
    result = CliRunner().invoke(app, ["run", str(spec), "--store", str(tmp_path / "store")])
    assert result.exit_code == 2, result.output
    assert (
        "error" in result.output and named in result.output.lower().replace("\n", "")
    ) or named in result.output.replace("\n", ""), result.output
    assert "Traceback" not in result.output
    assert files_under(tmp_path) == before and not (tmp_path / "x").exists()


def test_a_missing_spec_file_is_refused_and_writes_nothing(tmp_path):
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "nope.toml"), "--store", str(tmp_path / "store")]
    )
    assert result.exit_code == 2 and "nope.toml" in result.output.replace("\n", "")
    assert files_under(tmp_path) == set()


UNPICKLERS = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "cPickle.load",
    "cloudpickle.load",
    "cloudpickle.loads",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "pd.read_pickle",
    "pandas.read_pickle",
    "marshal.loads",
    "shelve.open",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def unpickling_calls(source: str) -> list[str]:
    """Calls that can execute code from the bytes they load: pickle and friends,
    torch.load without weights_only=True, np.load with allow_pickle=True."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if (
            name in UNPICKLERS
            or name.endswith(".read_pickle")
            or (name == "torch.load" and _keyword(node, "weights_only") is not True)
            or (name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle"))
        ):
            found.append(f"line {node.lineno}: {name}")
    return found


def test_the_unpickling_check_finds_each_kind():
    source = (
        "pickle.loads(b)\ntorch.load(f)\ntorch.load(f, weights_only=False)\n"
        "np.load(f, allow_pickle=True)\npd.read_pickle(f)\nframe.read_pickle(f)\n"
        "torch.load(f, weights_only=True)\nnp.load(f)\n"
    )
    assert [f.split(": ")[1] for f in unpickling_calls(source)] == [
        "pickle.loads",
        "torch.load",
        "torch.load",
        "np.load",
        "pd.read_pickle",
        "frame.read_pickle",
    ]


@pytest.mark.parametrize("package", ["pipeline", "tasks", "results_schema"])
def test_nothing_read_from_a_store_is_unpickled(package):
    found = {
        str(path.relative_to(REPO)): calls
        for path in sorted((REPO / package).rglob("*.py"))
        if (calls := unpickling_calls(path.read_text()))
    }
    assert found == {}


@pytest.mark.parametrize("name", ["../x", "..", "a/../../b", "/etc", "x/..\\..\\y"])
def test_no_campaign_name_or_store_path_leaves_the_store(tmp_path, name):
    with pytest.raises(ValueError, match="would leave"):
        join_uri(str(tmp_path), name)
    with pytest.raises(ValueError, match="would leave"):
        join_uri("s3://bucket/store?scheme=http", name)
    location = Location.open(str(tmp_path / "campaign"))
    with pytest.raises(ValueError, match="not a path inside the campaign"):
        location.path(name)
    with pytest.raises(ValueError, match="not a path inside the campaign"):
        location.write_bytes(name, b"x")
    assert not list(tmp_path.rglob("*"))
    assert join_uri(str(tmp_path), "ok-name") == str(tmp_path / "ok-name")
