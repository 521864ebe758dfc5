"""A study directory: ``study.json`` (where every piece of a study's state lives) and ``spec.yaml``.

``disent-study run`` creates ``<root>/<study name>/`` with both files; ``resume``, ``status`` and
``report`` find the study's MLflow run, Optuna storage and Tune experiment through them. The
directory also holds ``study.lock``, which the one driver of the study (``run`` or ``resume``)
holds (``studies/orchestration/lock.py``); readers do not take it.

A runs root can be copied or moved (``cp -r``, ``rsync``) and used where it lands: ``study.json``
writes every location inside the runs root relative to it, as ``{root}/...`` (the MLflow and Optuna
SQLite stores, Tune's experiment), and ``load`` puts the directory's parent in its place. Servers
and shared storage (a tracking or PostgreSQL URL, ``storage.checkpoints``) are written as they are.
``study.json`` also keeps the absolute root the study was created under (``root``); a copy knows
it as ``created_under``. MLflow itself records absolute artifact locations, so a copied study's
runs still name the original's artifact folder: the commands that would write there refuse to
unless told (``studies/cli/checks.py``, ``check_artifacts_inside``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from disent_core.errors import DisentError
from studies.spec import StudySpec, validate_spec

TUNE_NAME = "tune"
ROOT_MARK = "{root}"
"""Stands for the runs root in the locations ``study.json`` writes."""
_LOCATIONS = ("tracking_uri", "optuna_storage", "tune_storage")
_URI_PREFIXES = ("sqlite:///", "")


def portable(location: str, root: str) -> str:
    """``location`` with the runs root written as ``{root}`` when it lies inside it.

    Args:
        location: a path or SQLite URL (``sqlite:////abs/runs/mlflow.db``), or any other URI.
        root: the absolute runs root.

    Returns:
        ``sqlite:///{root}/mlflow.db``, ``{root}/name``, ...; anything outside the root as it is.
    """
    root = root.rstrip("/")
    for prefix in _URI_PREFIXES:
        head = prefix + root
        if location == head or location.startswith(head + "/"):
            return prefix + ROOT_MARK + location[len(head):]
    return location


def located(location: str, root: str) -> str:
    """The inverse of ``portable``: ``{root}`` at the start of the path replaced by ``root``.

    Args:
        location: a location as ``study.json`` holds it.
        root: the absolute runs root it is read under.

    Returns:
        The absolute location.
    """
    for prefix in _URI_PREFIXES:
        head = prefix + ROOT_MARK
        if location == head or location.startswith(head + "/"):
            return prefix + root.rstrip("/") + location[len(head):]
    return location


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
    created_under: str | None = field(default=None, compare=False)
    """The root the study was created under, when it is not ``root`` (a copied or moved study)."""

    @property
    def tune_path(self) -> str:
        return f"{self.tune_storage.rstrip('/')}/{TUNE_NAME}"

    def save(self, directory: Path) -> None:
        """Write ``study.json`` atomically (a temporary file replaced into place).

        Args:
            directory: the study directory.
        """
        data = asdict(self)
        data.pop("created_under")
        data["root"] = self.created_under or self.root
        for key in _LOCATIONS:
            data[key] = portable(data[key], self.root)
        tmp = directory / ".study.json.tmp"
        tmp.write_text(json.dumps(data, indent=2))
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
            data = json.loads(path.read_text(encoding="utf-8"))
            state = cls(**data)
        except (ValueError, TypeError) as exc:
            raise DisentError(
                f"{path} is damaged ({type(exc).__name__}: {exc}); it is not the study state that "
                "`disent-study run` wrote. Restore it from a backup, or start the study again under a "
                "new name (--set name=...)"
            ) from None
        if any(str(getattr(state, key)).startswith(prefix + ROOT_MARK)
               for key in _LOCATIONS for prefix in _URI_PREFIXES):
            root = str(directory.expanduser().resolve().parent)
            if state.root != root:
                state.created_under = state.root
            state.root = root
            for key in _LOCATIONS:
                setattr(state, key, located(getattr(state, key), root))
        return state


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
        The spec of ``spec.yaml`` (``resources.population`` 1 where it records none).

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
    if isinstance(data, dict) and isinstance(data.get("resources"), dict):
        # a study recorded before resources.population existed ran one member per Tune trial
        data["resources"].setdefault("population", 1)
    return validate_spec(data, str(path))
