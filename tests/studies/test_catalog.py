"""The catalog of ready-made studies: every spec validates, its documented commands work, and the
studies that reproduce a paper have that paper's grid, seeds, budget and (Locatello et al.) model
numbers."""

from __future__ import annotations

import itertools
import json
import shlex
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from disent_core.errors import ConfigError
from disent_core.methods.base import MethodContext
from disent_core.methods.registry import build_method
from studies.spec import StudySpec, load_spec, spec_yaml, validate_spec
from studies.spec.overrides import parse_set
from studies.spec.space import GRID_POINT, METHOD, SearchSpace

CATALOG = Path(__file__).parents[2] / "studies" / "catalog"
SPECS = sorted(CATALOG.glob("*.yaml"))
EXPECTED = {"quickstart", "beta_sensitivity", "capacity_sensitivity", "devae_tolerance", "deft_stages",
            "highdim", "locatello2019"}


def configurations(spec: StudySpec, space: SearchSpace) -> int:
    """How many configurations a study proposes."""
    return space.num_configurations()


def laptop_command(path: Path) -> list[str]:
    """The command of a header's ``# Laptop ...:`` block, as a shell would split it."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Laptop"))
    parts = []
    for line in lines[start + 1:]:
        if not line.startswith("#   "):
            break
        parts.append(line[1:].strip().removesuffix("\\"))
    return shlex.split(" ".join(parts))


@pytest.fixture(scope="module")
def loaded() -> dict[str, StudySpec]:
    return {path.stem: load_spec(path) for path in SPECS}


def test_the_catalog_holds_the_studies_the_design_names():
    assert {path.stem for path in SPECS} == EXPECTED


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_catalog_spec_validates_and_documents_how_to_run_it(path, loaded):
    spec = loaded[path.stem]
    assert spec.name == path.stem
    header = path.read_text().split("\nname:")[0]
    assert header.startswith("# ")
    assert f"disent-study run studies/catalog/{path.name}" in header


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_the_spec_a_study_directory_records_validates_again(path, loaded):
    """``resume`` re-reads the spec.yaml that ``run`` wrote, every default filled in."""
    spec = loaded[path.stem]
    assert validate_spec(yaml.safe_load(spec_yaml(spec)), "spec.yaml") == spec


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_configuration_of_a_catalog_spec_is_a_valid_trial(path, loaded):
    spec = loaded[path.stem]
    space = SearchSpace(spec)
    if space.grid:
        assignments = [{**point, GRID_POINT: i} for i, point in enumerate(space.grid)]
    else:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        assignments = []
        for _ in range(30):
            trial = study.ask()
            returned = space.define_by_run(trial)
            assignments.append({**trial.params, **returned})
            study.tell(trial, 0.0)
    for assignment in assignments:
        config = space.train_config(assignment, spec.seeds[-1])
        assert config.train.seed == spec.seeds[-1]
        assert config.dataset.name == spec.dataset.name


@pytest.mark.parametrize("path", [p for p in SPECS if p.stem != "quickstart"],
                         ids=[p.stem for p in SPECS if p.stem != "quickstart"])
def test_the_documented_laptop_command_shrinks_a_study_to_minutes(path):
    from studies.cli import build_parser  # imports Ray, Optuna and MLflow: only here

    command = laptop_command(path)
    assert command[0] == "disent-study"
    args = build_parser().parse_args(command[1:])
    assert args.command == "run" and args.spec == Path(f"studies/catalog/{path.name}")
    spec = load_spec(path, parse_set(args.set))
    space = SearchSpace(spec)
    assert spec.resources.gpu == 0 and spec.evaluation.protocol == "fast"
    assert spec.dataset.name.endswith("_procedural")
    assert configurations(spec, space) * len(spec.seeds) * spec.steps <= 6000


def test_quickstart_is_small(loaded):
    spec = loaded["quickstart"]
    space = SearchSpace(spec)
    runs = configurations(spec, space) * len(spec.seeds)
    assert runs <= 8
    images = runs * spec.steps * spec.train.get("batch_size", 64)
    assert images <= 400_000  # about 10 minutes on 2 CPU cores (fp32, 2 trials at once)
    assert spec.resources.gpu == 0 and spec.evaluation.protocol == "fast"
    assert spec.dataset.name == "dsprites_procedural"


# --------------------------------------------------------------------------------------------------
# Locatello et al. 2019 (disentanglement_lib 86a644d, config/unsupervised_study_v1/sweep.py;
# docs/provenance.md, "Locatello et al. 2019 study protocol")


DLIB_GRID = [
    ("beta_vae", "beta", [1, 2, 4, 6, 8, 16]),
    ("factor_vae", "gamma", [10, 20, 30, 40, 50, 100]),
    ("dip_vae_i", "lambda_od", [1, 2, 5, 10, 20, 50]),
    ("dip_vae_ii", "lambda_od", [1, 2, 5, 10, 20, 50]),
    ("beta_tc_vae", "beta", [1, 2, 4, 6, 8, 10]),
    ("annealed_vae", "c_max", [5, 10, 25, 50, 75, 100]),
]


def dlib_number(dataset_index: int, method_index: int, value_index: int, seed: int) -> int:
    return 1800 * dataset_index + 50 * (6 * method_index + value_index) + seed


def test_locatello2019_is_dlibs_grid_in_dlibs_order(loaded):
    spec = loaded["locatello2019"]
    space = SearchSpace(spec)
    assert len(space.grid) == 36
    assert spec.seeds == list(range(50))
    expected = [{METHOD: m, f"{m}.{param}": value} for m, param, values in DLIB_GRID for value in values]
    assert space.grid == expected


def test_locatello2019_fixes_dlibs_training_and_evaluation(loaded):
    spec = loaded["locatello2019"]
    space = SearchSpace(spec)
    assert spec.dataset.name == "dsprites_full" and spec.evaluation.protocol == "dlib2019"
    assert spec.search.algorithm == "grid" and spec.search.num_trials is None
    configs = {}
    for i, point in enumerate(space.grid):
        (value,) = (v for k, v in point.items() if k != METHOD)
        configs[(point[METHOD], value)] = space.train_config({**point, GRID_POINT: i}, seed=0)
    assert len(configs) == 36
    for (method, _), config in configs.items():
        # dlib's FactorVAE advanced its global step twice per iteration: 150k VAE updates
        assert config.train.steps == (150_000 if method == "factor_vae" else 300_000)
        assert (config.train.steps_note is not None) == (method == "factor_vae")
        assert config.train.batch_size == 64
        assert config.train.optimizer.lr == 1e-4 and config.train.optimizer.betas == (0.9, 0.999)
        assert config.train.optimizer.eps == 1e-8
        assert config.model.latent_dim == 10 and config.model.recon == "bernoulli"
    for value in (1, 2, 5, 10, 20, 50):
        assert configs[("dip_vae_i", value)].method.lambda_d == 10 * value
        assert configs[("dip_vae_ii", value)].method.lambda_d == value
    for value in (5, 10, 25, 50, 75, 100):
        method = configs[("annealed_vae", value)].method
        assert (method.c_max, method.gamma, method.iteration_threshold) == (value, 1000, 100_000)
        assert method.capacity is None  # dlib's linear ramp from 0 to c_max over iteration_threshold


def test_a_dlib_numbered_study_must_train_factor_vae_for_dlibs_real_updates():
    data = yaml.safe_load((CATALOG / "locatello2019.yaml").read_text())
    del data["method_steps"]
    with pytest.raises(ConfigError, match=r"method_steps\.factor_vae: .* ran 150000 VAE updates"):
        validate_spec(data)
    data["method_steps"] = {"factor_vae": {"steps": 300_000, "note": "not dlib's"}}
    with pytest.raises(ConfigError, match=r"method_steps\.factor_vae"):
        validate_spec(data)


def test_locatello2019_model_numbers_follow_dlibs_formula(loaded):
    spec = loaded["locatello2019"]
    space = SearchSpace(spec)
    assert space.model_number({**space.grid[0], GRID_POINT: 0}, 0) == 0  # beta_vae beta=1 seed 0
    last = space.grid.index({METHOD: "annealed_vae", "annealed_vae.c_max": 100})
    assert space.model_number({**space.grid[last], GRID_POINT: last}, 49) == 1799
    for (m, (method, param, values)), v in itertools.product(enumerate(DLIB_GRID), range(6)):
        point = 6 * m + v
        assert space.grid[point] == {METHOD: method, f"{method}.{param}": values[v]}
        for seed in (0, 17, 49):
            number = space.model_number({**space.grid[point], GRID_POINT: point}, seed)
            assert number == dlib_number(0, m, v, seed)


def test_locatello2019_numbers_another_dataset_and_a_subset_of_seeds_as_dlib_does():
    path = CATALOG / "locatello2019.yaml"
    spec = load_spec(path, parse_set(["dataset.name=shapes3d", "model_numbering.dataset_index=6",
                                      "seeds=[0, 7, 49]", "search.num_trials=12"]))
    space = SearchSpace(spec)
    assert len(space.grid) == 36  # num_trials picks 12 of them; the numbering still counts all 36
    assert space.model_number({**space.grid[0], GRID_POINT: 0}, 0) == 10_800
    assert space.model_number({**space.grid[13], GRID_POINT: 13}, 1) == dlib_number(6, 2, 1, 7)
    assert space.model_number({**space.grid[35], GRID_POINT: 35}, 2) == 12_599


# --------------------------------------------------------------------------------------------------
# the other paper studies


def test_devae_tolerance_is_the_betas_by_scale_sweep_beside_beta_vae(loaded):
    spec = loaded["devae_tolerance"]
    space = SearchSpace(spec)
    betas = [[1, 10], [1, 10, 40], [1, 10, 20, 40, 80]]
    assert len(space.grid) == 3 * 3 + 5
    assert space.grid[:9] == [
        {METHOD: "devae", "devae.betas": json.dumps(b), "devae.scale": s}
        for b, s in itertools.product(betas, (1.0, 0.5, 0.3))
    ]
    assert space.grid[9:] == [{METHOD: "beta_vae", "beta_vae.beta": b} for b in (1, 10, 20, 40, 80)]
    assert spec.seeds == list(range(10))
    assert spec.steps == 200_000 and spec.dataset.name == "dsprites_full"
    assert spec.evaluation.protocol == "dlib2019" and spec.evaluation.every == 0
    assert spec.objectives[0].metric == "mig.discrete_mig"
    config = space.train_config({**space.grid[5], GRID_POINT: 5}, seed=9)
    assert config.method.betas == [1, 10, 40] and config.method.scale == 0.3
    assert config.train.batch_size == 256


def test_highdim_crosses_10_and_1024_latents_with_each_method(loaded):
    spec = loaded["highdim"]
    space = SearchSpace(spec)
    seen = {(p[METHOD], p["model.latent_dim"]) for p in space.grid}
    assert seen == {(m, d) for m in ("beta_vae", "devae", "beta_tc_vae", "dynamic_vae") for d in (10, 1024)}
    assert len(space.grid) == 10  # DeVAE with two lists of betas
    assert spec.seeds == [0, 1, 2, 3, 4] and spec.steps == 300_000
    point = space.grid.index({METHOD: "dynamic_vae", "model.latent_dim": 1024})
    config = space.train_config({**space.grid[point], GRID_POINT: point}, seed=0)
    assert config.model.latent_dim == 1024
    assert (config.method.c, config.method.k_p, config.method.k_i) == (18, 0.01, 0.001)


def test_deft_stages_covers_variants_gammas_and_stage_lengths(loaded):
    spec = loaded["deft_stages"]
    space = SearchSpace(spec)
    assert len(space.grid) == 2 * 5 * 4
    assert {p["deft.variant"] for p in space.grid} == {"A", "B"}
    assert len({p["deft.gamma"] for p in space.grid}) == 5
    assert len({p["deft.stage_steps"] for p in space.grid}) == 4
    # the per-group gamma list must match the number of groups, which only the built method checks
    context = MethodContext(observation_shape=(1, 64, 64), latent_dim=10, recon="bernoulli",
                            dataset_size=1000, generator=torch.Generator().manual_seed(0))
    for i, point in enumerate(space.grid):
        config = space.train_config({**point, GRID_POINT: i}, seed=0)
        if isinstance(config.method.gamma, list):
            build_method(config.method, context)
        boundaries = config.method.boundaries()
        assert boundaries[-1] < config.train.steps  # the last stage (beta = 1) is reached


def test_sensitivity_studies_score_every_metric_they_report(loaded):
    beta = loaded["beta_sensitivity"]
    assert set(beta.methods) == {"beta_vae", "beta_tc_vae"}
    assert set(beta.evaluation.metrics) >= {"mig", "dci", "factor_vae", "sap", "reconstruction"}
    assert beta.objectives[0].metric == "mig.discrete_mig" and len(beta.seeds) >= 3
    capacity = loaded["capacity_sensitivity"]
    assert capacity.search.algorithm == "tpe" and set(capacity.methods) == {"annealed_vae"}
    kinds = [c["kind"] for c in capacity.methods["annealed_vae"]["capacity"]["choices"]]
    assert kinds == ["linear", "exponential", "stages"]
