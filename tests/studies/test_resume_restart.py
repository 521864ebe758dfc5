"""``resume`` restarts what it can.

A trial whose checkpoint directory was deleted has no state to lose: ``resume`` starts it again from
step 0 and says so, instead of failing it for good. A trial that a stopped driver left with the
"study stopped before this trial finished" reason loses that tag once it runs again.
"""

from __future__ import annotations

import json
import shutil
import signal
from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from ray.tune.search.repeater import TRIAL_INDEX
from study_helpers import TINY, nested_runs, optuna_states, run_cli, tracked_study, write_spec
from test_study_reliability import start_study, tune_results, wait_until

from studies.orchestration.runner import STOPPED_BEFORE_END
from studies.orchestration.tracking import StudyTracker, close_open_runs

STEPS = 400


def test_a_run_that_runs_again_loses_the_reason_it_stopped(tmp_path):
    spec, uri, client, experiment, parent = tracked_study(tmp_path, "tags")
    trial = SimpleNamespace(trial_id="t1", config={"method": "beta_vae", TRIAL_INDEX: 0}, checkpoint=None)

    stopped = StudyTracker(spec, uri, experiment, parent)
    stopped.on_trial_start(0, [], trial)
    assert close_open_runs(client, experiment, parent, STOPPED_BEFORE_END) == 1  # what finalize does
    run_id = stopped.run_id(trial)
    assert client.get_run(run_id).data.tags["failure_reason"] == STOPPED_BEFORE_END

    resumed = StudyTracker(spec, uri, experiment, parent)
    resumed.on_trial_start(0, [], trial)
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"
    assert "failure_reason" not in run.data.tags
    resumed.on_trial_complete(0, [], trial)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "failure_reason" not in run.data.tags
    assert resumed.run_id(trial) == run_id


@pytest.mark.slow
def test_resume_restarts_a_trial_whose_checkpoint_is_gone(tmp_path):
    train = {**TINY["train"], "steps": STEPS, "report_every": 10, "checkpoint_every": 40}
    spec = write_spec(tmp_path, "restart", train=train, methods={"beta_vae": {"beta": 4}}, seeds=[0, 1],
                      search={"algorithm": "random", "num_trials": 1, "max_concurrent": 2})
    root = tmp_path / "runs"
    study_dir = root / "restart"
    proc = start_study(spec, root)

    def both_checkpointed() -> bool:
        results = tune_results(study_dir) if (study_dir / "tune").exists() else {}
        steps = [lines[-1]["step"] for lines in results.values() if lines]
        return len(steps) == 2 and all(80 <= s < STEPS - 100 for s in steps)

    wait_until(both_checkpointed, 300, "both trials passed a checkpoint", proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune stops, finalize marks the open runs KILLED
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]  # Ctrl-C: our one line, not Tune's Tuner.restore hint
    assert ("interrupted: the study stopped with 2 trial(s) unfinished; continue it with "
            f"`disent-study resume {study_dir}`") in err
    assert "Tuner.restore" not in out + err
    killed = nested_runs(root, "restart")
    assert {r.info.status for r in killed} == {"KILLED"}
    assert {r.data.tags["failure_reason"] for r in killed} == {STOPPED_BEFORE_END}

    gone = sorted(tune_results(study_dir))[0]
    checkpoints = sorted((study_dir / "tune" / f"trial_{gone}").glob("checkpoint_*"))
    assert checkpoints
    for path in checkpoints:
        shutil.rmtree(path)

    done = run_cli("resume", str(study_dir), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    seed = json.loads((study_dir / "tune" / f"trial_{gone}" / "params.json").read_text())[TRIAL_INDEX]
    assert f"trial {gone} (beta_vae, seed {seed}): its checkpoint" in done.stdout
    assert "restarted from scratch" in done.stdout
    assert "Error handling checkpoint" not in done.stderr  # Tune deletes its old checkpoints quietly

    table = pd.read_parquet(study_dir / "results.parquet")
    assert sorted(table["status"]) == ["completed", "completed"]
    assert optuna_states(root, "restart") == {"COMPLETE": 1}
    runs = nested_runs(root, "restart")
    assert sorted(r.data.tags["trial_id"] for r in runs) == sorted(table["trial_id"])
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert [r.data.tags.get("failure_reason") for r in runs] == [None, None]

    # the restarted trial trained from step 0 again, and its run holds every step once
    steps = [line["step"] for line in tune_results(study_dir)[gone]]
    restart = next(i for i in range(1, len(steps)) if steps[i] < steps[i - 1])
    assert steps[restart] == 10 and steps[-1] == STEPS, steps
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for run in runs:
        logged = [m.step for m in client.get_metric_history(run.info.run_id, "loss/loss")]
        assert sorted(logged) == list(range(10, STEPS + 1, 10)), logged
