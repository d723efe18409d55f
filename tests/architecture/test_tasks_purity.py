"""tasks/ is the pure core (design.md §1): no shell libraries, no printing, no global seeding."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TASKS = Path(__file__).resolve().parents[2] / "tasks"
FORBIDDEN_MODULES = ("ray", "typer", "matplotlib", "rich", "pyarrow", "pandas")
FORBIDDEN_CALLS = (
    "torch.manual_seed",
    "torch.cuda.manual_seed",
    "torch.cuda.manual_seed_all",
    "torch.random.manual_seed",
    "numpy.random.seed",
    "np.random.seed",
    "random.seed",
    "print",
)


def _dotted(node: ast.AST) -> str:
    """'a.b.c' for a Name/Attribute chain, '' otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def violations(source: str) -> list[str]:
    """Forbidden imports and calls in one module's source, as readable strings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        for module in modules:
            if module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"line {node.lineno}: imports {module}")
        if isinstance(node, ast.Call) and _dotted(node.func) in FORBIDDEN_CALLS:
            found.append(f"line {node.lineno}: calls {_dotted(node.func)}")
    return found


@pytest.mark.parametrize("path", sorted(TASKS.glob("*.py")), ids=lambda p: p.name)
def test_tasks_module_is_pure(path):
    assert violations(path.read_text()) == [], f"{path.name} breaks the tasks/ purity rule"


def test_the_checker_catches_each_kind_of_violation():
    bad = (
        "import ray\nfrom pyarrow import parquet\nimport pyarrow.dataset as ds\n"
        "from matplotlib.pyplot import plot\nimport pandas\nfrom rich.progress import track\n"
        "import typer\nimport torch\ntorch.manual_seed(0)\nprint('x')\n"
    )
    assert len(violations(bad)) == 9
    assert (
        violations(
            "import torch\nimport numpy as np\nfrom tasks.specs import CellSpec\n"
            "g = torch.Generator().manual_seed(0)\n"
        )
        == []
    )
