"""The search space of a spec: Optuna define-by-run, grid enumeration and the trial configs."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import optuna
import pytest

from disent_core.config import TrainConfig
from disent_core.errors import ConfigError
from disent_core.schedules import ExponentialConfig, LinearConfig, StagesConfig
from studies.spec import validate_spec
from studies.spec.space import GRID_POINT, METHOD, SearchSpace, default_checkpoint_every, label

optuna.logging.set_verbosity(optuna.logging.WARNING)

DEVAE_BETAS = [[1, 10], [1, 10, 40], [1, 10, 20, 40, 80]]
CAPACITY = {
    "search": "categorical",
    "choices": [
        {"kind": "linear", "start": 0, "end": {"search": "log_float", "low": 5, "high": 50},
         "steps": {"search": "int", "low": 100, "high": 1000, "step": 100}},
        {"kind": "exponential", "start": 0.5, "every": 100,
         "rate": {"search": "float", "low": 1.2, "high": 3.0}},
        {"kind": "stages", "values": {"search": "categorical", "choices": [[5, 10], [10, 25]]},
         "boundaries": [300]},
    ],
}
SEARCH_SPEC: dict[str, Any] = {
    "name": "space",
    "dataset": {"name": "dsprites_procedural"},
    "model": {"latent_dim": {"search": "int", "low": 4, "high": 12, "step": 2}},
    "train": {"steps": 1000, "batch_size": 16, "report_every": 100,
              "optimizer": {"lr": {"search": "log_float", "low": 1e-5, "high": 1e-3}}},
    "methods": {
        "beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 16}},
        "annealed_vae": {"gamma": {"search": "categorical", "choices": [100, 1000]}, "capacity": CAPACITY},
        "devae": {"betas": {"search": "categorical", "choices": DEVAE_BETAS},
                  "scale": {"search": "float", "low": 0.3, "high": 1.0}},
        "factor_vae": {"gamma": {"search": "log_int", "low": 5, "high": 100}},
    },
    "seeds": [3, 7],
    "evaluation": {"protocol": "fast", "metrics": ["mig", "reconstruction"]},
    "objective": {"metric": "mig.discrete_mig", "mode": "max"},
    "search": {"algorithm": "tpe", "num_trials": 30},
    "resources": {"cpu": 3, "gpu": 0},
}


def make_space(data: dict[str, Any] | None = None, **changes: Any) -> SearchSpace:
    data = copy.deepcopy(data or SEARCH_SPEC)
    data.update(changes)
    return SearchSpace(validate_spec(data))


def ask_all(space: SearchSpace, sampler: optuna.samplers.BaseSampler, n: int) -> list[dict[str, Any]]:
    """What StudySearch hands a trial: the captured suggestions plus what define_by_run returns."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    configs = []
    for i in range(n):
        trial = study.ask()
        returned = space.define_by_run(trial)
        configs.append({**trial.params, **returned})
        study.tell(trial, float(i % 5))
    return configs


def test_label_keeps_primitives_and_writes_the_rest_as_json():
    assert label(4) == 4 and label(0.5) == 0.5 and label("B") == "B" and label(None) is None and label(True)
    assert label([1, 10, 40]) == "[1, 10, 40]"
    assert label({"kind": "linear", "end": 3}) == '{"end": 3, "kind": "linear"}'


@pytest.mark.parametrize(
    "sampler",
    [optuna.samplers.RandomSampler(seed=0), optuna.samplers.TPESampler(seed=0)],
    ids=["random", "tpe"],
)
def test_each_trial_suggests_only_its_own_methods_parameters(sampler):
    space = make_space()
    configs = ask_all(space, sampler, 40)
    assert {c[METHOD] for c in configs} == set(SEARCH_SPEC["methods"])
    for config in configs:
        method = config[METHOD]
        own = {k for k in config if k.startswith(f"{method}.")}
        shared = {k for k in config if k.startswith(("model.", "train."))}
        assert set(config) == {METHOD} | own | shared
        assert shared == {"model.latent_dim", "train.optimizer.lr"}
        expected = {
            "beta_vae": {"beta_vae.beta"},
            "annealed_vae": {"annealed_vae.gamma", "annealed_vae.capacity"},
            "devae": {"devae.betas", "devae.scale"},
            "factor_vae": {"factor_vae.gamma"},
        }[method]
        assert expected <= own
        if method != "annealed_vae":
            assert own == expected


def test_parameters_nested_in_a_chosen_object_exist_only_with_that_choice():
    space = make_space()
    configs = ask_all(space, optuna.samplers.RandomSampler(seed=1), 60)
    configs = [c for c in configs if c[METHOD] == "annealed_vae"]
    nested = {0: {"annealed_vae.capacity[0].end", "annealed_vae.capacity[0].steps"},
              1: {"annealed_vae.capacity[1].rate"},
              2: {"annealed_vae.capacity[2].values"}}
    labels = [label(choice) for choice in CAPACITY["choices"]]
    seen = set()
    for config in configs:
        index = labels.index(config["annealed_vae.capacity"])
        seen.add(index)
        inner = {k for k in config if k.startswith("annealed_vae.capacity[")}
        assert inner == nested[index]
        capacity = space.train_config(config, seed=3).method.capacity
        if index == 0:
            assert isinstance(capacity, LinearConfig)
            assert capacity.end == config["annealed_vae.capacity[0].end"]
            assert capacity.steps == config["annealed_vae.capacity[0].steps"] and capacity.start == 0
        elif index == 1:
            assert isinstance(capacity, ExponentialConfig)
            assert capacity.rate == config["annealed_vae.capacity[1].rate"] and capacity.every == 100
        else:
            assert isinstance(capacity, StagesConfig)
            assert capacity.values == json.loads(config["annealed_vae.capacity[2].values"])
            assert capacity.boundaries == [300]
    assert seen == {0, 1, 2}


def test_list_choices_are_stored_as_json_and_come_back_as_lists():
    space = make_space()
    configs = [c for c in ask_all(space, optuna.samplers.RandomSampler(seed=2), 60) if c[METHOD] == "devae"]
    assert {c["devae.betas"] for c in configs} == {json.dumps(b) for b in DEVAE_BETAS}
    for config in configs:
        method = space.train_config(config, seed=7).method
        assert method.betas == json.loads(config["devae.betas"])
        assert method.scale == config["devae.scale"]


def test_suggested_values_stay_inside_their_bounds():
    space = make_space()
    for config in ask_all(space, optuna.samplers.RandomSampler(seed=3), 80):
        assert config["model.latent_dim"] in (4, 6, 8, 10, 12)
        assert 1e-5 <= config["train.optimizer.lr"] <= 1e-3
        if config[METHOD] == "beta_vae":
            assert 1 <= config["beta_vae.beta"] <= 16
        if config[METHOD] == "factor_vae":
            assert isinstance(config["factor_vae.gamma"], int) and 5 <= config["factor_vae.gamma"] <= 100
        if config[METHOD] == "devae":
            assert 0.3 <= config["devae.scale"] <= 1.0
        if config[METHOD] == "annealed_vae":
            assert config["annealed_vae.gamma"] in (100, 1000)
            if "annealed_vae.capacity[0].steps" in config:
                assert config["annealed_vae.capacity[0].steps"] % 100 == 0
                assert 5 <= config["annealed_vae.capacity[0].end"] <= 50
            if "annealed_vae.capacity[1].rate" in config:
                assert 1.2 <= config["annealed_vae.capacity[1].rate"] <= 3.0


def test_train_config_is_the_spec_plus_the_assignment_at_the_trial_seed():
    space = make_space()
    config = {METHOD: "beta_vae", "beta_vae.beta": 4.5, "model.latent_dim": 6, "train.optimizer.lr": 2e-4}
    trained = space.train_config(config, seed=7)
    assert isinstance(trained, TrainConfig)
    assert trained.method.name == "beta_vae" and trained.method.beta == 4.5
    assert trained.model.latent_dim == 6
    assert trained.train.seed == 7
    assert trained.train.optimizer.lr == 2e-4
    assert (trained.train.steps, trained.train.batch_size, trained.train.report_every) == (1000, 16, 100)
    assert trained.train.threads == 3  # resources.cpu
    assert trained.train.checkpoint_every == default_checkpoint_every(space.spec, 1000) == 200
    assert trained.dataset.name == "dsprites_procedural"


def test_train_config_keeps_explicit_threads_and_checkpoint_interval():
    data = copy.deepcopy(SEARCH_SPEC)
    data["train"].update(threads=1, checkpoint_every=500)
    data["resources"] = {"cpu": 0.5}
    space = make_space(data)
    config = {METHOD: "factor_vae", "factor_vae.gamma": 10, "model.latent_dim": 4, "train.optimizer.lr": 1e-4}
    trained = space.train_config(config, seed=3)
    assert trained.train.threads == 1 and trained.train.checkpoint_every == 500
    del data["train"]["threads"]
    assert make_space(data).train_config(config, seed=3).train.threads == 1  # a fraction of a CPU: 1 thread


def test_method_steps_set_that_methods_length_and_record_why():
    data = copy.deepcopy(SEARCH_SPEC)
    data["method_steps"] = {"factor_vae": {"steps": 500, "note": "dlib counted two steps per update"}}
    space = make_space(data)
    point = {METHOD: "factor_vae", "factor_vae.gamma": 10, "model.latent_dim": 4, "train.optimizer.lr": 1e-4}
    factor = space.train_config(point, seed=0)
    assert factor.train.steps == 500 and factor.train.steps_note == "dlib counted two steps per update"
    assert factor.train.checkpoint_every == 100  # five checkpoints in its own 500 steps
    assert factor.flat_params()["train.steps_note"] == "dlib counted two steps per update"
    beta = space.train_config(
        {METHOD: "beta_vae", "beta_vae.beta": 4.5, "model.latent_dim": 6, "train.optimizer.lr": 2e-4}, seed=0
    )
    assert beta.train.steps == 1000 and beta.train.steps_note is None
    assert (space.spec.steps_of("factor_vae"), space.spec.steps_of("beta_vae")) == (500, 1000)
    data["method_steps"] = {"factor_vae": {"fraction": 0.25, "note": "a quarter"}}
    data["train"]["steps"] = 2000
    assert make_space(data).spec.steps_of("factor_vae") == 500


def test_method_steps_must_name_a_method_of_the_study_and_give_a_reason():
    data = copy.deepcopy(SEARCH_SPEC)
    data["method_steps"] = {"factor_vae": {"steps": 500}}
    with pytest.raises(ConfigError, match=r"method_steps\.factor_vae\.note: Field required"):
        validate_spec(data)
    data["method_steps"] = {"factor_vae": {"steps": 500, "fraction": 0.5, "note": "x"}}
    with pytest.raises(ConfigError, match=r"method_steps\.factor_vae: give either steps or fraction"):
        validate_spec(data)
    data["method_steps"] = {"dip_vae_i": {"steps": 500, "note": "x"}}
    with pytest.raises(ConfigError, match=r"method_steps\.dip_vae_i: not a method of this study"):
        validate_spec(data)


def test_train_config_without_a_value_for_a_parameter_is_an_error():
    space = make_space()
    with pytest.raises(ConfigError, match=r"no value for search parameter 'beta_vae\.beta'"):
        space.train_config({METHOD: "beta_vae", "model.latent_dim": 6, "train.optimizer.lr": 1e-4}, seed=3)


def test_default_checkpoint_interval_is_a_report_step_about_five_times_per_trial():
    def every(steps: int, report: int) -> int:
        data = copy.deepcopy(SEARCH_SPEC)
        data["train"].update(steps=steps, report_every=report)
        return default_checkpoint_every(validate_spec(data), steps)

    assert every(1000, 100) == 200
    assert every(300_000, 1000) == 60_000
    assert every(1000, 300) == 300  # round(1000 / 5 / 300) = 1
    assert every(200, 100) == 100  # never below one report interval


def test_a_single_method_study_does_not_suggest_the_method():
    data = copy.deepcopy(SEARCH_SPEC)
    data["methods"] = {"beta_vae": data["methods"]["beta_vae"]}
    configs = ask_all(make_space(data), optuna.samplers.RandomSampler(seed=0), 3)
    study_params = [set(c) for c in configs]
    assert all(p == {METHOD, "beta_vae.beta", "model.latent_dim", "train.optimizer.lr"} for p in study_params)


# --------------------------------------------------------------------------------------------------
# grid


GRID_SPEC: dict[str, Any] = {
    "name": "grid",
    "dataset": {"name": "dsprites_procedural"},
    "model": {"latent_dim": {"search": "grid", "values": [4, 8]}},
    "train": {"steps": 200, "batch_size": 8, "report_every": 100},
    "methods": {
        "beta_vae": {"beta": {"search": "grid", "values": [1, 2, 4]}},
        "devae": {"betas": {"search": "grid", "values": [[1, 10], [1, 10, 40]]},
                  "scale": {"search": "categorical", "choices": [1.0, 0.5]}},
        "annealed_vae": {"gamma": 100, "capacity": {"search": "grid", "values": [
            {"kind": "constant", "value": 5},
            {"kind": "linear", "start": 0, "end": {"search": "grid", "values": [10, 20, 30]}, "steps": 100},
        ]}},
    },
    "seeds": [0, 1, 2],
    "evaluation": {"protocol": "fast", "metrics": ["mig"]},
    "objective": {"metric": "mig.discrete_mig", "mode": "max"},
    "search": {"algorithm": "grid"},
}


def test_grid_is_the_union_over_methods_of_the_product_of_their_values_in_spec_order():
    space = make_space(GRID_SPEC)
    # beta_vae 2 x 3, devae 2 x 2 x 2, annealed_vae 2 x (1 + 3)
    assert len(space.grid) == 6 + 8 + 8
    assert [p[METHOD] for p in space.grid] == ["beta_vae"] * 6 + ["devae"] * 8 + ["annealed_vae"] * 8
    assert space.grid[:6] == [
        {METHOD: "beta_vae", "model.latent_dim": d, "beta_vae.beta": b} for d in (4, 8) for b in (1, 2, 4)
    ]
    assert space.grid[6:14] == [
        {METHOD: "devae", "model.latent_dim": d, "devae.betas": json.dumps(b), "devae.scale": s}
        for d, b, s in itertools.product((4, 8), ([1, 10], [1, 10, 40]), (1.0, 0.5))
    ]
    constant, linear = (label(v) for v in GRID_SPEC["methods"]["annealed_vae"]["capacity"]["values"])
    assert space.grid[14:] == [
        {METHOD: "annealed_vae", "model.latent_dim": d, "annealed_vae.capacity": constant}
        if end is None else
        {METHOD: "annealed_vae", "model.latent_dim": d, "annealed_vae.capacity": linear,
         "annealed_vae.capacity[1].end": end}
        for d in (4, 8) for end in (None, 10, 20, 30)
    ]


def test_a_search_that_is_not_grid_has_no_grid():
    assert make_space().grid == []


def test_every_grid_point_gives_a_distinct_valid_train_config():
    space = make_space(GRID_SPEC)
    configs = [space.train_config({**p, GRID_POINT: i}, seed=0) for i, p in enumerate(space.grid)]
    dumps = {json.dumps(c.model_dump(mode="json"), sort_keys=True) for c in configs}
    assert len(dumps) == len(space.grid)
    assert configs[14].method.capacity.kind == "constant"
    assert configs[-1].method.capacity == LinearConfig(start=0, end=30, steps=100)
    assert configs[-1].model.latent_dim == 8


def tell_like_ray(study: optuna.Study, trial: optuna.Trial, value: float) -> None:
    """``StudySearch.on_trial_complete``: a failing ``tell`` is logged, not raised. GridSampler's
    ``after_trial`` calls ``study.stop()`` once the grid is done, which raises outside
    ``study.optimize``; the trial is completed all the same."""
    try:
        study.tell(trial, value)
    except RuntimeError as exc:
        assert "Study.stop" in str(exc)
    assert study.trials[trial.number].state == optuna.trial.TrialState.COMPLETE


@pytest.mark.parametrize("concurrent", [False, True], ids=["one_at_a_time", "all_running_at_once"])
def test_grid_sampler_visits_every_point_exactly_once(concurrent):
    space = make_space(GRID_SPEC)
    n = len(space.grid)
    # as studies.orchestration.search.make_sampler builds it for a grid study
    sampler = optuna.samplers.GridSampler({GRID_POINT: list(range(n))}, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    visited, running = [], []
    for _ in range(n):
        trial = study.ask()
        assignment = space.define_by_run(trial)
        point = trial.params[GRID_POINT]
        assert set(trial.params) == {GRID_POINT}  # only the index is an Optuna parameter
        assert assignment == space.grid[point]
        assert trial.user_attrs == space.grid[point]  # the resolved values, for the dashboard
        space.train_config({**trial.params, **assignment}, seed=1)
        visited.append(point)
        running.append(trial)
        if not concurrent:
            tell_like_ray(study, running.pop(), 0.0)
    for trial in running:
        tell_like_ray(study, trial, 0.0)
    assert sorted(visited) == list(range(n))
    assert visited != list(range(n))  # the sampler's own (seeded) order, not the enumeration's


def test_model_number_is_dlibs_numbering_of_grid_position_and_seed():
    data = copy.deepcopy(GRID_SPEC)
    data["methods"] = {"beta_vae": {"beta": {"search": "grid", "values": list(range(1, 37))}}}
    data["model"] = {}
    data["seeds"] = [0, 5, 49]
    data["model_numbering"] = {"scheme": "dlib_unsupervised_study_v1", "dataset_index": 2}
    space = make_space(data)
    assert space.model_number({**space.grid[0], GRID_POINT: 0}, 0) == 3600
    assert space.model_number({**space.grid[7], GRID_POINT: 7}, 1) == 3600 + 50 * 7 + 5
    assert space.model_number({**space.grid[35], GRID_POINT: 35}, 2) == 3600 + 1799
    assert space.model_number({METHOD: "beta_vae", "beta_vae.beta": 1}, 0) is None  # not from the grid
    assert make_space(GRID_SPEC).model_number({**space.grid[0], GRID_POINT: 0}, 0) is None  # not asked for
