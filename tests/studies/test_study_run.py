"""End-to-end studies through the real command line: Ray Tune, Optuna storage and MLflow.

Each test runs ``disent-study run`` in a subprocess (an embedded Ray per run, as a user gets it) on
tiny trials, then reads what Tune, Optuna and MLflow hold.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from study_helpers import TINY, nested_runs, optuna_states, run_cli, write_spec

pytestmark = pytest.mark.slow

def test_study_tracks_every_trial_and_records_divergence(tmp_path):
    spec = write_spec(
        tmp_path, "diverging",
        train={**TINY["train"], "optimizer": {"lr": {"search": "grid", "values": [0.001, 1000.0]}}},
        methods={"beta_vae": {"beta": 4}},
        seeds=[0, 1],
        search={"algorithm": "grid", "max_concurrent": 2},
    )
    root = tmp_path / "runs"
    done = run_cli("run", str(spec), "--root", str(root))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best trial: beta_vae" in done.stdout
    assert "disent-study ui --root" in done.stdout
    assert "http://127.0.0.1:5000/#/experiments/" in done.stdout  # the runs table, not the GenAI view

    table = pd.read_parquet(root / "diverging" / "results.parquet")
    assert len(table) == 4
    assert sorted(table["seed"]) == [0, 0, 1, 1]
    failed = table[table["status"] == "failed"]
    assert len(failed) == 2
    assert set(failed["train_config.train.optimizer.lr"]) == {1000.0}
    assert all("diverged at step" in e for e in failed["error"])
    good = table[table["status"] == "completed"]
    assert good["evaluation_results.mig.discrete_mig"].between(0, 1).all()
    assert (good["dataset_provenance"] == "procedural").all()
    assert (table["method_provenance"] == "reimplementation").all()
    assert (good["step"] == 20).all()

    # one Optuna trial per configuration: the diverging one failed, nothing left running
    assert optuna_states(root, "diverging") == {"COMPLETE": 1, "FAIL": 1}

    runs = nested_runs(root, "diverging")
    assert len(runs) == 4
    assert len({r.data.tags["trial_id"] for r in runs}) == 4
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for run in runs:
        tags = run.data.tags
        for key in ("study", "method", "dataset", "seed", "trial_id", "protocol_hash", "project_version",
                    "git_commit"):
            assert tags.get(key), key
        assert run.data.params["method.name"] == "beta_vae"
        assert tags["method_provenance"] == "reimplementation"
        assert tags["mlflow.source.git.commit"] == tags["git_commit"]  # MLflow's Version column
        lr = tags["search.train.optimizer.lr"]  # the searched value, apart from the fixed params
        assert lr in ("0.001", "1000.0") and f"train.optimizer.lr={lr}" in tags["mlflow.note.content"]
        if run.info.status == "FAILED":
            assert "diverged at step" in tags["failure_reason"]
            continue
        assert run.data.params["train.optimizer.lr"] == "0.001"
        assert tags["dataset_provenance"] == "procedural"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss/recon")] == [10, 20]
        assert len(client.get_metric_history(run.info.run_id, "kl/3")) == 2
        assert "schedule/beta" in run.data.metrics
        assert "mig.discrete_mig" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "final")}
        assert {"final/checkpoint.pt", "final/latent_traversals.png", "final/reconstructions.png",
                "final/kl_per_dim.png", "final/config.yaml", "final/scores.json"} <= artifacts

    state = json.loads((root / "diverging" / "study.json").read_text())
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"spec.yaml", "results.parquet"}
    # the parent shows the study: its spec's values, a description, the best trial
    assert parent.data.params["train.steps"] == "20"
    assert parent.data.params["train.optimizer.lr.values"] == "[0.001, 1000.0]"
    assert parent.data.tags["mlflow.note.content"]
    best = good.loc[good["evaluation_results.mig.discrete_mig"].idxmax()]
    assert parent.data.metrics["best.mig.discrete_mig"] == best["evaluation_results.mig.discrete_mig"]
    assert parent.data.tags["best.mig.discrete_mig.trial_id"] == best["trial_id"]
    assert parent.data.tags["best.search.train.optimizer.lr"] == "0.001"

    status = run_cli("status", str(root / "diverging"))
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("beta_vae") == 4
    assert "2 failed, 2 finished" in status.stdout

    again = run_cli("run", str(spec), "--root", str(root))
    assert again.returncode == 2
    assert "already exists" in again.stderr and "Traceback" not in again.stderr


def test_two_studies_sharing_a_root_do_not_interfere(tmp_path):
    """Two studies at once on one fresh root; one stopped early by ASHA, one multi-objective."""
    root = tmp_path / "runs"
    space = {"beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 8}}}
    search = {"algorithm": "random", "num_trials": 2, "max_concurrent": 1}
    specs = [
        write_spec(tmp_path, "first", methods=space, search=search,
                   evaluation={"protocol": "fast", "metrics": ["mig"], "every": 10},
                   scheduler={"type": "asha", "grace_period": 10}),
        write_spec(tmp_path, "second", methods=space, search={**search, "algorithm": "tpe"},
                   evaluation={"protocol": "fast", "metrics": ["mig", "reconstruction"]},
                   objective=[{"metric": "mig.discrete_mig", "mode": "max"},
                              {"metric": "reconstruction.reconstruction_error", "mode": "min"}]),
    ]
    procs = [
        subprocess.Popen([sys.executable, "-m", "studies.cli", "run", str(s), "--root", str(root)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for s in specs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=500)
        assert proc.returncode == 0, err[-3000:]
    for name in ("first", "second"):
        runs = nested_runs(root, name)
        assert len(runs) == 2
        assert {r.data.tags["study"] for r in runs} == {name}
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert optuna_states(root, name) == {"COMPLETE": 2}
        assert len(pd.read_parquet(root / name / "results.parquet")) == 2
    second = optuna.load_study(study_name="second", storage=f"sqlite:///{root / 'second' / 'optuna.db'}")
    assert all(len(t.values) == 2 for t in second.trials)
    assert len(second.best_trials) >= 1


def test_ui_serves_mlflow_for_a_runs_root(tmp_path):
    from studies.orchestration.tracking import prepare_store
    from studies.study_dir import StudyState

    root = tmp_path / "runs"
    prepare_store(f"sqlite:///{root / 'mlflow.db'}")
    (root / "mine").mkdir()
    StudyState("mine", str(root), f"sqlite:///{root / 'mlflow.db'}", "7", "0" * 32,
               f"sqlite:///{root / 'mine' / 'optuna.db'}", "mine", str(root / "mine")).save(root / "mine")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "studies.cli", "ui", "--root", str(root), "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert f"http://127.0.0.1:{port}" in proc.stdout.readline()
        # each study's runs table, not the experiment's default (GenAI) view
        assert f"study mine: http://127.0.0.1:{port}/#/experiments/7/runs" in proc.stdout.readline()
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, "the UI exited"
                assert time.monotonic() < deadline, "the UI did not come up within 120 s"
                time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_ui_without_a_store_says_which_root(tmp_path, capsys):
    from studies.cli import main

    assert main(["ui", "--root", str(tmp_path / "nowhere")]) == 2
    assert "no MLflow store" in capsys.readouterr().err
