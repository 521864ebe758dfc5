"""Building ``disent-study``'s parser imports none of the heavy frameworks.

``--help``, ``--version`` and every command's ``--help`` run in a fresh interpreter, which then must
not hold PyTorch, Ray, MLflow, Optuna, scikit-learn or pandas (``bench/cli_startup.py`` times it).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "ray", "mlflow", "optuna", "sklearn", "pandas")
PROBE = """
import json, sys
from studies.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def heavy_imports(argv: list[str]) -> list[str]:
    """The heavy frameworks a fresh interpreter holds after ``main(argv)``."""
    completed = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
                               capture_output=True, text=True, timeout=120, check=True)
    return json.loads(completed.stdout.splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["run", "--help"], ["report", "--help"], ["resume", "--help"],
    ["status", "--help"], ["ui", "--help"], ["train", "--help"], ["evaluate", "--help"], ["ifp", "--help"],
    ["datasets", "--help"], ["datasets", "info", "--help"],
], ids=" ".join)
def test_help_imports_no_heavy_framework(argv):
    assert heavy_imports(argv) == []


def test_building_the_parser_imports_no_heavy_framework():
    code = ("import sys; from studies.cli import build_parser; build_parser(); "
            f"print([m for m in {HEAVY} if m in sys.modules])")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               check=True)
    assert completed.stdout.strip() == "[]"


def test_evaluate_offers_the_metric_engines_representation_kinds():
    from disent_core.metrics.representation import REPRESENTATION_KINDS
    from studies.cli.evaluate import REPRESENTATIONS

    assert REPRESENTATIONS == REPRESENTATION_KINDS
