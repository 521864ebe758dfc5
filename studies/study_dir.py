"""A study directory: ``study.json`` (where every piece of a study's state lives) and ``spec.yaml``.

``disent-study run`` creates ``<root>/<study name>/`` with both files; ``resume``, ``status`` and
``report`` find the study's MLflow run, Optuna storage and Tune experiment through them. The
directory also holds ``study.lock``, which the one driver of the study (``run`` or ``resume``)
holds (``studies/orchestration/lock.py``); readers do not take it.
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
        """Write ``study.json`` atomically (a temporary file replaced into place).

        Args:
            directory: the study directory.
        """
        tmp = directory / ".study.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(directory / "study.json")

    @classmethod
    def load(cls, directory: Path) -> StudyState:
        """Read a study directory's ``study.json``.

        Args:
            directory: the study directory, ``<root>/<study name>``.

        Returns:
            The study's state.

        Raises:
            DisentError: the directory has no ``study.json``, or it is not the JSON that ``run``
                wrote (corrupt, truncated or edited).
        """
        path = directory / "study.json"
        if not path.is_file():
            raise DisentError(f"{directory} is not a study directory (no study.json); give the directory "
                              "that `disent-study run` created, <root>/<study name>")
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise DisentError(
                f"{path} is damaged ({type(exc).__name__}: {exc}); it is not the study state that "
                "`disent-study run` wrote. Restore it from a backup, or start the study again under a "
                "new name (--set name=...)"
            ) from None


def default_tracking_uri(root: Path) -> str:
    """The sqlite MLflow store of a runs root (the default tracking URI).

    Args:
        root: the runs root.

    Returns:
        ``sqlite:///<root>/mlflow.db``.
    """
    return f"sqlite:///{root / 'mlflow.db'}"


def load_study_spec(directory: Path) -> StudySpec:
    """The validated spec a study directory recorded.

    Args:
        directory: the study directory.

    Returns:
        The spec of ``spec.yaml``.

    Raises:
        DisentError: ``spec.yaml`` is missing, not UTF-8 YAML, or not a valid spec.
    """
    path = directory / "spec.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DisentError(f"{directory} has no spec.yaml; give the directory that `disent-study run` "
                          "created, <root>/<study name>") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DisentError(f"{path} is damaged ({type(exc).__name__}); restore the spec the study ran "
                          "with, or start it again under a new name") from None
    return validate_spec(data, str(path))
