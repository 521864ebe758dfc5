"""Population trials in the driver's callbacks: each member its own MLflow run, line and count.

A population trial (``resources.population`` above 1) trains several members, each one configuration
with one seed; ``StudyTracker`` gives each its own nested run (its own metrics, tags and final files),
closes a member that diverged as FAILED with its reason while the others go on, and ``Progress``
prints and counts members. The trials here are small stand-ins for Tune's (the attributes the
callbacks read), tracked into a sqlite MLflow store in a temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.search.repeater import TRIAL_INDEX
from study_helpers import TINY

from studies.cli.study import status_table
from studies.orchestration.members import MEMBERS, POPULATION_CONFIG
from studies.orchestration.progress import Progress, member_states
from studies.orchestration.tracking import FAILURE_REASON, NOTE_TAG, StudyTracker
from studies.report.results import trial_row
from studies.results import DIVERGED, EVALUATED, FAILURE, POPULATION, STEP, TRIAL_TAG, nested_runs
from studies.spec import validate_spec

OBJECTIVE = "mig.discrete_mig"
REASON = "Diverged: training diverged at step 20: loss term 'recon' is nan"
MEMBER_CONFIGS = [
    {"method": "beta_vae", "beta_vae.beta": 2.0, TRIAL_INDEX: 0},
    {"method": "beta_vae", "beta_vae.beta": 2.0, TRIAL_INDEX: 1},
    {"method": "beta_vae", "beta_vae.beta": 5.0, TRIAL_INDEX: 0},
]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One sqlite MLflow store for the module's tests (creating its schema takes about a second)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments(max_results=1)
    return uri


@pytest.fixture
def study(store, tmp_path, request) -> SimpleNamespace:
    """A searched beta-VAE spec with two seeds, an experiment with the study's parent run, a tracker."""
    spec = validate_spec({"name": "pop", **TINY, "seeds": [0, 1],
                          "methods": {"beta_vae": {"beta": {"search": "float", "low": 1, "high": 8}}},
                          "search": {"algorithm": "random", "num_trials": 2}})
    client = MlflowClient(store)
    experiment = client.create_experiment(request.node.name,
                                          artifact_location=(tmp_path / "mlartifacts").as_uri())
    parent = client.create_run(experiment).info.run_id
    return SimpleNamespace(spec=spec, uri=store, client=client, experiment=experiment, parent=parent,
                           tracker=StudyTracker(spec, store, experiment, parent))


def report(step: int, members: dict[str, dict[str, Any]], best: float = 0.0) -> dict[str, Any]:
    """A population's Tune result: the keys Tune needs at the top level, each member's own under it."""
    return {STEP: step, EVALUATED: int(any(m.get(EVALUATED) for m in members.values())), OBJECTIVE: best,
            "time_total_s": 7.0, MEMBERS: members}


def healthy(step: int, recon: float, score: float | None = None) -> dict[str, Any]:
    own: dict[str, Any] = {STEP: step, "loss/recon": recon, "images_per_sec": 100.0 + step,
                           "dataset_provenance": "procedural", EVALUATED: int(score is not None)}
    if score is not None:
        own[OBJECTIVE] = score
    return own


def diverged(recon: float) -> dict[str, Any]:
    """Member 1's report from its divergence at step 20 on: its last values, ``diverged`` and why."""
    return {STEP: 20, "loss/recon": recon, "images_per_sec": 50.0, EVALUATED: 0, DIVERGED: 1,
            FAILURE: REASON}


REPORTS = [
    report(10, {"0": healthy(10, 0.5), "1": healthy(10, 0.6), "2": healthy(10, 0.7)}),
    report(20, {"0": healthy(20, 0.4), "1": diverged(9.0), "2": healthy(20, 0.65)}),
    report(30, {"0": healthy(30, 0.3, 0.31), "1": diverged(9.0), "2": healthy(30, 0.6, 0.83)}, best=0.83),
]


def population_trial(tmp_path: Path, status: str = "TERMINATED", last: dict | None = None) -> SimpleNamespace:
    """Tune trial ``p1`` of the three members, its final checkpoint holding each member's files."""
    final = tmp_path / "checkpoint_final"
    for index in (0, 2):
        files = final / "members" / str(index)
        (files / "figures").mkdir(parents=True, exist_ok=True)
        (files / "scores.json").write_text(f'{{"member": {index}}}')
        (files / "figures" / "traversal.png").write_bytes(b"png")
    (final / "members" / "1").mkdir(parents=True, exist_ok=True)
    (final / "members" / "1" / "diverged.json").write_text("{}")
    return SimpleNamespace(trial_id="p1", config={POPULATION_CONFIG: MEMBER_CONFIGS}, status=status,
                           last_result=REPORTS[-1] if last is None else last, error_file=None,
                           error_msg="RuntimeError: the node died\n",
                           checkpoint=tune.Checkpoint.from_directory(str(final)))


def runs_by_member(study: SimpleNamespace) -> dict[str, Any]:
    runs = nested_runs(study.client, study.experiment, study.parent)
    return {run.data.tags[TRIAL_TAG]: run for run in runs}


def history(study: SimpleNamespace, run: Any, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in study.client.get_metric_history(run.info.run_id, key))


def test_each_member_gets_its_own_run_and_a_diverged_one_fails_while_the_others_finish(study, tmp_path):
    trial = population_trial(tmp_path, last={})
    study.tracker.on_trial_start(0, [], trial)
    for result in REPORTS[:2]:
        study.tracker.on_trial_result(0, [], trial, result)

    runs = runs_by_member(study)
    assert sorted(runs) == ["p1-0", "p1-1", "p1-2"]
    failed = runs["p1-1"]  # closed as soon as its report said so, the population going on
    assert failed.info.status == "FAILED" and failed.data.tags[FAILURE_REASON] == REASON
    assert history(study, failed, DIVERGED) == [(20, 1.0)]
    assert runs["p1-0"].info.status == runs["p1-2"].info.status == "RUNNING"

    study.tracker.on_trial_result(0, [], trial, REPORTS[2])
    trial.last_result = REPORTS[2]
    study.tracker.on_trial_complete(0, [], trial)

    runs = runs_by_member(study)
    assert {m: r.info.status for m, r in runs.items()} == {"p1-0": "FINISHED", "p1-1": "FAILED",
                                                           "p1-2": "FINISHED"}
    for member, seed, beta in (("p1-0", "0", "2.0"), ("p1-1", "1", "2.0"), ("p1-2", "0", "5.0")):
        run = runs[member]
        tags = run.data.tags
        assert run.info.run_name == f"beta_vae-{member}"
        assert (tags[POPULATION], tags["seed"], tags["search.beta_vae.beta"]) == ("p1", seed, beta)
        assert f"trial {member} (member {member[-1]} of population p1)" in tags[NOTE_TAG]
        assert tags["dataset_provenance"] == "procedural"
        assert run.data.params["method.beta"] == beta
    # each member's own series, each step once; the diverged member's repeated report is not logged
    assert history(study, runs["p1-0"], "loss/recon") == [(10, 0.5), (20, 0.4), (30, 0.3)]
    assert history(study, runs["p1-2"], "loss/recon") == [(10, 0.7), (20, 0.65), (30, 0.6)]
    assert history(study, runs["p1-1"], "loss/recon") == [(10, 0.6), (20, 9.0)]
    # its own objective, not the population's best
    assert runs["p1-0"].data.metrics[OBJECTIVE] == pytest.approx(0.31)
    assert runs["p1-2"].data.metrics[OBJECTIVE] == pytest.approx(0.83)
    assert OBJECTIVE not in runs["p1-1"].data.metrics
    assert FAILURE_REASON not in runs["p1-0"].data.tags and runs["p1-1"].data.tags[FAILURE_REASON] == REASON

    def artifacts(member: str, path: str = "final") -> list[str]:
        return sorted(a.path for a in study.client.list_artifacts(runs[member].info.run_id, path))

    for member in ("p1-0", "p1-2"):
        assert artifacts(member) == ["final/figures", "final/scores.json"]
        assert artifacts(member, "final/figures") == ["final/figures/traversal.png"]
    scores = study.client.download_artifacts(runs["p1-2"].info.run_id, "final/scores.json", str(tmp_path))
    assert Path(scores).read_text() == '{"member": 2}'
    assert artifacts("p1-1") == []


def test_a_resumed_driver_finds_each_members_run_and_keeps_the_diverged_one_failed(study, tmp_path):
    trial = population_trial(tmp_path, last={})
    study.tracker.on_trial_start(0, [], trial)
    for result in REPORTS:
        study.tracker.on_trial_result(0, [], trial, result)
    before = {m: r.info.run_id for m, r in runs_by_member(study).items()}

    resumed = StudyTracker(study.spec, study.uri, study.experiment, study.parent)
    trial.last_result = REPORTS[2]  # what Tune restores the trial with
    resumed.on_trial_start(0, [], trial)
    resumed.on_trial_result(0, [], trial, REPORTS[2])  # trained again from an earlier checkpoint
    resumed.on_trial_result(0, [], trial, report(30, {"0": healthy(30, 0.3)}))  # no entry for 1 or 2

    runs = runs_by_member(study)
    assert {m: r.info.run_id for m, r in runs.items()} == before  # no run doubled
    assert runs["p1-1"].info.status == "FAILED" and runs["p1-1"].data.tags[FAILURE_REASON] == REASON
    assert runs["p1-0"].info.status == "RUNNING"
    assert history(study, runs["p1-0"], "loss/recon") == [(10, 0.5), (20, 0.4), (30, 0.3)]
    assert history(study, runs["p1-1"], DIVERGED) == [(20, 1.0)]


def test_a_population_that_fails_closes_its_open_members_with_the_trial_error(study, tmp_path):
    trial = population_trial(tmp_path, status="ERROR", last=REPORTS[1])
    study.tracker.on_trial_start(0, [], SimpleNamespace(**{**vars(trial), "last_result": {}}))
    study.tracker.on_trial_result(0, [], trial, REPORTS[1])
    study.tracker.on_trial_error(0, [], trial)

    runs = runs_by_member(study)
    assert {m: (r.info.status, r.data.tags[FAILURE_REASON]) for m, r in runs.items()} == {
        "p1-0": ("FAILED", "RuntimeError: the node died"),
        "p1-1": ("FAILED", REASON),
        "p1-2": ("FAILED", "RuntimeError: the node died"),
    }


def test_the_results_table_and_status_name_each_members_population(study, tmp_path):
    single = SimpleNamespace(trial_id="s1", config=dict(MEMBER_CONFIGS[0]), checkpoint=None,
                             last_result={STEP: 30})
    study.tracker.on_trial_start(0, [], single)
    study.tracker.on_trial_complete(0, [], single)
    state = SimpleNamespace(tracking_uri=study.uri, experiment_id=study.experiment,
                            parent_run_id=study.parent)

    header, _, _ = status_table(study.spec, state)
    assert POPULATION not in header  # no population trained: no column
    assert trial_row(study.spec, runs_by_member(study)["s1"])[POPULATION] is None

    trial = population_trial(tmp_path)
    study.tracker.on_trial_start(0, [], trial)
    study.tracker.on_trial_result(0, [], trial, REPORTS[2])
    study.tracker.on_trial_complete(0, [], trial)
    rows = {m: trial_row(study.spec, run) for m, run in runs_by_member(study).items()}
    assert {m: (row[POPULATION], row["status"]) for m, row in rows.items()} == {
        "s1": (None, "completed"), "p1-0": ("p1", "completed"), "p1-1": ("p1", "failed"),
        "p1-2": ("p1", "completed"),
    }
    assert rows["p1-1"]["error"] == REASON
    header, table, _ = status_table(study.spec, state)
    assert header[:6] == ["trial", "method", "seed", POPULATION, "status", "step"]
    cells = {cells[0]: cells[3] for cells, _ in table}
    assert cells == {"s1": "", "p1-0": "p1", "p1-1": "p1", "p1-2": "p1"}


def test_progress_prints_and_counts_members(study, tmp_path, capsys):
    shown = Progress(study.spec, total=6)
    shown.terminal = False
    trial = population_trial(tmp_path)
    shown.on_trial_result(0, [], trial, REPORTS[1])  # member 1 diverges: its line at once
    shown.on_trial_result(0, [], trial, REPORTS[2])
    shown.on_trial_complete(0, [], trial)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert out[0].endswith(f"FAILED p1-1  beta_vae beta=2 seed 1: {REASON}")
    assert out[1].endswith("done   p1-0  beta_vae beta=2 seed 0  mig.discrete_mig=0.3100  (7 s)")
    assert out[2].endswith("done   p1-2  beta_vae beta=5 seed 0  mig.discrete_mig=0.8300  (7 s)")
    assert shown.best == (0.83, "beta_vae beta=5 seed 0")

    broken = SimpleNamespace(trial_id="p2", status="ERROR", error_file=None, error_msg="OSError: disk full",
                             config={POPULATION_CONFIG: MEMBER_CONFIGS[:2]}, last_result={})
    shown.quiet = True  # failures are printed all the same
    shown.on_trial_error(0, [], broken)
    out = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in out] == [
        "FAILED p2-0  beta_vae beta=2 seed 0: OSError: disk full",
        "FAILED p2-1  beta_vae beta=2 seed 1: OSError: disk full",
    ]

    running = SimpleNamespace(trial_id="s1", status="RUNNING", config=dict(MEMBER_CONFIGS[2]),
                              last_result={STEP: 10})
    counts = member_states([trial, broken, running])
    assert (counts["done"], counts["failed"], counts["running"]) == (2, 3, 1)
    shown.ended_here = 5
    assert shown._status([trial, broken, running]).startswith(
        "trials: 2 done, 1 running (at step 10 of 20), 3 failed, 0 pending of 6")


def test_the_summary_names_the_best_member_and_its_files(study, tmp_path, capsys):
    shown = Progress(study.spec, total=5)
    trial = population_trial(tmp_path)
    grid = [
        SimpleNamespace(config=trial.config, metrics={**REPORTS[2], "trial_id": "p1"}, error=None,
                        checkpoint=trial.checkpoint),
        SimpleNamespace(config=dict(MEMBER_CONFIGS[1]), metrics={"trial_id": "s1", OBJECTIVE: 0.5},
                        error=None, checkpoint=SimpleNamespace(path="/ckpt/s1")),
        SimpleNamespace(config=dict(MEMBER_CONFIGS[0]), metrics={"trial_id": "s2", OBJECTIVE: 0.99},
                        error=RuntimeError("lost"), checkpoint=None),
    ]
    state = SimpleNamespace(experiment_id="1", tracking_uri="sqlite:///x.db", root="/runs")
    shown.summary(grid, state, tmp_path)
    out = capsys.readouterr().out
    assert "study pop: 5 trials, 2 failed" in out  # the diverged member and the failed trial
    assert "best trial: beta_vae beta=5 seed 0  mig.discrete_mig=0.8300" in out
    assert f"checkpoint and figures: {tmp_path / 'checkpoint_final' / 'members' / '2'}" in out
