"""Helpers shared by the study tests: tiny specs, the CLI in a subprocess, MLflow and Optuna reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from mlflow.tracking import MlflowClient

TINY = {
    "dataset": {"name": "dsprites_procedural"},
    "model": {"latent_dim": 4, "base_channels": 8},
    "train": {"steps": 20, "batch_size": 16, "report_every": 10},
    "evaluation": {"protocol": "fast", "metrics": ["mig"]},
    "objective": {"metric": "mig.discrete_mig", "mode": "max"},
    "resources": {"cpu": 1},
}


def write_spec(directory: Path, name: str, **sections: Any) -> Path:
    """A tiny spec file: ``TINY`` with ``sections`` replacing whole top-level sections."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **TINY, **sections}))
    return path


def run_cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "studies.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def nested_runs(root: Path, study: str) -> list:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(study)
    state = json.loads((root / study / "study.json").read_text())
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{state['parent_run_id']}'"
    )


def optuna_states(root: Path, study: str) -> dict[str, int]:
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{root / study / 'optuna.db'}")
    states: dict[str, int] = {}
    for trial in loaded.get_trials(deepcopy=False):
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    return states


def tracked_study(directory: Path, name: str) -> tuple[Any, str, MlflowClient, str, str]:
    """A tiny beta-VAE spec and an MLflow experiment with a parent run in a sqlite store, its artifacts
    under ``directory``, as a ``StudyTracker`` needs them.

    Returns:
        ``(spec, tracking URI, client, experiment id, parent run id)``.
    """
    from studies.spec import validate_spec

    spec = validate_spec({"name": name, **TINY, "methods": {"beta_vae": {"beta": 4}}})
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(name, artifact_location=(directory / "mlartifacts").as_uri())
    return spec, uri, client, experiment, client.create_run(experiment).info.run_id


def tune_results(study_dir: Path) -> dict[str, list[dict]]:
    """Every result line Tune wrote, per trial id."""
    out = {}
    for path in sorted((study_dir / "tune").glob("trial_*/result.json")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out[path.parent.name.removeprefix("trial_")] = lines
    return out


def wait_until(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"the study exited ({proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}"
            )
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def start_study(spec: Path, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "studies.cli", "run", str(spec), "--root", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def finished_and_running(study_dir: Path, steps: int) -> bool:
    """Whether Tune's results show one trial at ``steps`` and another started but short of it."""
    results = tune_results(study_dir) if (study_dir / "tune").exists() else {}
    finished = [t for t, lines in results.items() if lines and lines[-1]["step"] == steps]
    started = [t for t, lines in results.items() if lines and lines[-1]["step"] < steps]
    return len(finished) >= 1 and len(started) >= 1


def checkpointed_and_running(study_dir: Path, past: int, before: int) -> bool:
    """Whether Tune's one trial has reported a step of at least ``past`` and its last is below ``before``."""
    results = tune_results(study_dir) if (study_dir / "tune").exists() else {}
    lines = next(iter(results.values()), [])
    return any(r["step"] >= past for r in lines) and lines[-1]["step"] < before
