"""The project's import graph read from source (ast), for the layering tests."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("tasks", "results_schema", "pipeline", "reproduction", "benchmarks")
WINGS = ("spec", "store", "analysis", "execute", "figures", "drivers", "cli")


def module_name(path: Path, root: Path = REPO) -> str:
    """'pipeline.store.rows' for <root>/pipeline/store/rows.py ('pipeline.store' for its
    __init__.py)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = REPO) -> dict[str, Path]:
    """module name -> file of every Python module of the project's packages."""
    return {
        module_name(p, root): p
        for package in PACKAGES
        for p in sorted((root / package).rglob("*.py"))
    }


def imported_modules(source: str, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module) of every project module `source` imports, at any depth (lazy
    imports inside functions count). `from a import b` counts a.b when a.b is a module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    yield node.lineno, f"{node.module}.{alias.name}"


def wing_of(module: str) -> str:
    """The wing a module belongs to: 'pipeline.<wing>' inside pipeline/, else its package."""
    parts = module.split(".")
    if parts[0] == "pipeline" and len(parts) > 1:
        return f"pipeline.{parts[1]}"
    return parts[0]


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """module -> the project modules it imports (with their parent packages, which
    Python imports first)."""
    modules = project_modules(root)
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for _, target in imported_modules(path.read_text(), known):
            if target.split(".")[0] in PACKAGES and target in known:
                targets.add(target)
        targets.discard(name)
        graph[name] = targets
    return graph
