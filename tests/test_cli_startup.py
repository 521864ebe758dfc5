"""Building ``disent-study``'s parser imports none of the heavy frameworks.

``--help``, ``--version`` and every command's ``--help`` run in a fresh interpreter, which then must
not hold PyTorch, Ray, MLflow, Optuna, scikit-learn or pandas (``bench/cli_startup.py`` times it).
The commands that run one model in their own process (``train``, ``evaluate``, ``ifp``) import none
of Ray, Optuna and MLflow while they run, either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HEAVY = ("torch", "ray", "mlflow", "optuna", "sklearn", "pandas")
ORCHESTRATION = ("ray", "optuna", "mlflow")
"""What a study needs and a command that runs one model in its own process does not."""
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


def test_train_evaluate_and_ifp_run_without_the_study_frameworks(tmp_path: Path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
        "method": {"name": "beta_vae", "beta": 4},
        "model": {"latent_dim": 2, "base_channels": 8},
        "train": {"steps": 2, "batch_size": 8, "report_every": 1, "prefetch": 0},
    }))
    out = tmp_path / "run"
    commands = [
        ["train", str(config), "--out", str(out)],
        ["evaluate", str(out), "--protocol", "fast", "--metrics", "mig"],
        ["ifp", "--dataset", "dsprites_procedural", "--option", "sizes=[3,2,4,4,4]", "--factors", "shape",
         "--steps", "4", "--seeds", "1", "--batch-size", "4", "--threads", "1",
         "--out", str(tmp_path / "ifp")],
    ]
    code = ("import json, sys\n"
            "from studies.cli import main\n"
            f"codes = [main(argv) for argv in {commands!r}]\n"
            f"print(json.dumps([codes, sorted(m for m in {ORCHESTRATION} if m in sys.modules)]))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    codes, imported = json.loads(completed.stdout.splitlines()[-1])
    assert codes == [0, 0, 0]
    assert imported == []
    assert (out / "checkpoint.pt").is_file() and (out / "evaluation_fast_seed0.json").is_file()
