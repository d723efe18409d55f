"""pipeline/ in wings (README "Layout"): each wing imports only the wings of its row of the
import table, no module imports itself back through others, and only the store touches
campaign files."""

from __future__ import annotations

import pytest

from support.imports import REPO, WINGS, import_graph, imported_modules, project_modules, wing_of

CORE = {"tasks", "results_schema"}
# wing -> the wings it may import (besides itself). Read top to bottom: lower rows never
# import upper ones.
MAY_IMPORT: dict[str, set[str]] = {
    "tasks": set(),
    "results_schema": set(),
    "pipeline.spec": {"tasks"},
    "pipeline.store": CORE,
    "pipeline.analysis": CORE | {"pipeline.spec"},
    "pipeline.execute": CORE | {"pipeline.spec", "pipeline.store"},
    "pipeline.figures": CORE | {"pipeline.analysis"},
    "pipeline.drivers": CORE
    | {
        "pipeline.spec",
        "pipeline.store",
        "pipeline.analysis",
        "pipeline.execute",
        "pipeline.figures",
    },
    "pipeline.cli": CORE
    | {"pipeline.spec", "pipeline.store", "pipeline.execute", "pipeline.drivers"},
    "pipeline": {"pipeline.store"},  # the lazy `load_results`
    "reproduction": {
        "pipeline",
        "pipeline.spec",
        "pipeline.store",
        "pipeline.analysis",
        "pipeline.execute",
        "pipeline.figures",
        "pipeline.drivers",
    },
    "benchmarks": CORE
    | {"pipeline.spec", "pipeline.store", "pipeline.execute", "pipeline.analysis"},
}
# Campaign files are Parquet: only the store (and the schemas) may import pyarrow.
FILE_LIBRARIES = ("pyarrow",)
FILE_WINGS = {"pipeline.store", "results_schema", "benchmarks"}


def wing_violations(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b' for every import of `graph` that its wing's row does not allow."""
    found = []
    for module, targets in sorted(graph.items()):
        allowed = MAY_IMPORT.get(wing_of(module))
        if allowed is None:
            found.append(f"{module}: in no wing of the import table")
            continue
        for target in sorted(targets):
            wing = wing_of(target)
            if wing != wing_of(module) and wing not in allowed:
                found.append(f"{module} -> {target} ({wing_of(module)} may not import {wing})")
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle of `graph` as one path back to its start (Tarjan's strongly
    connected components of more than one module, or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def file_library_imports() -> list[str]:
    """Modules outside FILE_WINGS that import a file library (pyarrow)."""
    modules = project_modules()
    found = []
    for name, path in modules.items():
        if wing_of(name) in FILE_WINGS:
            continue
        for line, target in imported_modules(path.read_text(), set(modules)):
            if target.split(".")[0] in FILE_LIBRARIES:
                found.append(f"{name} line {line}: imports {target}")
    return found


def test_every_import_follows_the_wing_table():
    assert wing_violations(import_graph()) == []


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_only_the_store_imports_the_file_libraries():
    assert file_library_imports() == []


def test_pipeline_has_no_flat_modules_besides_the_cli():
    flat = sorted(p.name for p in (REPO / "pipeline").glob("*.py"))
    assert flat == ["__init__.py", "cli.py"]
    wings = sorted(
        p.name for p in (REPO / "pipeline").iterdir() if p.is_dir() and (p / "__init__.py").exists()
    )
    assert wings == sorted(w for w in WINGS if w != "cli")


def test_the_table_check_catches_an_upward_import():
    graph = {
        "pipeline.store.rows": {"pipeline.drivers.run"},
        "pipeline.analysis.boundaries": {"pipeline.store.frames"},
        "pipeline.store.frames": {"results_schema.tables"},
        "pipeline.stray": set(),
    }
    assert wing_violations(graph) == [
        "pipeline.analysis.boundaries -> pipeline.store.frames "
        "(pipeline.analysis may not import pipeline.store)",
        "pipeline.store.rows -> pipeline.drivers.run (pipeline.store may not import "
        "pipeline.drivers)",
        "pipeline.stray: in no wing of the import table",
    ]


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"a"}}, [["a"]]),
        ({"a": {"b"}, "b": set(), "c": {"b"}}, []),
    ],
)
def test_the_circle_check_finds_circles(graph, expected):
    assert circles(graph) == expected


def test_imports_inside_functions_count():
    source = "def f():\n    from pipeline.drivers.run import run_campaign\n"
    found = list(imported_modules(source, {"pipeline.drivers.run"}))
    assert (2, "pipeline.drivers.run") in found
