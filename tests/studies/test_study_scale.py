"""The Locatello et al. 2019 study rehearsed at 100 trials: every trial accounted for exactly once.

Runs ``bench/study_scale.py``'s rehearsal (the catalog spec through the real ``disent-study run``,
shrunk by ``--set`` to 25 configurations x 4 seeds of 2-step trials, 2 at a time, on the embedded
sqlite stores), kills the driver's process group when half the trials are done, resumes it, times
``status`` and ``report``, and checks that Tune, Optuna and MLflow each hold every trial exactly
once with nothing left RUNNING. No timing is asserted: the bench prints those numbers. Also: how
``--trials`` picks a prefix of the grid, and how ``resume`` closes the runs of trials that a killed
driver started after Tune's last snapshot.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import study_scale
from ray.tune.search.repeater import TRIAL_INDEX
from study_helpers import tracked_study

from studies.orchestration.tracking import LOST_AFTER_SNAPSHOT, StudyTracker, close_lost_runs


def test_grid_prefix_is_configurations_times_seeds():
    assert study_scale.grid_shape(1800) == (36, 50)
    assert study_scale.grid_shape(300) == (30, 10)
    assert study_scale.grid_shape(100) == (25, 4)
    sets = study_scale.rehearsal_overrides("s", 100, 2)
    assert "seeds=[0, 1, 2, 3]" in sets and "search.num_trials=25" in sets
    assert "dataset.name=dsprites_procedural" in sets and "evaluation.protocol=fast" in sets
    assert not any(s.startswith("search.num_trials") for s in study_scale.rehearsal_overrides("s", 1800, 2))
    with pytest.raises(ValueError):
        study_scale.grid_shape(1801)


def test_resume_closes_the_runs_of_trials_tune_lost(tmp_path):
    spec, uri, client, experiment, parent = tracked_study(tmp_path, "lost")
    killed = StudyTracker(spec, uri, experiment, parent)  # the driver that is killed
    trials = [SimpleNamespace(trial_id=t, config={"method": "beta_vae", TRIAL_INDEX: 0}, checkpoint=None)
              for t in ("kept", "done_late", "started_late")]
    for trial in trials:
        killed.on_trial_start(0, [], trial)
    killed.on_trial_complete(0, [], trials[1])  # finished after the snapshot: Tune will not know it

    assert close_lost_runs(client, experiment, parent, known={"kept"}) == 2
    assert close_lost_runs(client, experiment, parent, known={"kept"}) == 0  # once
    runs = {t.trial_id: client.get_run(killed.run_id(t)) for t in trials}
    assert runs["kept"].info.status == "RUNNING" and "failure_reason" not in runs["kept"].data.tags
    for lost in ("done_late", "started_late"):
        assert runs[lost].info.status == "KILLED"
        assert runs[lost].data.tags["failure_reason"] == LOST_AFTER_SNAPSHOT

    resumed = StudyTracker(spec, uri, experiment, parent)  # finds the kept trial's run, listed once
    resumed.on_trial_start(0, [], trials[0])
    assert resumed.run_id(trials[0]) == runs["kept"].info.run_id
    assert len(client.search_runs([experiment])) == 4  # the parent and the three trials: none doubled


@pytest.mark.slow
def test_100_trial_rehearsal_accounts_for_every_trial_once(tmp_path):
    started = time.monotonic()
    rehearsal = study_scale.rehearse(100, "sqlite", tmp_path, slots=2, kill_at=0.5, timeout_s=900,
                                     capacity_s=1.0)
    study_scale.print_rehearsal(rehearsal, cluster_steps_per_s=100.0)
    print(f"rehearsal of 100 trials: {time.monotonic() - started:.0f} s")
    assert rehearsal.resume is not None, "the driver was not killed half-way"
    assert 50 <= len(rehearsal.run.ended_trials) < 100
    assert not rehearsal.left_after_kill, f"processes of the killed driver left: {rehearsal.left_after_kill}"
    accounting = rehearsal.accounting
    assert accounting.mlflow_status.get("RUNNING", 0) == 0
    assert accounting.optuna_states.get("RUNNING", 0) == 0
    assert accounting.problems() == [], "\n".join(accounting.problems())
    assert rehearsal.capacity_rows_per_s > 0  # the store took the probe's reports
