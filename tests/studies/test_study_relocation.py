"""A runs root copied elsewhere (``cp -r``, ``rsync``) is a study of its own: its commands read the
copy, never write into the original, and refuse to write MLflow artifacts outside the copy's root
unless told to."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from study_helpers import TINY, run_cli, write_spec

from studies.study_dir import ROOT_MARK, StudyState

pytestmark = pytest.mark.slow


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_copied_study_reads_its_copy_and_leaves_the_original_alone(tmp_path):
    spec = write_spec(tmp_path, "moving", train={**TINY["train"], "steps": 10, "report_every": 10},
                      methods={"beta_vae": {"beta": {"search": "grid", "values": [1.0, 4.0]}}},
                      seeds=[0], search={"algorithm": "grid", "max_concurrent": 2})
    original = tmp_path / "runs"
    done = run_cli("run", str(spec), "--root", str(original))
    assert done.returncode == 0, done.stderr[-3000:]

    recorded = json.loads((original / "moving" / "study.json").read_text())
    assert recorded["root"] == str(original)  # where it was created, for the record
    for key in ("tracking_uri", "optuna_storage", "tune_storage"):
        assert ROOT_MARK in recorded[key] and str(original) not in recorded[key], recorded

    copy = tmp_path / "elsewhere" / "runs"
    shutil.copytree(original, copy)
    before = tree_digest(original)
    state = StudyState.load(copy / "moving")
    assert state.root == str(copy) and state.created_under == str(original)
    assert state.tracking_uri == f"sqlite:///{copy / 'mlflow.db'}"
    assert state.optuna_storage == f"sqlite:///{copy / 'moving' / 'optuna.db'}"
    assert state.tune_path == str(copy / "moving" / "tune")

    status = run_cli("status", str(copy / "moving"))
    assert status.returncode == 0, status.stderr[-3000:]
    assert "2 finished" in status.stdout

    report = run_cli("report", str(copy / "moving"))
    assert report.returncode == 0, report.stderr[-3000:]
    assert (copy / "moving" / "report" / "report.html").is_file()
    assert "not logged" in report.stdout and "--allow-outside-root" in report.stdout
    assert len(pd.read_parquet(copy / "moving" / "report" / "results.parquet")) == 2

    resume = run_cli("resume", str(copy / "moving"))
    assert resume.returncode == 2
    assert "outside its runs root" in resume.stderr and "--allow-outside-root" in resume.stderr
    assert tree_digest(original) == before  # nothing of the original was written

    # the copy needs nothing of the original to be read
    shutil.rmtree(original)
    assert run_cli("status", str(copy / "moving")).returncode == 0
    again = run_cli("report", str(copy / "moving"), "--out", str(tmp_path / "report2"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "report2" / "report.html").is_file()


def test_a_study_json_of_absolute_paths_still_loads(tmp_path):
    """Study directories written before locations were relative to the root keep working."""
    directory = tmp_path / "runs" / "old"
    directory.mkdir(parents=True)
    data = {"name": "old", "root": str(tmp_path / "runs"), "tracking_uri": f"sqlite:///{tmp_path}/runs/mlflow.db",
            "experiment_id": "1", "parent_run_id": "abc", "optuna_storage": f"sqlite:///{directory}/optuna.db",
            "optuna_study": "old", "tune_storage": str(directory)}
    (directory / "study.json").write_text(json.dumps(data))
    state = StudyState.load(directory)
    assert (state.tracking_uri, state.tune_storage, state.created_under) == (
        data["tracking_uri"], data["tune_storage"], None)


def test_locations_outside_the_root_are_written_as_they_are(tmp_path):
    root = tmp_path / "runs"
    (root / "s").mkdir(parents=True)
    state = StudyState("s", str(root), "http://mlflow:5000", "1", "abc",
                       "postgresql+psycopg2://u@db/optuna", "s", "s3://bucket/checkpoints/s")
    state.save(root / "s")
    assert {k: v for k, v in json.loads((root / "s" / "study.json").read_text()).items()
            if k in ("tracking_uri", "optuna_storage", "tune_storage")} == {
        "tracking_uri": "http://mlflow:5000", "optuna_storage": "postgresql+psycopg2://u@db/optuna",
        "tune_storage": "s3://bucket/checkpoints/s"}
    assert StudyState.load(root / "s") == state
