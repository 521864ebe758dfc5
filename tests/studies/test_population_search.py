"""The searcher packing (configuration, seed) members into population trials."""

import math

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.repeater import TRIAL_INDEX
from ray.tune.utils import flatten_dict

from studies.orchestration.members import MEMBERS, POPULATION_CONFIG, trial_members
from studies.orchestration.search import PopulationKey, StudySearch, make_sampler
from studies.spec import validate_spec
from studies.spec.space import SearchSpace

GRID = 6


def space(trial: optuna.Trial) -> None:
    trial.suggest_categorical("grid_point", list(range(GRID)))


def search(storage: str, population: int, repeat: int, key=lambda config, seed_index: "same") -> StudySearch:
    sampler = optuna.samplers.GridSampler({"grid_point": list(range(GRID))}, seed=0)
    return StudySearch(
        space=space, metric="score", mode="max", sampler=sampler, study_name="grid",
        storage=optuna.storages.RDBStorage(storage), repeat=repeat, population=population,
        member_key=key, configurations=GRID,
    )


def members_of(config):
    return config[POPULATION_CONFIG] if POPULATION_CONFIG in config else [config]


def test_every_configuration_and_seed_is_handed_out_once_in_populations(tmp_path):
    searcher = search(f"sqlite:///{tmp_path / 'o.db'}", population=4, repeat=2)
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert searcher.suggest("t3") == Searcher.FINISHED
    assert [len(members_of(c)) for c in configs] == [4, 4, 4]
    units = [(m["grid_point"], m[TRIAL_INDEX]) for c in configs for m in members_of(c)]
    assert sorted(units) == [(p, s) for p in range(GRID) for s in (0, 1)]
    # a configuration's seeds are handed out in order, and each member's id names its trial
    first = trial_members("t0", configs[0])
    assert [m.member_id for m in first] == ["t0-0", "t0-1", "t0-2", "t0-3"]
    assert [m.config[TRIAL_INDEX] for m in first] == [0, 1, 0, 1]


def test_members_split_by_key_and_a_member_that_trains_alone_gets_a_plain_trial(tmp_path):
    def key(config, seed_index):
        return None if config["grid_point"] == 5 else str(config["grid_point"] % 2)

    searcher = search(f"sqlite:///{tmp_path / 'o.db'}", population=2, repeat=1, key=key)
    handed = []
    while (config := searcher.suggest(f"t{len(handed)}")) != Searcher.FINISHED:
        handed.append(config)
    points = [sorted(m["grid_point"] for m in members_of(c)) for c in handed]
    assert sorted(p for group in points for p in group) == list(range(GRID))
    assert sorted(len(group) for group in points) == [1, 1, 2, 2]  # evens 2 + 1, odds 2, point 5 alone
    for group in points:
        assert len({key({"grid_point": p}, 0) for p in group}) == 1
    assert [5] in points
    alone = next(c for c in handed if POPULATION_CONFIG not in c and c["grid_point"] == 5)
    assert set(alone) == {"grid_point", TRIAL_INDEX}


def test_each_configuration_is_told_the_mean_over_its_seeds_across_populations(tmp_path):
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    searcher = search(storage, population=3, repeat=2)
    a, b = searcher.suggest("a"), searcher.suggest("b")  # 3 members, then 3: the second point splits
    results = {}
    for trial_id, config in (("a", a), ("b", b)):
        results[trial_id] = {MEMBERS: {
            str(i): {"score": float(m["grid_point"] * 10 + m[TRIAL_INDEX])}
            for i, m in enumerate(members_of(config))
        }}
    results["b"][MEMBERS]["2"] = {"score": math.nan, "diverged": 1}
    searcher.on_trial_complete("a", flatten_dict(results["a"]))  # as Tune hands it to searchers
    study = optuna.load_study(study_name="grid", storage=storage)
    told = {t.params["grid_point"]: t.value for t in study.get_trials(states=(TrialState.COMPLETE,))}
    first, second = (m["grid_point"] for m in members_of(a)[::2])
    assert told == {first: first * 10 + 0.5}  # the second point waits for its other seed
    searcher.on_trial_complete("b", results["b"])
    study = optuna.load_study(study_name="grid", storage=storage)
    told = {t.params["grid_point"]: t.value for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert told[second] == second * 10 + 0.5
    (diverged,) = [m["grid_point"] for m in members_of(b)[2:]]
    assert told[diverged] == diverged * 10  # the diverged seed is left out of the mean


def test_the_waiting_members_and_populations_survive_a_save_and_restore(tmp_path):
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    searcher = search(storage, population=3, repeat=2)
    first = searcher.suggest("a")  # asks two configurations: one member waits
    snapshot = str(tmp_path / "searcher.pkl")
    searcher.save(snapshot)
    restored = search(storage, population=3, repeat=2)
    restored.restore(snapshot)
    assert restored.members_of == {"a": ["a-0", "a-1", "a-2"]}
    rest = []
    while (config := restored.suggest(f"r{len(rest)}")) != Searcher.FINISHED:
        rest.append(config)
    units = [(m["grid_point"], m[TRIAL_INDEX]) for c in [first, *rest] for m in members_of(c)]
    assert sorted(units) == [(p, s) for p in range(GRID) for s in (0, 1)]


def test_a_population_search_needs_its_key_and_size():
    with pytest.raises(ValueError, match="member_key and configurations"):
        StudySearch(space=space, metric="score", mode="max", sampler=optuna.samplers.RandomSampler(),
                    study_name="x", storage="sqlite:///:memory:", population=2)


def test_a_sampled_search_asks_a_population_of_distinct_configurations_and_then_finishes(tmp_path):
    spec = validate_spec({
        "name": "tpe", "dataset": {"name": "dsprites_procedural"}, "train": {"steps": 10},
        "methods": {"beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 16}}},
        "evaluation": {"metrics": ["mig"]}, "objective": {"metric": "mig.discrete_mig", "mode": "max"},
        "search": {"algorithm": "tpe", "num_trials": 6}, "resources": {"population": 4},
    })
    space = SearchSpace(spec)
    searcher = StudySearch(
        space=space.define_by_run, metric="mig.discrete_mig", mode="max", sampler=make_sampler(spec, space),
        study_name="tpe", storage=f"sqlite:///{tmp_path / 'o.db'}", population=4,
        member_key=PopulationKey(spec), configurations=6,
    )
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert searcher.suggest("c") == Searcher.FINISHED
    betas = [m["beta_vae.beta"] for c in (first, second) for m in members_of(c)]
    assert [len(members_of(c)) for c in (first, second)] == [4, 2]
    assert len(set(betas)) == 6  # six configurations asked before any was told, none repeated
