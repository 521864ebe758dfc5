"""Bad inputs through the installed ``disent-study`` command: each one is refused with a message
(``error: ...``, no traceback) and exit status 2, and leaves the directory it ran in exactly as it was:
no new file or folder, and a corrupt store keeps its bytes.

Every case runs in a subprocess (the venv's ``bin`` first on PATH) inside a fresh workspace holding
good and bad inputs; the workspace tree with every file's bytes is compared before and after.
Nothing here needs Ray to start: every refusal happens before it would.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from disent_core.config import load_config
from studies.spec import spec_yaml, validate_spec
from studies.study_dir import StudyState

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SPEC = {
    "name": "tiny",
    "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
    "model": {"latent_dim": 4, "base_channels": 8},
    "train": {"steps": 10, "batch_size": 8, "report_every": 5},
    "methods": {"beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 8}}},
    "seeds": [0],
    "evaluation": {"protocol": "fast", "metrics": ["reconstruction"]},
    "objective": {"metric": "reconstruction.reconstruction_error", "mode": "min"},
    "search": {"algorithm": "random", "num_trials": 1},
    "resources": {"cpu": 1},
}
CONFIG = {
    "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
    "method": {"name": "beta_vae", "beta": 4},
    "model": {"latent_dim": 4},
    "train": {"steps": 10, "batch_size": 8},
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlite_file(path: Path, table: str, rows: int = 2000) -> Path:
    """A whole SQLite database holding ``table`` with enough rows to span many pages."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, value TEXT)")
    connection.executemany(f"INSERT INTO {table} (value) VALUES (?)", [("x" * 100,)] * rows)
    connection.commit()
    connection.close()
    return path


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def study_dir(root: Path, name: str, optuna_db: bytes | None) -> Path:
    """A study directory as ``run`` leaves it: study.json, spec.yaml, MLflow and Optuna SQLite stores
    (``optuna_db`` replaces the Optuna store's bytes)."""
    directory = root / name
    directory.mkdir(parents=True)
    tracking = sqlite_file(root / "mlflow.db", "experiments")
    optuna = sqlite_file(directory / "optuna.db", "studies")
    if optuna_db is not None:
        optuna.write_bytes(optuna_db)
    (directory / "spec.yaml").write_text(spec_yaml(validate_spec({**SPEC, "name": name})))
    StudyState(name=name, root=str(root), tracking_uri=f"sqlite:///{tracking}", experiment_id="1",
               parent_run_id="0" * 32, optuna_storage=f"sqlite:///{optuna}", optuna_study=name,
               tune_storage=str(directory)).save(directory)
    return directory


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Good and bad inputs side by side, fresh for each case; the cases name them relative to it."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    (ws / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    (ws / "latin1-spec.yaml").write_bytes("name: caf\xe9\n".encode("latin-1") + yaml.safe_dump(SPEC).encode())
    (ws / "latin1-config.yaml").write_bytes(b"# r\xe9sum\xe9\n" + yaml.safe_dump(CONFIG).encode())
    (ws / "a-file").write_text("not a directory\n")
    (ws / "garbage-root").mkdir()
    (ws / "garbage-root" / "mlflow.db").write_bytes(b"this is not a database\n" * 50)
    truncate(sqlite_file(ws / "truncated-root" / "mlflow.db", "experiments"))
    study_dir(ws / "runs-garbage", "tiny", b"\x00garbage\x00" * 100)
    study_dir(ws / "runs-truncated", "tiny", truncate(sqlite_file(ws / "t.db", "studies")).read_bytes())
    (ws / "t.db").unlink()
    (study_dir(ws / "runs-bad-state", "tiny", None) / "study.json").write_text('{"name": "tiny", ')
    (study_dir(ws / "runs-bad-spec", "tiny", None) / "spec.yaml").write_bytes(b"name: [tiny\n\xff")
    config = load_config(CONFIG).model_dump(mode="json")
    torch.save({"format": 1, "config": json.dumps(config)}, ws / "keys.pt")
    state = {"format": 1, "config": json.dumps(config), "step": 5, "method": {"bogus": torch.zeros(2)},
             "optimizers": {}, "schedules": {}, "lr_schedule": None, "stream": {},
             "generator": torch.zeros(1)}
    torch.save(state, ws / "weights.pt")
    return ws


@dataclass(frozen=True)
class Case:
    args: list[str]
    says: str
    """Text that stderr must hold."""


UNREACHABLE = free_port()
CASES = {
    "corrupt mlflow.db": Case(["run", "spec.yaml", "--root", "garbage-root"], "is not an SQLite database"),
    "truncated mlflow.db": Case(["run", "spec.yaml", "--root", "truncated-root"], "is truncated"),
    "resume with a corrupt optuna.db": Case(["resume", "runs-garbage/tiny"], "is not an SQLite database"),
    "status with a truncated optuna.db": Case(["status", "runs-truncated/tiny"], "is truncated"),
    "report with a corrupt optuna.db": Case(["report", "runs-garbage/tiny"], "is not an SQLite database"),
    "status with a damaged study.json": Case(["status", "runs-bad-state/tiny"], "study.json is damaged"),
    "resume with a damaged spec.yaml": Case(["resume", "runs-bad-spec/tiny"], "spec.yaml is damaged"),
    "a spec that is not UTF-8": Case(["run", "latin1-spec.yaml", "--root", "runs"], "not UTF-8"),
    "a train config that is not UTF-8": Case(["train", "latin1-config.yaml"], "not UTF-8"),
    "an unclosed list in --set": Case(["run", "spec.yaml", "--root", "runs", "--set", "train.steps=[1, 2"],
                                      "not valid YAML"),
    "a checkpoint without the trainer's keys": Case(["evaluate", "keys.pt"], "it lacks step, method"),
    "a checkpoint whose weights do not fit": Case(["evaluate", "weights.pt"], "does not fit this model"),
    "a negative evaluation seed": Case(["evaluate", "weights.pt", "--seed", "-1"], "argument --seed"),
    "--root is a file": Case(["run", "spec.yaml", "--root", "a-file"], "is a file"),
    "train --out is a file": Case(["train", "config.yaml", "--out", "a-file"], "is a file"),
    "train --out under a file": Case(["train", "config.yaml", "--out", "a-file/run"], "lies under the file"),
    "an Optuna storage that is not a URL": Case(
        ["run", "spec.yaml", "--root", "runs", "--set", "storage.optuna=notaurl"], "not a database URL"),
    "an unreachable MLflow server": Case(
        ["run", "spec.yaml", "--root", "runs", "--set", f"tracking.mlflow_uri=http://127.0.0.1:{UNREACHABLE}"],
        f"cannot connect to 127.0.0.1:{UNREACHABLE}"),
    "an unreachable PostgreSQL": Case(
        ["run", "spec.yaml", "--root", "runs", "--set",
         f"storage.optuna=postgresql+psycopg2://u:secret@127.0.0.1:{UNREACHABLE}/optuna"],
        f"postgresql+psycopg2://u:***@127.0.0.1:{UNREACHABLE}/optuna: cannot connect"),
    "more CPUs per trial than the machine has": Case(
        ["run", "spec.yaml", "--root", "runs", "--set", f"resources.cpu={(os.cpu_count() or 1) + 1}"],
        f"but this machine (the embedded local Ray) has {os.cpu_count()}"),
    "an infinite search bound": Case(
        ["run", "spec.yaml", "--root", "runs", "--set",
         "methods.beta_vae.beta={search: log_float, low: 1, high: .inf}"], "must be a finite number"),
    "a dataset option of the wrong value": Case(
        ["run", "spec.yaml", "--root", "runs", "--set", "dataset.options.cache=bogus"],
        "dataset.options: cache: Input should be 'lazy' or 'packed'"),
    "a study name with '..'": Case(["run", "spec.yaml", "--root", "runs", "--set", "name=a..b"],
                                   "contains '..'"),
    "a batch that cannot fit in memory": Case(
        ["train", "config.yaml", "--out", "out", "--set", "train.batch_size=1000000"],
        "of host memory but"),
    "a model that cannot fit in memory": Case(
        ["train", "config.yaml", "--out", "out", "--set", "model.base_channels=100000"],
        "of host memory but"),
    "more threads than CPUs": Case(
        ["train", "config.yaml", "--out", "out", "--set", "train.threads=100000"],
        f"train.threads: must be <= {os.cpu_count()}"),
    "a huge seed and Adam betas outside [0, 1)": Case(
        ["train", "config.yaml", "--out", "out", "--set", f"train.seed={2**70}",
         "--set", "train.optimizer={betas: [0.9, .nan]}"],
        "train.optimizer.betas.1: must be a finite number"),
}


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_bad_input_is_one_message_exit_2_and_changes_nothing(workspace: Path, case: str) -> None:
    args, says = CASES[case].args, CASES[case].says
    before = tree(workspace)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "DISENT_DATA": str(workspace / "data"), "DISENT_RUNS_ROOT": str(workspace / "runs")}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(["disent-study", *args], cwd=workspace, env=env, capture_output=True, text=True,
                          timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    assert says in done.stderr, output
    assert done.stderr.startswith(("error: ", "usage: ")), output
    assert tree(workspace) == before, f"{case} changed the workspace"
