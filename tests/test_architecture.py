"""The layering of docs/architecture.md, checked on the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATION = ("studies.orchestration",)
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
    bad = {m: sorted(i for i in deps if within(i, (*ORCHESTRATION, "studies.cli")))
           for m, deps in report.items()}
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_spec_language_imports_no_orchestration_report_or_command_line():
    spec = {m: d for m, d in graph("studies").items() if m.startswith("studies.spec")}
    bad = {m: sorted(i for i in deps if within(i, (*ORCHESTRATION, "studies.cli", "studies.report")))
           for m, deps in spec.items()}
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


def test_figures_and_metrics_read_methods_through_protocols_not_method_classes():
    interface = ("disent_core.methods.losses",)
    readers = {m: d for m, d in graph("disent_core").items()
               if m.startswith("disent_core.metrics") or m == "disent_core.analysis.figures"}
    bad = {m: sorted(i for i in deps if within(i, ("disent_core.methods",)) and i not in interface)
           for m, deps in readers.items()}
    assert {m: d for m, d in bad.items() if d} == {}


def test_every_registered_method_is_a_latent_model():
    import torch

    from disent_core.latents import LatentModel
    from disent_core.methods.base import MethodContext
    from disent_core.methods.registry import METHOD_CLASSES

    context = MethodContext((1, 64, 64), 4, "bernoulli", 100, torch.Generator())
    for cls in METHOD_CLASSES:
        method = cls(cls.config_class(), context)
        assert isinstance(method, LatentModel), cls.name
        x = torch.rand(3, 1, 64, 64)
        code = method.code(x)
        assert code.shape == (3, 4) and method.decode(code).shape == (3, 1, 64, 64)
        assert method.latent_information(x, torch.Generator().manual_seed(0)).shape == (4,)
