"""``disent-study run | resume | status | ui``: run studies and look at them.

``run`` validates the spec (every problem on its own line, exit status 2), then runs it under a
runs root (default ``./runs``): embedded Ray, Optuna sqlite in the study directory and MLflow
sqlite plus artifacts in the root, unless the spec names a cluster's storage and tracking URLs.
``status`` prints a table of the study's trials from MLflow, with Optuna's count beside it.
``ui`` starts MLflow's UI for a runs root on 127.0.0.1 and prints its URL.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient

from disent_core.errors import DisentError
from studies.orchestration.runner import resume_study, run_study
from studies.results import TRIAL_TAG, nested_runs
from studies.spec import load_spec
from studies.spec.overrides import parse_set
from studies.study_dir import StudyState, default_tracking_uri, load_study_spec


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``run``, ``resume``, ``status`` and ``ui``."""
    address_help = "Ray cluster address (default: $RAY_ADDRESS if set, else an embedded local Ray)"
    default_root = Path(os.environ.get("DISENT_RUNS_ROOT", "runs"))
    root_help = "runs root (default: $DISENT_RUNS_ROOT, else ./runs)"
    run_parser = subparsers.add_parser(
        "run", help="run a study spec: Optuna search in Ray Tune, tracked in MLflow"
    )
    run_parser.add_argument("spec", type=Path, help="study spec YAML (see studies/catalog/)")
    run_parser.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a spec field, e.g. --set train.steps=2000 (repeatable)")
    run_parser.add_argument("--root", type=Path, default=default_root, help=root_help)
    run_parser.add_argument("--address", default=None, help=address_help)
    run_parser.set_defaults(handler=lambda args: run(args.spec, parse_set(args.set), args.root, args.address))
    resume_parser = subparsers.add_parser("resume", help="continue a study after a crash or interruption")
    resume_parser.add_argument("study_dir", type=Path, help="the study directory, <root>/<study name>")
    resume_parser.add_argument("--address", default=None, help=address_help)
    resume_parser.set_defaults(handler=lambda args: resume(args.study_dir, args.address))
    status_parser = subparsers.add_parser("status", help="a table of a study's trials")
    status_parser.add_argument("study_dir", type=Path, help="the study directory, <root>/<study name>")
    status_parser.set_defaults(handler=lambda args: status(args.study_dir))
    ui_parser = subparsers.add_parser("ui", help="start MLflow's UI for a runs root on 127.0.0.1")
    ui_parser.add_argument("--root", type=Path, default=default_root, help=root_help)
    ui_parser.add_argument("--port", type=int, default=5000)
    ui_parser.set_defaults(handler=lambda args: ui(args.root, args.port))


def run(spec_path: Path, overrides: list[tuple[list[str], Any]], root: Path, address: str | None) -> int:
    """Validate a spec (with ``--set`` overrides) and run its study under ``root``."""
    spec = load_spec(spec_path, overrides)
    print(f"study {spec.name}: {', '.join(spec.methods)} on {spec.dataset.name}, seeds {spec.seeds}, "
          f"{spec.search.algorithm} search, objective "
          + ", ".join(f"{o.mode} {o.metric}" for o in spec.objectives), flush=True)
    run_study(spec, root, address)
    return 0


def resume(directory: Path, address: str | None) -> int:
    print(f"resuming {directory}", flush=True)
    resume_study(directory, address)
    return 0


def trial_rows(state: StudyState) -> list[dict[str, str]]:
    """One row per trial run in MLflow: id, method, seed, status, objective-ish scores."""
    runs = nested_runs(MlflowClient(state.tracking_uri), state.experiment_id, state.parent_run_id)
    rows = []
    for r in runs:
        rows.append({
            "trial": r.data.tags.get(TRIAL_TAG, "?"),
            "method": r.data.tags.get("method", "?"),
            "seed": r.data.tags.get("seed", "?"),
            "status": r.info.status,
            "step": f"{int(r.data.metrics['step'])}" if "step" in r.data.metrics else "",
            "scores": r.data.metrics,
            "reason": r.data.tags.get("failure_reason", ""),
        })
    return rows


def status(directory: Path) -> int:
    directory = directory.expanduser().resolve()
    state = StudyState.load(directory)
    spec = load_study_spec(directory)
    keys = [o.metric for o in spec.objectives]
    rows = trial_rows(state)
    print(f"study {state.name} ({directory})")
    header = f"{'trial':<12} {'method':<14} {'seed':>4} {'status':<9} " + " ".join(f"{k:>22}" for k in keys)
    print(header)
    for row in rows:
        scores = " ".join(f"{row['scores'].get(k, float('nan')):>22.4f}" for k in keys)
        line = f"{row['trial']:<12} {row['method']:<14} {row['seed']:>4} {row['status']:<9} {scores}"
        print(line + (f"  {row['reason']}" if row["reason"] else ""))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print("mlflow runs: " + (", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())) or "none"))
    study = optuna.load_study(study_name=state.optuna_study, storage=state.optuna_storage)
    states: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    print("optuna trials (one per configuration): "
          + (", ".join(f"{v} {k.lower()}" for k, v in sorted(states.items())) or "none"))
    return 0


def ui(root: Path, port: int, host: str = "127.0.0.1") -> int:
    root = root.expanduser().resolve()
    if not (root / "mlflow.db").is_file():
        raise DisentError(
            f"no MLflow store at {root / 'mlflow.db'}; give the --root that `disent-study run` used"
        )
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", default_tracking_uri(root),
        "--default-artifact-root", (root / "mlartifacts").as_uri(),
        "--host", host, "--port", str(port), "--workers", "1",
    ]
    print(f"MLflow UI for {root}: http://{host}:{port}  (Ctrl-C stops it)", flush=True)
    return subprocess.call(command, env=env)
