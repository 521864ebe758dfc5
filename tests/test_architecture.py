"""The layering of docs/architecture.md, checked on the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATION = ("studies.runner", "studies.trainable", "studies.search", "studies.tracking",
                 "studies.progress")
FRAMEWORKS = ("ray", "optuna", "mlflow")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, at any depth of its code (``from a import b``
    counts ``a``); imports for type checkers only (``if TYPE_CHECKING:``) do not count."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def graph(package: str) -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted((ROOT / package).rglob("*.py"))}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_disent_core_imports_neither_the_studies_nor_ray_optuna_mlflow():
    forbidden = (*FRAMEWORKS, "studies")
    bad = {m: sorted(i for i in deps if within(i, forbidden)) for m, deps in graph("disent_core").items()}
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_report_depends_on_the_results_schema_and_the_spec_not_on_the_runner():
    report = {m: d for m, d in graph("studies").items() if m.startswith("studies.report")}
    bad = {m: sorted(i for i in deps if within(i, ORCHESTRATION) or i.endswith("_cmd") or i == "studies.cli")
           for m, deps in report.items()}
    assert {m: d for m, d in bad.items() if d} == {}


def test_studies_modules_import_each_other_without_cycles():
    studies = graph("studies")
    edges = {m: {d for d in deps if d in studies and d != m} for m, deps in studies.items()}
    cycles = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for nxt in sorted(edges[node]):
            if nxt in path:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt], done)
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        if start not in done:
            visit(start, [start], done)
    assert cycles == []
