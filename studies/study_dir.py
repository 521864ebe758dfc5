"""A study directory: ``study.json`` (where every piece of a study's state lives) and ``spec.yaml``.

``disent-study run`` creates ``<root>/<study name>/`` with both files; ``resume``, ``status`` and
``report`` find the study's MLflow run, Optuna storage and Tune experiment through them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from disent_core.errors import DisentError
from studies.spec import StudySpec, validate_spec

TUNE_NAME = "tune"


@dataclass
class StudyState:
    """``study.json``: where every piece of a study's state lives."""

    name: str
    root: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    optuna_storage: str
    optuna_study: str
    tune_storage: str

    @property
    def tune_path(self) -> str:
        return f"{self.tune_storage.rstrip('/')}/{TUNE_NAME}"

    def save(self, directory: Path) -> None:
        tmp = directory / ".study.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(directory / "study.json")

    @classmethod
    def load(cls, directory: Path) -> StudyState:
        path = directory / "study.json"
        if not path.is_file():
            raise DisentError(f"{directory} is not a study directory (no study.json); give the directory "
                              "that `disent-study run` created, <root>/<study name>")
        return cls(**json.loads(path.read_text()))


def default_tracking_uri(root: Path) -> str:
    """The sqlite MLflow store of a runs root (the default tracking URI)."""
    return f"sqlite:///{root / 'mlflow.db'}"


def load_study_spec(directory: Path) -> StudySpec:
    """The validated spec a study directory recorded."""
    return validate_spec(yaml.safe_load((directory / "spec.yaml").read_text()), str(directory / "spec.yaml"))
