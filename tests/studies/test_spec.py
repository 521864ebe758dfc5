"""Study spec validation: every problem on its own line, named by its YAML path, with the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from disent_core.errors import ConfigError, DisentError
from studies.spec import StudySpec, load_spec, spec_yaml, validate_spec
from studies.spec.model import AUTO_GPU_POPULATION
from studies.spec.overrides import parse_set

BASE: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "dsprites_procedural"},
    "model": {"latent_dim": 4},
    "train": {"steps": 200, "batch_size": 8, "report_every": 100},
    "methods": {
        "beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 16}},
        "annealed_vae": {"c_max": {"search": "float", "low": 5, "high": 30}, "gamma": 100},
    },
    "seeds": [0, 1],
    "evaluation": {"protocol": "fast", "metrics": ["mig", "reconstruction"]},
    "objective": {"metric": "mig.discrete_mig", "mode": "max"},
    "search": {"algorithm": "tpe", "num_trials": 2},
}


def spec(**changes: Any) -> dict[str, Any]:
    """A copy of BASE with dotted keys set (``{"train.steps": 5}``); a value of ``...`` deletes the key."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("/")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return data


def problems(data: Any) -> list[str]:
    """The problem lines of the ``ConfigError`` that ``data`` must raise."""
    with pytest.raises(ConfigError) as info:
        validate_spec(data, "spec.yaml")
    first, *lines = str(info.value).splitlines()
    assert first == "invalid study spec spec.yaml:"
    return [line.strip() for line in lines]


def test_the_base_spec_is_valid():
    parsed = validate_spec(spec())
    assert isinstance(parsed, StudySpec)
    assert parsed.steps == 200 and parsed.report_every == 100
    assert parsed.objectives[0].metric == "mig.discrete_mig"
    assert parsed.experiment_name == "tiny"


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ({"name": "dsprites_procedural"}, "dsprites_procedural is procedural and has no real counterpart"),
        ({"name": "dsprites_full", "options": {"source": "procedural"}},
         "disent-study datasets prepare dsprites_full"),
        ({"name": "scream_dsprites", "options": {"texture": "procedural"}}, "texture: painting"),
    ],
)
def test_a_comparable_protocol_refuses_procedural_data_before_the_study_starts(dataset, expected):
    (line,) = problems(spec(**{"evaluation/protocol": "dlib2019", "dataset": dataset}))
    assert line.startswith("dataset: the dlib2019 protocol compares scores with published numbers")
    assert expected in line and "fast" in line
    validate_spec(spec(**{"evaluation/protocol": "fast", "dataset": dataset}))  # not comparable: fine
    validate_spec(spec(**{"evaluation/protocol": "dlib2019", "dataset": {"name": "dsprites_full"}}))


def test_spec_yaml_round_trips_with_defaults_filled_in():
    parsed = validate_spec(spec())
    again = validate_spec(yaml.safe_load(spec_yaml(parsed)))
    assert again == parsed
    assert "max_failures: 2" in spec_yaml(parsed)


EVERY_150 = (
    "evaluation.every: 150 is not a multiple of train.report_every (100); evaluations happen at report steps"
)

# (changes, the exact problem lines); the paths use "/" so that YAML keys may contain dots
CASES = {
    "negative low of a bounded parameter": (
        {"methods/beta_vae/beta": {"search": "float", "low": -1, "high": 4}},
        ["methods.beta_vae.beta.low: must be >= 0"],
    ),
    "high above the field's upper bound": (
        {"methods/dynamic_vae": {"alpha": {"search": "float", "low": 0.5, "high": 2}}},
        ["methods.dynamic_vae.alpha.high: must be <= 1"],
    ),
    "log_float with low 0": (
        {"methods/beta_vae/beta": {"search": "log_float", "low": 0, "high": 4}},
        ["methods.beta_vae.beta.low: must be > 0"],
    ),
    "log_float with a negative low": (
        {"methods/beta_vae/beta": {"search": "log_float", "low": -2, "high": 4}},
        ["methods.beta_vae.beta.low: must be > 0"],
    ),
    "log_int with low 0": (
        {"model/latent_dim": {"search": "log_int", "low": 0, "high": 64}},
        ["model.latent_dim.low: must be >= 1"],
    ),
    "low equal to high": (
        {"methods/beta_vae/beta": {"search": "float", "low": 4, "high": 4}},
        ["methods.beta_vae.beta: low (4.0) must be smaller than high (4.0)"],
    ),
    "low above high (int)": (
        {"model/latent_dim": {"search": "int", "low": 8, "high": 2}},
        ["model.latent_dim: low (8) must be smaller than high (2)"],
    ),
    "unknown search kind": (
        {"methods/beta_vae/beta": {"search": "uniform", "low": 1, "high": 4}},
        ["methods.beta_vae.beta: unknown search kind 'uniform'; valid kinds: 'float', 'log_float', 'int', "
         "'log_int', 'categorical', 'grid'"],
    ),
    "unknown key in a search parameter": (
        {"methods/beta_vae/beta": {"search": "float", "low": 1, "high": 4, "log": True}},
        ["methods.beta_vae.beta.log: unknown key; remove it or check its spelling"],
    ),
    "missing bound": (
        {"methods/beta_vae/beta": {"search": "float", "low": 1}},
        ["methods.beta_vae.beta.high: Field required"],
    ),
    "empty categorical": (
        {"methods/beta_vae/beta": {"search": "categorical", "choices": []}},
        ["methods.beta_vae.beta.choices: List should have at least 1 item after validation, not 0"],
    ),
    "repeated categorical choice": (
        {"methods/beta_vae/beta": {"search": "categorical", "choices": [1, 4, 1]}},
        ["methods.beta_vae.beta.choices[2]: repeats choices[0]; list each value once"],
    ),
    "repeated list choice": (
        {"methods/devae": {"betas": {"search": "grid", "values": [[1, 10], [1, 10]]}}},
        ["methods.devae.betas.values[1]: repeats values[0]; list each value once"],
    ),
    "unknown method": (
        {"methods/beta_vea": {"beta": 4}},
        ["methods.beta_vea: unknown method; did you mean beta_vae, beta_tc_vae, devae? valid names: "
         "beta_vae, annealed_vae, factor_vae, beta_tc_vae, dip_vae_i, dip_vae_ii, did, deft, devae, "
         "dynamic_vae, control_vae, cascade_vae_c"],
    ),
    "method name repeated inside its block": (
        {"methods/beta_vae/name": "beta_vae"},
        ["methods.beta_vae.name: remove it; the method's name is its key under methods"],
    ),
    "unknown dataset": (
        {"dataset/name": "dsprite"},
        ["dataset.name: unknown dataset 'dsprite'; did you mean dsprites, dsprites_full, noisy_dsprites? "
         "valid names: color_dsprites, dsprites, dsprites_correlated, dsprites_full, dsprites_noshape, "
         "dsprites_procedural, noisy_dsprites, scream_dsprites, shapes3d, shapes3d_procedural, smallnorb"],
    ),
    "unknown metric": (
        {"evaluation/metrics": ["mig", "migg"]},
        ["evaluation.metrics: unknown metric 'migg'; did you mean mig? valid names: beta_vae, factor_vae, "
         "mig, dci, sap, modularity, unsupervised, irs, reconstruction"],
    ),
    "metric listed twice": (
        {"evaluation/metrics": ["mig", "reconstruction", "mig"]},
        ["evaluation.metrics: each metric must appear once, got ['mig', 'reconstruction', 'mig']"],
    ),
    "unknown protocol": (
        {"evaluation/protocol": "dlib"},
        ["evaluation.protocol: unknown protocol 'dlib'; did you mean dlib2019? valid names: dlib2019, "
         "corrected, fast"],
    ),
    "unknown top-level key": (
        {"sceduler": {"type": "asha"}},
        ["sceduler: unknown key; remove it or check its spelling"],
    ),
    "unknown key in train": (
        {"train/stepz": 100},
        ["train.stepz: unknown key; remove it or check its spelling"],
    ),
    "unknown key in a method": (
        {"methods/beta_vae/betta": 4},
        ["methods.beta_vae.betta: unknown key; remove it or check its spelling"],
    ),
    "unknown key in model": (
        {"model/latent_dims": 4},
        ["model.latent_dims: unknown key; remove it or check its spelling"],
    ),
    "unknown key in evaluation": (
        {"evaluation/evry": 100},
        ["evaluation.evry: unknown key; remove it or check its spelling"],
    ),
    "invalid name": (
        {"name": "my study"},
        ["name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$'"],
    ),
    "missing objective": (
        {"objective": ...},
        ["objective: Field required"],
    ),
    "grid search over a float range": (
        {"search/algorithm": "grid"},
        [
            "methods.beta_vae.beta: grid search needs explicit values; use {search: grid, values: [...]} "
            "or another search.algorithm",
            "methods.annealed_vae.c_max: grid search needs explicit values; use "
            "{search: grid, values: [...]} or another search.algorithm",
        ],
    ),
    "grid search over a range nested in a grid choice": (
        {
            "search/algorithm": "grid",
            "methods/beta_vae/beta": {"search": "grid", "values": [1, 4]},
            "methods/annealed_vae": {"capacity": {"search": "grid", "values": [
                {"kind": "linear", "start": 0, "end": 25, "steps": 100},
                {"kind": "linear", "start": 0, "steps": 100,
                 "end": {"search": "float", "low": 5, "high": 50}},
            ]}},
        },
        ["methods.annealed_vae.capacity.values[1].end: grid search needs explicit values; use "
         "{search: grid, values: [...]} or another search.algorithm"],
    ),
    "objective metric not evaluated": (
        {"objective": {"metric": "dci.disentanglement", "mode": "max"}},
        ["objective.metric: 'dci.disentanglement' is not a score of the evaluated metrics (mig, "
         "reconstruction); use a key such as mig.discrete_mig and list its metric under evaluation.metrics"],
    ),
    "objective without a score key": (
        {"objective": {"metric": "mig", "mode": "max"}},
        ["objective.metric: 'mig' is not a score of the evaluated metrics (mig, reconstruction); use a key "
         "such as mig.discrete_mig and list its metric under evaluation.metrics"],
    ),
    "objective with an unknown score key": (
        {"objective": {"metric": "reconstruction.recon_error", "mode": "min"}},
        ["objective.metric: reconstruction has no score 'recon_error'; its scores are "
         "reconstruction.reconstruction_error, reconstruction.kl, reconstruction.num_active_latents"],
    ),
    "second objective not evaluated": (
        {"objective": [{"metric": "mig.discrete_mig", "mode": "max"},
                       {"metric": "sap.SAP_score", "mode": "max"}]},
        ["objective[1].metric: 'sap.SAP_score' is not a score of the evaluated metrics (mig, "
         "reconstruction); use a key such as mig.discrete_mig and list its metric under evaluation.metrics"],
    ),
    "bad objective mode": (
        {"objective": {"metric": "mig.discrete_mig", "mode": "maximise"}},
        ["objective.mode: Input should be 'max' or 'min'"],
    ),
    "ASHA without evaluation.every": (
        {"scheduler": {"type": "asha", "grace_period": 100}},
        ["scheduler: ASHA compares trials at intermediate steps; set evaluation.every"],
    ),
    "ASHA grace period before the first evaluation": (
        {"scheduler": {"type": "asha", "grace_period": 50}, "evaluation/every": 100},
        ["scheduler.grace_period: 50 is shorter than evaluation.every (100); trials would be compared before "
         "their first evaluation"],
    ),
    "ASHA with two objectives": (
        {
            "scheduler": {"type": "asha", "grace_period": 100},
            "evaluation/every": 100,
            "objective": [
                {"metric": "mig.discrete_mig", "mode": "max"},
                {"metric": "reconstruction.reconstruction_error", "mode": "min"},
            ],
        },
        ["scheduler: ASHA needs a single objective; remove the scheduler or keep one objective"],
    ),
    "evaluation.every not a multiple of report_every": (
        {"evaluation/every": 150},
        [EVERY_150],
    ),
    "duplicate seeds": (
        {"seeds": [0, 1, 0]},
        ["seeds: each seed must appear once, got [0, 1, 0]"],
    ),
    "negative seed": (
        {"seeds": [0, -1]},
        ["seeds[1]: must be >= 0"],
    ),
    "train.seed present": (
        {"train/seed": 3},
        ["train.seed: remove it; list the seeds under `seeds:` instead"],
    ),
    "train.steps missing": (
        {"train/steps": ...},
        ["train.steps: missing; the number of VAE updates per trial, e.g. steps: 2000"],
    ),
    "train.steps searched": (
        {"train/steps": {"search": "int", "low": 100, "high": 400}},
        ["train.steps: give one integer; every trial of a study shares its length and report steps (the "
         "scheduler and progress count on them)"],
    ),
    "report_every not an integer": (
        {"train/report_every": "often"},
        ["train.report_every: Input should be a valid integer, unable to parse string as an integer"],
    ),
    "negative steps": (
        {"train/steps": -1},
        ["train.steps: must be >= 1"],
    ),
    "invalid value inside a categorical choice object": (
        {"methods/annealed_vae/capacity": {"search": "categorical", "choices": [
            {"kind": "linear", "start": 0, "end": 25, "steps": 0},
            {"kind": "constant", "value": 10},
        ]}},
        ["methods.annealed_vae.capacity.choices[0].steps: must be > 0"],
    ),
    "bad bound of a parameter nested in a categorical choice": (
        {"methods/annealed_vae/capacity": {"search": "categorical", "choices": [
            {"kind": "constant", "value": 10},
            {"kind": "linear", "start": 0, "end": 25, "steps": {"search": "int", "low": 0, "high": 1000}},
        ]}},
        ["methods.annealed_vae.capacity.choices[1].steps.low: must be > 0"],
    ),
    "malformed parameter nested in a categorical choice": (
        {"methods/annealed_vae/capacity": {"search": "categorical", "choices": [
            {"kind": "linear", "start": 0, "end": {"search": "log_float", "low": 0, "high": 9}, "steps": 10},
        ]}},
        ["methods.annealed_vae.capacity.choices[0].end.low: must be > 0"],
    ),
    "invalid list choice": (
        {"methods/devae": {"betas": {"search": "categorical", "choices": [[1, 10, 40], [10, 1]]}}},
        ["methods.devae.betas.choices[1]: betas must be strictly ascending (beta_0 < beta_1 < ...), "
         "got [10.0, 1.0]"],
    ),
    "invalid model choice": (
        {"model/latent_dim": {"search": "categorical", "choices": [10, 0]}},
        ["model.latent_dim.choices[1]: must be >= 1"],
    ),
    "invalid train parameter bound": (
        {"train/optimizer": {"lr": {"search": "log_float", "low": 1e-5, "high": 1e-3}, "eps": -1}},
        ["train.optimizer.eps: must be > 0"],
    ),
    "model numbering without a grid": (
        {"model_numbering": {"scheme": "dlib_unsupervised_study_v1", "dataset_index": 0}},
        ["model_numbering: needs search.algorithm: grid; a model number is a grid position and a seed"],
    ),
    "model numbering of a grid that is not dlib's": (
        {
            "model_numbering": {"dataset_index": 1},
            "search/algorithm": "grid",
            "seeds": [0, 50],
            "methods": {"beta_vae": {"beta": {"search": "grid", "values": [1, 2, 4, 6, 8, 16]}}},
        },
        [
            "seeds: dlib_unsupervised_study_v1 numbers seeds 0-49; [50] have no number",
            "model_numbering: dlib_unsupervised_study_v1 numbers 36 configurations (6 methods x 6 values, in "
            "dlib's order), the grid has 6; remove model_numbering or list dlib's grid (run a subset with "
            "search.num_trials instead)",
        ],
    ),
    # values that used to pass validation and fail later (an overflow in Optuna, every trial failing
    # on its data, a traceback in Optuna or a sampler, a study directory nothing else can name)
    "an infinite bound": (
        {"methods/beta_vae/beta": {"search": "log_float", "low": 1, "high": float("inf")}},
        ["methods.beta_vae.beta.high: must be a finite number (not .inf, -.inf or .nan)"],
    ),
    "a NaN bound": (
        {"methods/annealed_vae/c_max": {"search": "float", "low": float("nan"), "high": 30}},
        ["methods.annealed_vae.c_max.low: must be a finite number (not .inf, -.inf or .nan)"],
    ),
    "a dataset option of the wrong value": (
        {"dataset/options": {"cache": "bogus"}},
        ["dataset.options: cache: Input should be 'lazy' or 'packed', got 'bogus'"],
    ),
    "a dataset option its factory does not take": (
        {"dataset/options": {"colour": 1}},
        ["dataset.options: dataset 'dsprites_procedural' has no option 'colour'; its options are: sizes, "
         "cache"],
    ),
    "a name with two dots in a row": (
        {"name": "a..b"},
        ["name: 'a..b' contains '..'; the name is a directory and path name on every storage, so use "
         "letters, digits, '_', '-' and single dots"],
    ),
    "an Optuna storage that is not a URL": (
        {"storage/optuna": "notaurl"},
        ["storage.optuna: 'notaurl' is not a database URL; give a SQLAlchemy database URL such as "
         "postgresql+psycopg2://USER@HOST:5432/DB or sqlite:////absolute/path/optuna.db"],
    ),
    "an Optuna storage of an unknown database": (
        {"storage/optuna": "postgres://user@host/db"},
        ["storage.optuna: 'postgres://user@host/db' names an unknown kind of database; give a SQLAlchemy "
         "database URL such as postgresql+psycopg2://USER@HOST:5432/DB or sqlite:////absolute/path/optuna.db"],
    ),
    "a tracking server without a host": (
        {"tracking/mlflow_uri": "http://:5000"},
        ["tracking.mlflow_uri: 'http://:5000' names no host; give the server as http://HOST:PORT"],
    ),
    "seeds beyond 64 bits": (
        {"seeds": [0, 2**64], "evaluation/seed": 2**63, "search/seed": 2**32},
        ["seeds[1]: must be <= 9223372036854775807", "evaluation.seed: must be <= 9223372036854775807",
         "search.seed: must be <= 4294967295"],
    ),
    "Adam settings that are not finite or outside [0, 1)": (
        {"train/optimizer": {"betas": [0.9, 1.0], "lr": float("nan")}},
        ["train.optimizer.lr: must be a finite number (not .inf, -.inf or .nan)",
         "train.optimizer.betas[1]: must be < 1"],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_bad_spec_gives_one_line_per_problem_at_its_yaml_path(case):
    changes, expected = CASES[case]
    assert problems(spec(**changes)) == expected


def test_every_problem_of_a_spec_is_listed_at_once():
    data = spec(**{
        "methods/beta_vae/beta": {"search": "float", "low": -1, "high": 4},
        "methods/annealed_vae/gamma": -5,
        "seeds": [3, 3],
        "train/seed": 1,
        "evaluation/every": 150,
    })
    assert sorted(problems(data)) == sorted([
        "methods.beta_vae.beta.low: must be >= 0",
        "methods.annealed_vae.gamma: must be >= 0",
        "seeds: each seed must appear once, got [3, 3]",
        "train.seed: remove it; list the seeds under `seeds:` instead",
        EVERY_150,
    ])


def test_a_misspelled_key_is_listed_with_the_spec_level_problems():
    """The trial configs (where a section's unknown key is found) are built only from a valid spec;
    a typo is still reported in the same pass as the spec's own errors."""
    data = spec(**{"search/algorithm": "tpee", "train/batch_sise": 16, "model/latent_dimm": 4,
                   "methods/beta_vae/betta": 2})
    listed = problems(data)
    assert "train.batch_sise: unknown key; remove it or check its spelling" in listed
    assert "model.latent_dimm: unknown key; remove it or check its spelling" in listed
    assert "methods.beta_vae.betta: unknown key; remove it or check its spelling" in listed
    assert any(line.startswith("search.algorithm:") for line in listed)
    assert not any("batch_size" in line or "latent_dim:" in line for line in listed)  # known keys pass


def test_both_extremes_of_a_range_are_checked():
    """A range valid at its low end but not its high end is reported at ``high``."""
    data = spec(**{"methods/dip_vae_i": {"lambda_od": {"search": "float", "low": 1, "high": 5}},
                   "methods/factor_vae": {"discriminator_lr": {"search": "float", "low": -1, "high": 1}}})
    assert problems(data) == ["methods.factor_vae.discriminator_lr.low: must be > 0"]
    data = spec(**{"methods/dynamic_vae": {"alpha": {"search": "float", "low": 0.1, "high": 1.5}}})
    assert problems(data) == ["methods.dynamic_vae.alpha.high: must be <= 1"]


def test_a_non_mapping_spec_is_refused():
    with pytest.raises(ConfigError, match="expected a mapping"):
        validate_spec(["not", "a", "mapping"], "list.yaml")


# --------------------------------------------------------------------------------------------------
# files, overrides and the command line


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_load_spec_reads_overrides_and_validates_them(tmp_path):
    path = write(tmp_path / "s.yaml", spec())
    loaded = load_spec(path, parse_set(["train.steps=400", "evaluation.every=200", "seeds=[4, 5, 6]",
                                         "methods.beta_vae.beta={search: grid, values: [1, 2]}"]))
    assert loaded.steps == 400
    assert loaded.evaluation.every == 200
    assert loaded.seeds == [4, 5, 6]
    assert loaded.methods["beta_vae"]["beta"] == {"search": "grid", "values": [1, 2]}
    with pytest.raises(ConfigError) as info:
        load_spec(path, parse_set(["train.steps=-1"]))
    assert str(info.value).splitlines()[1:] == ["  train.steps: must be >= 1"]


def test_load_spec_names_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DisentError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(bad)


@pytest.fixture
def cli_main():
    from studies.cli import main  # imports Ray, Optuna and MLflow: only the tests that need it

    return main


def test_cli_run_of_a_bad_spec_exits_2_listing_the_problems_and_creates_nothing(cli_main, tmp_path, capsys):
    bad = write(tmp_path / "bad.yaml", spec(**{
        "methods/beta_vae/beta": {"search": "log_float", "low": 0, "high": 4},
        "evaluation/protocol": "dlib",
    }))
    root = tmp_path / "runs"
    assert cli_main(["run", str(bad), "--root", str(root)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert f"invalid study spec {bad}:" in captured.err
    assert "  evaluation.protocol: unknown protocol 'dlib'" in captured.err
    assert "  methods.beta_vae.beta.low: must be > 0" in captured.err
    assert not root.exists() or not any(root.iterdir())


def test_cli_run_reports_a_bad_set_override_at_its_path(cli_main, tmp_path, capsys):
    good = write(tmp_path / "good.yaml", spec())
    root = tmp_path / "runs"
    assert cli_main(["run", str(good), "--root", str(root), "--set", "train.steps=-1"]) == 2
    err = capsys.readouterr().err
    assert "train.steps: must be >= 1" in err and "Traceback" not in err
    assert cli_main(["run", str(good), "--root", str(root), "--set", "train.steps"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert not root.exists() or not any(root.iterdir())


def test_cli_run_of_a_missing_or_broken_file_exits_2(cli_main, tmp_path, capsys):
    root = tmp_path / "runs"
    assert cli_main(["run", str(tmp_path / "absent.yaml"), "--root", str(root)]) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("methods: {beta_vae: [\n")
    assert cli_main(["run", str(broken), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML" in err and "Traceback" not in err
    assert not root.exists()


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.steps=[1, 2", "--set 'train.steps=[1, 2': the value '[1, 2' is not valid YAML"),
        ("name='unclosed", "is not valid YAML"),
        ("train..steps=2", "the key 'train..steps' has an empty part"),
    ],
)
def test_a_set_override_that_cannot_be_parsed_is_one_message(assignment, message):
    with pytest.raises(DisentError) as info:
        parse_set([assignment])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_population_auto_is_one_on_the_cpu_and_with_asha_and_the_gpu_default_otherwise():
    def population(**changes: Any) -> int:
        return validate_spec(spec(**changes)).population

    assert population() == 1
    assert population(**{"resources/gpu": 0.5}) == AUTO_GPU_POPULATION
    assert population(**{"resources/gpu": 0.5, "storage/keep_checkpoints": "best"}) == 1
    asha = {"resources/gpu": 0.5, "scheduler": {"grace_period": 100}, "evaluation/every": 100}
    assert population(**asha) == 1
    assert population(**{"resources/population": 3}) == 3
    recorded = yaml.safe_load(spec_yaml(validate_spec(spec(**{"resources/gpu": 0.5})).as_run()))
    assert recorded["resources"]["population"] == AUTO_GPU_POPULATION


def test_a_population_with_asha_or_a_best_checkpoint_or_below_one_is_refused_with_the_fix():
    asha = {"resources/population": 4, "scheduler": {"grace_period": 100}, "evaluation/every": 100}
    with pytest.raises(ConfigError, match=r"resources\.population: 4 members per trial cannot be stopped one "
                                          r"by one by the ASHA scheduler.*set resources\.population: 1"):
        validate_spec(spec(**asha))
    with pytest.raises(ConfigError, match=r"keep_checkpoints: best keeps a trial's best one"):
        validate_spec(spec(**{"resources/population": 2, "storage/keep_checkpoints": "best"}))
    with pytest.raises(ConfigError, match=r"resources\.population: must be at least 1 \(or auto\), got 0"):
        validate_spec(spec(**{"resources/population": 0}))
