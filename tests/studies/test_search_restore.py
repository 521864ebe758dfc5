"""Restoring the searcher after the driver died: Optuna trials asked after Tune's last snapshot."""

import optuna
from optuna.trial import TrialState

from studies.orchestration.search import LOST_ON_RESTORE, StudySearch

GRID = 4


def space(trial: optuna.Trial) -> None:
    trial.suggest_categorical("grid_point", list(range(GRID)))


def grid_search(storage: str) -> StudySearch:
    sampler = optuna.samplers.GridSampler({"grid_point": list(range(GRID))}, seed=0)
    return StudySearch(
        space=space, metric="score", mode="max", sampler=sampler, study_name="grid",
        storage=optuna.storages.RDBStorage(storage),
    )


def test_trials_asked_after_the_snapshot_are_failed_and_asked_again(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = grid_search(storage)
    first = {tid: searcher.suggest(tid)["grid_point"] for tid in ("a", "b")}
    snapshot = str(tmp_path / "searcher.pkl")
    searcher.save(snapshot)
    lost = searcher.suggest("c")["grid_point"]  # asked, then the driver died before a snapshot

    restored = grid_search(storage)
    restored.restore(snapshot)
    study = optuna.load_study(study_name="grid", storage=storage)
    (failed,) = study.get_trials(states=(TrialState.FAIL,))
    assert failed.params["grid_point"] == lost
    assert failed.user_attrs["failure_reason"] == LOST_ON_RESTORE
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 2  # a and b, which Tune resumes

    # the lost configuration is the next one asked; then the one grid point left
    again = {tid: restored.suggest(tid)["grid_point"] for tid in ("d", "e")}
    assert again["d"] == lost
    for tid in ("a", "b", "d", "e"):
        restored.on_trial_complete(tid, {"score": 1.0})
    done = [t.params["grid_point"] for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert sorted(done) == list(range(GRID)), (first, lost, again)


def test_restore_with_nothing_lost_changes_nothing(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = grid_search(storage)
    searcher.suggest("a")
    snapshot = str(tmp_path / "searcher.pkl")
    searcher.save(snapshot)
    restored = grid_search(storage)
    restored.restore(snapshot)
    study = optuna.load_study(study_name="grid", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]
