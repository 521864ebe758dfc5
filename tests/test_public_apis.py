"""The code uses the public APIs of Ray, Optuna, MLflow, scikit-learn and PyTorch only.

A private attribute (``._name``, not a dunder) of an upstream object can change or vanish in any
release without notice. The check reads the source of ``studies/`` and ``disent_core/`` with
``ast`` (so comments and strings do not count) and, in every module that imports one of those
libraries, flags

- an attribute ``x._name`` whose name this repository does not define as an attribute of its own
  (assigned as ``self._name`` / ``cls._name``, or defined in a class body), or whose ``x`` is one
  of those libraries, imported;
- ``getattr``/``hasattr``/``setattr``/``delattr`` with such a name as a literal;
- an import of a private module or name of those libraries (``from optuna.samplers._grid ...``).

Names of modules this repository or another library owns (``sys._getframe``, a ``_helper`` of a
module of ours) are not the libraries' and are not flagged.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("studies", "disent_core")
LIBRARIES = frozenset({"ray", "optuna", "mlflow", "sklearn", "torch"})
ATTR_FUNCTIONS = frozenset({"getattr", "hasattr", "setattr", "delattr"})
# namedtuple's public API is spelled with a leading underscore
PUBLIC_UNDERSCORED = frozenset({"_asdict", "_replace", "_fields", "_make", "_field_defaults"})
# Known reads, each with why it is there. The fast DCI (docs/metrics.md) lays out
# HistGradientBoostingClassifier's fitted trees itself; scikit-learn has no public API for a fitted
# model's binned features, baseline or predictors, so pyproject.toml pins scikit-learn below 1.10
# and tests/metrics/test_estimators.py checks the layout's predictions against ``predict``.
KNOWN = frozenset({
    ("disent_core/metrics/dci.py", "_bin_mapper"),
    ("disent_core/metrics/dci.py", "_baseline_prediction"),
    ("disent_core/metrics/dci.py", "_predictors"),
})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    name: str
    text: str


def is_private(name: str) -> bool:
    return name.startswith("_") and len(name) > 1 and not (name.startswith("__") and name.endswith("__"))


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def own_attributes(trees: list[ast.AST]) -> set[str]:
    """Private names this repository defines as attributes: ``self._x = ...``, ``cls._x = ...``,
    and methods, nested classes and variables of its class bodies."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                names.add(node.attr)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                        names.add(item.name)
                    targets = item.targets if isinstance(item, ast.Assign) else (
                        [item.target] if isinstance(item, ast.AnnAssign) else [])
                    names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {n for n in names if is_private(n)}


def imported_modules(tree: ast.AST) -> dict[str, str]:
    """Each name an import binds -> the top-level package it comes from."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                bound[alias.asname or alias.name] = node.module.split(".")[0]
    return bound


def root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def private_reads(source: str, path: str, own: set[str]) -> list[Finding]:
    """The private accesses to the libraries' objects in one module's ``source`` (see the docstring)."""
    tree = ast.parse(source)
    bound = imported_modules(tree)
    if not LIBRARIES & set(bound.values()):
        return []
    lines = source.splitlines()
    found: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in LIBRARIES:
                    found += [(node, part) for part in parts if is_private(part)]
            continue
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0 and parts[0] in LIBRARIES:
                found += [(node, part) for part in parts if is_private(part)]
                found += [(node, alias.name) for alias in node.names if is_private(alias.name)]
            continue
        if isinstance(node, ast.Attribute):
            receiver, name = node.value, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ATTR_FUNCTIONS and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            receiver, name = node.args[0], node.args[1].value
        else:
            continue
        if not is_private(name) or name in PUBLIC_UNDERSCORED:
            continue
        package = bound.get(root_name(receiver) or "")
        if package in LIBRARIES or (package is None and name not in own):
            found.append((node, name))
    return sorted({Finding(path, n.lineno, name, lines[n.lineno - 1].strip()) for n, name in found},
                  key=lambda f: (f.line, f.name))


def tree_findings() -> list[Finding]:
    files = {str(p.relative_to(ROOT)): p.read_text() for p in source_files()}
    own = own_attributes([ast.parse(text) for text in files.values()])
    return [f for path, text in files.items() for f in private_reads(text, path, own)]


def test_no_module_reads_a_private_attribute_of_ray_optuna_mlflow_sklearn_or_torch():
    findings = [f for f in tree_findings() if (f.path, f.name) not in KNOWN]
    assert findings == [], "\n".join(f"{f.path}:{f.line}: {f.name} in {f.text}" for f in findings)


def test_the_check_flags_the_private_reads_the_search_once_had():
    own = own_attributes([ast.parse(p.read_text()) for p in source_files()])
    snippet = "\n".join([
        "import optuna",
        "from ray.tune.search import Repeater",
        'optuna.trial.Trial(study, frozen._trial_id).set_user_attr("failure_reason", reason)',
        "known = {t.number for t in self._ot_trials.values()}",
        "fail_running_trials(self._ot_study, known, LOST_ON_RESTORE, retry=True)",
        "group = self._trial_id_to_group.get(trial_id)",
    ])
    found = {(f.line, f.name) for f in private_reads(snippet, "snippet.py", own)}
    assert found == {(3, "_trial_id"), (4, "_ot_trials"), (5, "_ot_study"), (6, "_trial_id_to_group")}


def test_the_check_flags_private_modules_names_and_string_lookups():
    snippet = "\n".join([
        "import torch._dynamo",
        "from optuna.samplers._grid import GridSampler",
        "from ray.tune.search.optuna.optuna_search import _OptunaTrialSuggestCaptor",
        "import mlflow",
        'getattr(model, "_predictors", None)',
        "mlflow._helper()",
        "self._entries.clear()",
    ])
    found = {(f.line, f.name) for f in private_reads(snippet, "snippet.py", own={"_entries", "_helper"})}
    # a library's own module attribute is flagged even where the repository uses the same name
    assert found == {(1, "_dynamo"), (2, "_grid"), (3, "_OptunaTrialSuggestCaptor"), (5, "_predictors"),
                     (6, "_helper")}


def test_the_check_leaves_the_repositorys_own_names_and_other_libraries_alone():
    snippet = "\n".join([
        "import sys",
        "import optuna",
        "from disent_core.metrics import _classifiers",
        "self._entries[key] = value",
        "sys._getframe(0)",
        "_classifiers._fit(x)",
        "point._replace(x=1)",
        "trial.__class__.__name__",
        '"frozen._trial_id"  # and frozen._trial_id in a comment',
    ])
    assert private_reads(snippet, "snippet.py", own={"_entries"}) == []
    assert private_reads("frozen._trial_id\n", "no_library_imported.py", own=set()) == []
