"""A study survives its processes dying: a trial's worker, and the driver itself (then ``resume``)."""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from study_helpers import (
    TINY,
    checkpointed_and_running,
    finished_and_running,
    nested_runs,
    optuna_states,
    run_cli,
    start_study,
    tune_results,
    wait_until,
    write_spec,
)

pytestmark = pytest.mark.slow


def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    train = {**TINY["train"], "steps": 120, "report_every": 10, "checkpoint_every": 30}
    spec = write_spec(tmp_path, "killworker", train=train, methods={"beta_vae": {"beta": 4}},
                      search={"algorithm": "random", "num_trials": 1})
    root = tmp_path / "runs"
    proc = start_study(spec, root)
    study_dir = root / "killworker"

    wait_until(lambda: checkpointed_and_running(study_dir, 40, 100), 300,
               "the trial passed its first checkpoint", proc)
    worker_pid = next(iter(tune_results(study_dir).values()))[-1]["pid"]
    os.kill(worker_pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]

    # Tune's result.json is copied back from its storage when the trial restarts, so it may miss
    # the last lines the dead worker reported; it still tells where the second worker began
    (trial_id, lines), = tune_results(study_dir).items()
    steps = [r["step"] for r in lines]
    assert steps[-1] == 120
    restart = next(i for i in range(1, len(lines)) if lines[i]["pid"] != lines[i - 1]["pid"])
    resumed_from = steps[restart] - 10
    assert resumed_from % 30 == 0 and resumed_from >= 30, steps  # from a checkpoint, not from scratch
    assert lines[restart]["iterations_since_restore"] == 1
    assert len({r["pid"] for r in lines}) == 2
    table = pd.read_parquet(study_dir / "results.parquet")
    assert list(table["status"]) == ["completed"]
    runs = nested_runs(root, "killworker")
    assert [(r.data.tags["trial_id"], r.info.status) for r in runs] == [(trial_id, "FINISHED")]
    # the trial's one MLflow run holds every step once: none lost, and the steps after the
    # checkpoint it resumed from, trained again by the second worker, not logged twice
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    logged = [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss/loss")]
    assert sorted(logged) == list(range(10, 121, 10)), (logged, resumed_from)
    assert optuna_states(root, "killworker") == {"COMPLETE": 1}


def test_killed_driver_then_resume_accounts_for_every_trial_once(tmp_path):
    train = {**TINY["train"], "steps": 60, "report_every": 10, "checkpoint_every": 20}
    spec = write_spec(
        tmp_path, "killdriver", train=train,
        methods={"beta_vae": {"beta": {"search": "grid", "values": [1.0, 2.0, 4.0, 8.0]}}},
        search={"algorithm": "grid", "max_concurrent": 2},
    )
    root = tmp_path / "runs"
    proc = start_study(spec, root)
    study_dir = root / "killdriver"

    wait_until(lambda: finished_and_running(study_dir, 60), 300,
               "one trial finished and another started", proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    proc.wait(timeout=30)

    done = run_cli("resume", str(study_dir), timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]

    table = pd.read_parquet(study_dir / "results.parquet")
    assert len(table) == 4
    assert set(table["status"]) == {"completed"}
    assert sorted(table["train_config.method.beta"]) == [1.0, 2.0, 4.0, 8.0]
    tune_ids = set(table["trial_id"])

    runs = nested_runs(root, "killdriver")
    finished = [r.data.tags["trial_id"] for r in runs if r.info.status == "FINISHED"]
    assert sorted(finished) == sorted(tune_ids)  # each Tune trial has exactly one finished MLflow run
    assert all(r.info.status in ("FINISHED", "KILLED") for r in runs)
    assert all("lost" in r.data.tags["failure_reason"] or "stopped" in r.data.tags["failure_reason"]
               for r in runs if r.info.status == "KILLED")
    # the resumed driver logs the steps the restored trials train again only once
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for run in runs:
        if run.info.status == "FINISHED":
            logged = [m.step for m in client.get_metric_history(run.info.run_id, "loss/loss")]
            assert sorted(logged) == list(range(10, 61, 10)), logged

    states = optuna_states(root, "killdriver")
    assert states.get("RUNNING", 0) == 0
    assert states["COMPLETE"] == 4
