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


def test_configurations_told_after_the_snapshot_run_again_under_their_own_trial(tmp_path):
    """A configuration asked and told after the snapshot is final in Optuna: the restored searcher
    suggests it again (same grid point, one Tune trial per seed) instead of asking a new one, and
    does not tell it twice; the grid ends with one COMPLETE trial per point."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = grid_search(storage)
    searcher.repeat = 2
    kept = searcher.suggest("a")["grid_point"]
    searcher.suggest("b")
    snapshot = str(tmp_path / "searcher.pkl")
    searcher.save(snapshot)
    searcher.on_trial_complete("a", {"score": 1.0})
    searcher.on_trial_complete("b", {"score": 3.0})  # told after the snapshot: mean 2.0
    told_after = searcher.suggest("c")["grid_point"]
    searcher.suggest("d")
    searcher.on_trial_complete("c", {"score": 5.0})
    searcher.on_trial_complete("d", {"score": 7.0})  # asked and told after the snapshot: 6.0

    restored = grid_search(storage)
    restored.repeat = 2
    restored.restore(snapshot)
    study = optuna.load_study(study_name="grid", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.COMPLETE]
    # stopped again before the replay started: the queue is saved, and not doubled on restore
    second = str(tmp_path / "second.pkl")
    restored.save(second)
    again = grid_search(storage)
    again.restore(second)
    assert [g.number for g in again.replay] == [g.number for g in restored.replay] == [1]
    # Tune runs a and b again from the snapshot; then the next two trials replay c and d's point
    replayed = [restored.suggest(tid) for tid in ("e", "f")]
    assert [c["grid_point"] for c in replayed] == [told_after, told_after]
    assert [c["__trial_index__"] for c in replayed] == [0, 1]
    for tid, score in (("a", 1.0), ("b", 3.0), ("e", 5.0), ("f", 7.0)):
        restored.on_trial_complete(tid, {"score": score})
    rest = {tid: restored.suggest(tid)["grid_point"] for tid in ("g", "h", "i", "j")}
    for tid in rest:
        restored.on_trial_complete(tid, {"score": 0.0})
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(t.params["grid_point"] for t in complete) == list(range(GRID)), (kept, told_after, rest)
    assert {t.params["grid_point"]: t.value for t in complete}[told_after] == 6.0
    assert len(study.get_trials()) == GRID

