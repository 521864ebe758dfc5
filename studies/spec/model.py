"""The study spec: one YAML file that describes a whole experiment.

A spec names the dataset, the training budget, the methods with their search spaces, the seeds,
what to evaluate and when, the objective(s), the search algorithm, an optional ASHA scheduler, the
resources of each trial, and where tracking (MLflow) and search state (Optuna) live::

    name: quickstart
    dataset: {name: dsprites_procedural}
    model: {latent_dim: 10}
    train: {steps: 600, batch_size: 64, report_every: 100}
    methods:
      beta_vae: {beta: {search: log_float, low: 1, high: 16}}
      annealed_vae:
        c_max: {search: float, low: 5, high: 50}
        gamma: 1000
    seeds: [0, 1]
    evaluation: {protocol: fast, metrics: [mig, dci, reconstruction]}
    objective: {metric: mig.discrete_mig, mode: max}
    search: {algorithm: tpe, num_trials: 4, max_concurrent: 2}

Any value under ``model``, ``train`` and ``methods.<name>`` may be a search parameter, a mapping
with the key ``search`` (see ``PARAM_KINDS``), at any depth: inside a schedule object
(``capacity: {kind: linear, start: 0, end: {search: float, low: 5, high: 50}, steps: 1000}``) or as
a choice between whole objects (``{search: categorical, choices: [{kind: linear, ...}, ...]}``),
whose own parameters then exist only when that choice is made. Every other value is fixed.

``load_spec`` validates everything before anything starts: the spec's own fields, then every
method's config at the extremes of each numeric range and at every categorical choice, so a bad
bound is reported at its own YAML path (``methods.beta_vae.beta.low: must be > 0``). All problems
are collected into one ``ConfigError``, one line per problem.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from disent_core.config import (
    MAX_SEED,
    DatasetConfig,
    ModelConfig,
    TrainConfig,
    TrainSettings,
    read_config_file,
)
from disent_core.data.provenance import declared_provenance, require_real_data
from disent_core.data.registry import get_entry
from disent_core.errors import ConfigError
from disent_core.methods.registry import METHODS
from disent_core.metrics import METRICS, metric_names
from disent_core.metrics.protocol import PROTOCOLS
from disent_core.metrics.representation import RepresentationKind
from disent_core.registry import suggest
from disent_core.schedules import ScheduleConfig
from disent_core.validation import CONTAINER_TYPES, NOT_A_MAPPING, UNKNOWN_KEY, error_message, join_path
from studies.spec.claims import parse_claim
from studies.spec.overrides import apply_set
from studies.spec.params import (
    PARAM_KINDS,
    CategoricalParam,
    GridParam,
    is_param,
    options_of,
    parse_param,
    set_path,
    walk,
)
from studies.spec.space import SearchSpace

MAX_SAMPLER_SEED = 2**32 - 1
"""The largest seed Optuna's samplers take (numpy's ``RandomState``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------------
# the spec sections


class EvaluationSpec(_Strict):
    protocol: str = Field("fast", description="metric protocol: dlib2019, corrected or fast")
    metrics: list[str] = Field(
        default_factory=lambda: ["mig", "dci", "factor_vae", "reconstruction"],
        description="metric names (see disent_core.metrics.metric_names)",
    )
    every: int = Field(
        0, ge=0, description="evaluate every N steps as well as at the end; 0: at the end only"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="evaluation seed, the same for every trial")
    representation: RepresentationKind = Field(
        "mean", description="mean: the posterior mean; sampled: a draw from the posterior (dlib's two kinds)"
    )

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, protocol: str) -> str:
        if protocol not in PROTOCOLS:
            hint = suggest(protocol, PROTOCOLS, n=2)
            raise ValueError(f"unknown protocol {protocol!r}; {hint}valid names: {', '.join(PROTOCOLS)}")
        return protocol

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: list[str]) -> list[str]:
        valid = metric_names()
        for name in metrics:
            if name not in valid:
                hint = suggest(name, valid, n=2, cutoff=0.6)
                raise ValueError(f"unknown metric {name!r}; {hint}valid names: {', '.join(valid)}")
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"each metric must appear once, got {metrics}")
        return metrics


class Objective(_Strict):
    metric: str = Field(
        description="a score key such as mig.discrete_mig or reconstruction.reconstruction_error"
    )
    mode: Literal["max", "min"]


class SearchSettings(_Strict):
    algorithm: Literal["grid", "random", "tpe", "cmaes"] = "tpe"
    num_trials: int | None = Field(
        None, ge=1, description="configurations to try (each runs once per seed); grid: default all points"
    )
    max_concurrent: int = Field(1, ge=1, description="trials running at the same time")
    seed: int = Field(0, ge=0, le=MAX_SAMPLER_SEED, description="seed of the Optuna sampler")


class AshaSettings(_Strict):
    type: Literal["asha"] = "asha"
    grace_period: int = Field(ge=1, description="steps a trial runs before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1)


AUTO_GPU_POPULATION = 8
"""The members per Tune trial that ``resources.population: auto`` trains on a GPU. Not yet measured
on a GPU here: HFTA (Wang et al., MLSys 2021) fuses up to tens of such small models per accelerator;
``bench/population_throughput.py`` on the GPU in use prints the best N to set instead."""


class Resources(_Strict):
    """What each Tune trial holds, and how many members (configuration-and-seed units) it trains.

    ``population``: members per Tune trial, trained as one fused model (``disent_core.population``;
    docs/populations.md). ``auto`` is 1 when trials run on the CPU (``gpu: 0``), where fusing is
    slower than training the members one after another, and ``AUTO_GPU_POPULATION`` on a GPU;
    ``resolve_population`` writes the number into the spec as run. Only the packing changes: each
    member keeps its Optuna trial, MLflow run and row, and its numbers up to float rounding.
    """

    cpu: float = Field(1.0, gt=0, description="CPUs per trial (also its torch thread count)")
    gpu: float = Field(0.0, ge=0, description="GPU share per trial; 0.5 packs two trials on one GPU")
    population: int | Literal["auto"] = Field(
        "auto",
        description="members (configuration-and-seed units) per Tune trial, trained as one fused model; "
        f"auto: 1 on the CPU, {AUTO_GPU_POPULATION} on a GPU",
    )

    @field_validator("population")
    @classmethod
    def _positive(cls, population: int | str) -> int | str:
        if isinstance(population, int) and population < 1:
            raise ValueError(f"must be at least 1 (or auto), got {population}")
        return population


class Tracking(_Strict):
    """Where a study is tracked (MLflow), and whether each trial's trained model is logged there.

    ``log_model`` gives each completed trial's run a logged MLflow PyTorch model (``model``, with a
    signature): a module whose forward maps images (N, C, H, W) in [0, 1] to the representation
    (N, d), the whole trained method as its ``method`` attribute
    (``studies/orchestration/logged_model.py``). Its cost is the method's weights per trial: about
    3 MB for the standard model at 10 latents, 23 MB for FactorVAE (its discriminator), 6.5 MB for
    DiD; it also stays in Tune's final checkpoint. The model is built from the final checkpoint, so
    it needs one (``storage.keep_checkpoints`` other than ``none``).
    """

    mlflow_uri: str | None = Field(None, description="tracking URI; default sqlite under the runs root")
    experiment: str | None = Field(None, description="MLflow experiment; default the study name")
    log_model: bool = Field(
        False,
        description="log each completed trial's final model as an MLflow PyTorch model (images -> "
        "representation), loadable with mlflow.pytorch.load_model; costs the model's weights per trial, "
        "about 3 MB for the standard model (FactorVAE: 23 MB), in MLflow and in Tune's final checkpoint; "
        "needs a final checkpoint (storage.keep_checkpoints other than none)",
    )

    @field_validator("mlflow_uri")
    @classmethod
    def _server_has_a_host(cls, uri: str | None) -> str | None:
        if uri is not None and urlsplit(uri).scheme in ("http", "https") and not urlsplit(uri).hostname:
            raise ValueError(f"{uri!r} names no host; give the server as http://HOST:PORT")
        return uri


KeepCheckpoints = Literal["final", "best", "all", "none"]
"""What ``storage.keep_checkpoints`` may say (see ``Storage``)."""


class Storage(_Strict):
    """Where a study's state lives, and how many training checkpoints each trial leaves.

    ``keep_checkpoints`` (a checkpoint is the model with its Adam state, about 8 MB for the standard
    model at 10 latents):

    - ``final`` (the default): Tune keeps each trial's latest checkpoint only, so a retried or
      resumed trial continues from it and a finished one ends with its final checkpoint, which also
      goes to MLflow with the figures. Two copies per trial: the final model is the one the scores
      describe, and the one ``disent-study evaluate`` can score again under another protocol.
    - ``best``: as ``final``, and Tune also keeps the checkpoint of the best score of the first
      objective among the evaluated steps (``evaluation.every``); MLflow still gets the final.
    - ``all``: Tune keeps every checkpoint (``train.checkpoint_every``), for analyses over training.
    - ``none``: no checkpoint is kept anywhere; the trial's figures, config and scores still reach
      Tune's storage and MLflow. A trial that does not finish (a killed worker or driver) starts
      again from step 0 on retry or ``resume``. For the largest grids, where even two copies of
      every model add up to hundreds of GB.
    """

    optuna: str | None = Field(None, description="Optuna storage URL; default sqlite in the study directory")
    checkpoints: str | None = Field(
        None, description="Ray Tune storage_path (NFS path or s3://...); default inside the study directory"
    )
    keep_checkpoints: KeepCheckpoints = Field(
        "final",
        description="training checkpoints a trial leaves: final (Tune's latest, which ends as the final, and "
        "the final in MLflow), best (also the best-scored by the first objective), all, or none (figures "
        "and scores only; an unfinished trial restarts from step 0)",
    )

    @field_validator("optuna")
    @classmethod
    def _database_url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        hint = ("give a SQLAlchemy database URL such as postgresql+psycopg2://USER@HOST:5432/DB or "
                "sqlite:////absolute/path/optuna.db")
        try:
            make_url(url).get_dialect()
        except NoSuchModuleError:
            raise ValueError(f"{url!r} names an unknown kind of database; {hint}") from None
        except ArgumentError:
            raise ValueError(f"{url!r} is not a database URL; {hint}") from None
        return url


class ReportSettings(_Strict):
    """How ``disent-study report`` judges tolerance and claims (see ``studies.report``)."""

    tolerance_threshold: float = Field(
        0.1, gt=0, lt=1, description="a setting is tolerated when its median is within this share of the best"
    )
    bootstrap: int = Field(1000, ge=100, description="bootstrap resamples over seeds for intervals")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    claims: list[str] = Field(
        default_factory=list,
        description="claims to check, e.g. 'devae tolerance(mig.discrete_mig) > beta_vae tolerance(...)'",
    )


class ModelNumbering(_Strict):
    """disentanglement_lib's model numbering of ``unsupervised_study_v1``:
    ``1800 * dataset_index + 50 * config_index + seed`` (36 configurations of 50 seeds per dataset).

    The config index is the trial's grid position and the seed its seed value (dlib's seeds are
    0-49), so a subset of the seeds or of the grid points (``search.num_trials``) keeps dlib's numbers.
    """

    CONFIGS: ClassVar[int] = 36
    SEEDS: ClassVar[int] = 50
    scheme: Literal["dlib_unsupervised_study_v1"] = "dlib_unsupervised_study_v1"
    dataset_index: int = Field(0, ge=0, description="position of the dataset in dlib's dataset list")

    def number(self, config_index: int, seed: int) -> int:
        return self.dataset_index * self.CONFIGS * self.SEEDS + self.SEEDS * config_index + seed


class MethodSteps(_Strict):
    """A method whose trials train for a different number of VAE updates than ``train.steps``:
    ``steps`` outright, or ``fraction`` of ``train.steps`` (which follows ``--set train.steps=...``)."""

    steps: int | None = Field(None, ge=1, description="VAE parameter updates of this method's trials")
    fraction: float | None = Field(None, gt=0, description="or this share of train.steps (rounded)")
    note: str = Field(
        min_length=1, description="why (recorded as train.steps_note in every trial of the method)"
    )

    @model_validator(mode="after")
    def _one_length(self) -> MethodSteps:
        if (self.steps is None) == (self.fraction is None):
            raise ValueError("give either steps or fraction")
        return self

    def of(self, study_steps: int) -> int:
        """This method's steps in a study whose ``train.steps`` is ``study_steps``."""
        return self.steps if self.steps is not None else max(1, round(study_steps * self.fraction))


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    dataset: DatasetConfig
    model: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any]
    methods: dict[str, dict[str, Any]] = Field(min_length=1)
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] = Field(default_factory=lambda: [0], min_length=1)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    objective: Objective | list[Objective]
    search: SearchSettings = Field(default_factory=SearchSettings)
    scheduler: AshaSettings | None = None
    resources: Resources = Field(default_factory=Resources)
    tracking: Tracking = Field(default_factory=Tracking)
    storage: Storage = Field(default_factory=Storage)
    max_failures: int = Field(2, ge=0, description="retries of a trial whose process dies")
    model_numbering: ModelNumbering | None = None
    method_steps: dict[str, MethodSteps] = Field(
        default_factory=dict, description="per-method training length, with the reason recorded"
    )
    report: ReportSettings = Field(default_factory=ReportSettings)

    @field_validator("name")
    @classmethod
    def _one_path_component(cls, name: str) -> str:
        if ".." in name:
            raise ValueError(
                f"{name!r} contains '..'; the name is a directory and path name on every storage, so use "
                "letters, digits, '_', '-' and single dots"
            )
        return name

    @property
    def objectives(self) -> list[Objective]:
        return self.objective if isinstance(self.objective, list) else [self.objective]

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def steps(self) -> int:
        return int(self.train["steps"])

    def steps_of(self, method: str) -> int:
        """VAE updates of ``method``'s trials: ``method_steps`` where given, else ``train.steps``."""
        return self.method_steps[method].of(self.steps) if method in self.method_steps else self.steps

    @property
    def report_every(self) -> int:
        return int(self.train.get("report_every", 100))

    @property
    def population(self) -> int:
        """Members per Tune trial: ``resources.population``, with ``auto`` resolved.

        ``auto`` is 1 on the CPU (``resources.gpu`` 0), with an ASHA scheduler (which stops whole
        trials) and under ``storage.keep_checkpoints: best`` (a best checkpoint per member), else
        ``AUTO_GPU_POPULATION``.
        """
        chosen = self.resources.population
        if chosen != "auto":
            return int(chosen)
        if self.resources.gpu == 0 or self.scheduler is not None or self.storage.keep_checkpoints == "best":
            return 1
        return AUTO_GPU_POPULATION

    def as_run(self) -> StudySpec:
        """This spec as a study runs it: ``resources.population`` a number (what ``spec.yaml`` records)."""
        resources = self.resources.model_copy(update={"population": self.population})
        return self.model_copy(update={"resources": resources})


# --------------------------------------------------------------------------------------------------
# validation


# a union member's label in an error location: a type (float, list[...], constrained-float) or a
# model class (Objective in ``objective: Objective | list[Objective]``)
_UNION_MEMBER = re.compile(
    r"^(float|int|str|bool|list|dict|none)$|[\[\-]" r"|^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*$"
)
# pydantic puts the tag of a discriminated union member into an error's location ("linear" in
# method.capacity.linear.steps); these are the schedule tags, the method and parameter tags are above
_SCHEDULE_KINDS = tuple(
    member.model_fields["kind"].default for member in typing.get_args(typing.get_args(ScheduleConfig)[0])
)


def _errors(exc: ValidationError, prefix: tuple = ()) -> list[tuple[tuple, str]]:
    """``(path, message)`` per problem, without pydantic's union-member labels in the path.

    When a value failed every member of a union (``beta: float | schedule``), only the complaint
    about the member of the value's own kind is kept.
    """
    found: dict[tuple, list[tuple[str, str]]] = {}
    for err in exc.errors():
        loc = tuple(
            p for i, p in enumerate(err["loc"])
            if (i and err["loc"][i - 1] == "method_steps")  # a key that names a method
            or (p not in PARAM_KINDS and p not in METHODS and p not in _SCHEDULE_KINDS
                and not (isinstance(p, str) and _UNION_MEMBER.search(p)))
        )
        found.setdefault((*prefix, *loc), []).append((err["type"], error_message(err)))
    out = []
    for path, errors in found.items():
        # a member of the value's own kind complained deeper down: the other members' "should be
        # a valid list/dictionary" are noise
        deeper = any(len(other) > len(path) and other[: len(path)] == path for other in found)
        specific = [(kind, m) for kind, m in errors if not (deeper and kind in CONTAINER_TYPES)]
        specific = [(kind, m) for kind, m in specific if kind not in NOT_A_MAPPING] or specific
        out.extend((path, m) for m in dict.fromkeys(m for _, m in specific))
    return out


def _parse_params(section: tuple, template: Any, problems: list[str]) -> bool:
    ok = True
    for found in walk(template, nested=False, spec_path=section):
        path, raw = found.spec_path, found.raw
        try:
            param = parse_param(raw)
        except ValidationError as exc:
            problems.extend(f"{join_path(p)}: {m}" for p, m in _errors(exc, path))
            ok = False
            continue
        if isinstance(param, CategoricalParam | GridParam):
            key = "choices" if isinstance(param, CategoricalParam) else "values"
            # Optuna stores a choice by its value (a list or mapping by its JSON text), so two equal
            # choices would be one; a grid would also run the same configuration twice
            seen: list[Any] = []
            for i, choice in enumerate(options_of(param)):
                ident = json.dumps(choice, sort_keys=True) if isinstance(choice, dict | list) else choice
                if ident in seen:
                    problems.append(
                        f"{join_path((*path, key, i))}: repeats {key}[{seen.index(ident)}]; "
                        "list each value once"
                    )
                    ok = False
                seen.append(ident)
                ok &= _parse_params((*path, key, i), choice, problems)
    return ok


def _probes(template: Any) -> Iterator[tuple[Any, dict[tuple, str]]]:
    """Concrete templates covering each parameter's extremes and choices, with where each came from.

    Yields ``(concrete, origin)`` where ``origin`` maps a concrete path to the suffix (``low``,
    ``high``, ``choices[2]``) of the spec path that produced the value there.
    """
    params = [(found.spec_path, found.raw) for found in walk(template, nested=False)]
    if not params:
        yield template, {}
        return
    path, raw = params[0]
    param = parse_param(raw)
    if isinstance(param, CategoricalParam | GridParam):
        key = "choices" if isinstance(param, CategoricalParam) else "values"
        candidates = [(choice, f"{key}[{i}]") for i, choice in enumerate(options_of(param))]
    else:
        candidates = [(param.low, "low"), (param.high, "high")]
    for value, suffix in candidates:
        for concrete, origin in _probes(set_path(template, path, value)):
            yield concrete, {**origin, path: suffix}


def _locate(loc: tuple, origin: dict[tuple, str], spec_prefix: dict[str, tuple]) -> str:
    """The spec path of an error at ``loc`` in a probe config: the concrete path with, after every
    search parameter on the way, the suffix the probe took (``capacity.choices[1].steps.low``)."""
    if not loc:
        return "<root>"
    head = str(loc[0])
    out = join_path(spec_prefix.get(head, (head,)))
    for k in range(1, len(loc)):
        part = loc[k]
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
        suffix = origin.get((head, *loc[1 : k + 1]))
        if suffix is not None:
            out += f".{suffix}"
    return out


def _check_section_keys(data: dict, problems: list[str]) -> None:
    """The unknown keys of ``model``, ``train`` and each known ``methods.<name>``, for a spec that
    does not validate (the trial configs, which would report them, are checked once it does)."""
    sections: list[tuple[tuple, Any, type]] = [(("model",), data.get("model"), ModelConfig),
                                               (("train",), data.get("train"), TrainSettings)]
    methods = data.get("methods")
    if isinstance(methods, dict):
        sections += [(("methods", name), template, METHODS[name].config_class)
                     for name, template in methods.items() if name in METHODS]
    for path, template, config in sections:
        if isinstance(template, dict):
            problems.extend(f"{join_path((*path, key))}: {UNKNOWN_KEY}" for key in template
                            if key not in config.model_fields)


def _check_method(spec: StudySpec, method: str, problems: list[str]) -> None:
    """Validate the trial configs that ``method`` can produce, at every extreme and choice."""
    template = {
        "dataset": spec.dataset.model_dump(),
        "model": spec.model,
        # a missing train.steps is reported by _check_consistency; the placeholder keeps it one line
        "train": {"steps": 1, **spec.train, "seed": spec.seeds[0]},
        "method": {"name": method, **spec.methods[method]},
    }
    prefix = {"model": ("model",), "train": ("train",), "method": ("methods", method)}
    seen: set[str] = set()
    for concrete, origin in _probes(template):
        try:
            TrainConfig.model_validate(concrete)
        except ValidationError as exc:
            for loc, msg in _errors(exc):
                line = f"{_locate(loc, origin, prefix)}: {msg}"
                if line not in seen:
                    seen.add(line)
                    problems.append(line)
        if len(seen) >= 20:
            return


def _check_consistency(spec: StudySpec, problems: list[str]) -> None:
    for name in spec.methods:
        if name not in METHODS:
            hint = suggest(name, METHODS)
            problems.append(f"methods.{name}: unknown method; {hint}valid names: {', '.join(METHODS)}")
        elif "name" in spec.methods[name]:
            problems.append(f"methods.{name}.name: remove it; the method's name is its key under methods")
        elif spec.evaluation.representation == "sampled" and not METHODS[name].has_posterior():
            problems.append(
                f"methods.{name}: has no posterior to sample from; score it with evaluation.representation: "
                "mean, or run it in a study of its own"
            )
    for name in spec.method_steps:
        if name not in spec.methods:
            problems.append(
                f"method_steps.{name}: not a method of this study; its methods: {', '.join(spec.methods)}"
            )
    if "seed" in spec.train:
        problems.append("train.seed: remove it; list the seeds under `seeds:` instead")
    if "steps" not in spec.train:
        problems.append("train.steps: missing; the number of VAE updates per trial, e.g. steps: 2000")
    for key in ("steps", "report_every"):
        if is_param(spec.train.get(key)):
            problems.append(
                f"train.{key}: give one integer; every trial of a study shares its length and report "
                "steps (the scheduler and progress count on them)"
            )
    if len(set(spec.seeds)) != len(spec.seeds):
        problems.append(f"seeds: each seed must appear once, got {spec.seeds}")
    if spec.tracking.log_model and spec.storage.keep_checkpoints == "none":
        problems.append(
            "tracking.log_model: the model is built from the final checkpoint, which "
            "storage.keep_checkpoints: none does not keep; set keep_checkpoints: final or log_model: false"
        )
    every, report = spec.evaluation.every, spec.train.get("report_every", 100)
    # a report_every that is not an integer is reported by the trial config check
    if every and isinstance(report, int) and not isinstance(report, bool) and report > 0 and every % report:
        problems.append(
            f"evaluation.every: {every} is not a multiple of train.report_every ({report}); "
            "evaluations happen at report steps"
        )
    evaluated = set(spec.evaluation.metrics)
    for i, objective in enumerate(spec.objectives):
        where = "objective" if not isinstance(spec.objective, list) else f"objective[{i}]"
        name, _, key = objective.metric.partition(".")
        if name not in evaluated or not key:
            problems.append(
                f"{where}.metric: {objective.metric!r} is not a score of the evaluated metrics "
                f"({', '.join(spec.evaluation.metrics)}); use a key such as mig.discrete_mig and list "
                "its metric under evaluation.metrics"
            )
        elif key not in METRICS[name].keys:
            problems.append(
                f"{where}.metric: {name} has no score {key!r}; its scores are "
                + ", ".join(f"{name}.{k}" for k in METRICS[name].keys)
            )
    if isinstance(spec.resources.population, int) and spec.resources.population > 1:
        if spec.scheduler is not None:
            problems.append(
                f"resources.population: {spec.resources.population} members per trial cannot be stopped "
                "one by one by the ASHA scheduler, which stops whole Tune trials; set "
                "resources.population: 1 (or auto, which is 1 with a scheduler) or remove the scheduler"
            )
        if spec.storage.keep_checkpoints == "best":
            problems.append(
                f"resources.population: {spec.resources.population} members share one checkpoint per step, "
                "and storage.keep_checkpoints: best keeps a trial's best one, which differs by member; "
                "keep final or all checkpoints, or set resources.population: 1"
            )
    if spec.scheduler is not None:
        if len(spec.objectives) > 1:
            problems.append(
                "scheduler: ASHA needs a single objective; remove the scheduler or keep one objective"
            )
        if not every:
            problems.append("scheduler: ASHA compares trials at intermediate steps; set evaluation.every")
        elif spec.scheduler.grace_period < every:
            problems.append(
                f"scheduler.grace_period: {spec.scheduler.grace_period} is shorter than evaluation.every "
                f"({every}); trials would be compared before their first evaluation"
            )
    if spec.search.algorithm == "grid":
        sections = [("model", spec.model), ("train", spec.train)]
        sections += [(f"methods.{m}", t) for m, t in spec.methods.items()]
        for section, template in sections:
            for found in walk(template):
                path, raw = found.spec_path, found.raw
                if raw.get("search") not in ("grid", "categorical"):
                    problems.append(
                        f"{section}.{join_path(path)}: grid search needs explicit values; "
                        f"use {{search: grid, values: [...]}} or another search.algorithm"
                    )


def _check_data(spec: StudySpec, problems: list[str]) -> None:
    """A comparable protocol refuses data that the spec already declares procedural (trials check
    what they really load, e.g. a Scream painting that turned out missing, before training)."""
    protocol = PROTOCOLS[spec.evaluation.protocol]
    if not protocol.comparable:
        return
    declared = declared_provenance(spec.dataset.name, spec.dataset.options)
    if declared is None:
        return
    try:
        require_real_data(get_entry(spec.dataset.name).name, declared, protocol.name)
    except ConfigError as exc:
        problems.append(f"dataset: {exc}")


def _check_numbering(spec: StudySpec, problems: list[str]) -> None:
    """dlib's numbers exist for its 36-point grid and seeds 0-49 only (checked on an otherwise valid spec)."""
    numbering = spec.model_numbering
    if numbering is None:
        return
    if spec.search.algorithm != "grid":
        problems.append(
            "model_numbering: needs search.algorithm: grid; a model number is a grid position and a seed"
        )
        return
    outside = [s for s in spec.seeds if s >= numbering.SEEDS]
    if outside:
        problems.append(
            f"seeds: {numbering.scheme} numbers seeds 0-{numbering.SEEDS - 1}; {outside} have no number"
        )
    if "factor_vae" in spec.methods and spec.steps_of("factor_vae") != spec.steps // 2:
        problems.append(
            f"method_steps.factor_vae: disentanglement_lib's FactorVAE advances its global step on both "
            f"optimisers, so its train.steps = {spec.steps} ran {spec.steps // 2} VAE updates; to compare "
            "with dlib's models add method_steps: {factor_vae: {fraction: 0.5, note: ...}}"
        )
    points = len(SearchSpace(spec).grid)
    if points != numbering.CONFIGS:
        problems.append(
            f"model_numbering: {numbering.scheme} numbers {numbering.CONFIGS} configurations (6 methods x 6 "
            f"values, in dlib's order), the grid has {points}; remove model_numbering or list dlib's grid "
            "(run a subset with search.num_trials instead)"
        )


def _check_claims(spec: StudySpec, problems: list[str]) -> None:
    """Each ``report.claims`` entry must parse, name methods of the spec and scores it evaluates."""

    evaluated = set(spec.evaluation.metrics)
    for i, text in enumerate(spec.report.claims):
        try:
            claim = parse_claim(text)
        except ValueError as exc:
            problems.append(f"report.claims[{i}]: {exc}")
            continue
        terms = [claim.lhs] + ([claim.rhs] if not isinstance(claim.rhs, float) else [])
        for term in terms:
            if term.method not in spec.methods:
                problems.append(
                    f"report.claims[{i}]: method {term.method!r} is not in this study; "
                    f"its methods: {', '.join(spec.methods)}"
                )
            name, _, key = term.metric.partition(".")
            if name not in evaluated:
                problems.append(
                    f"report.claims[{i}]: {term.metric} is not evaluated; list {name} under "
                    f"evaluation.metrics ({', '.join(spec.evaluation.metrics)})"
                )
            elif key not in METRICS[name].keys:
                problems.append(
                    f"report.claims[{i}]: {name} has no score {key!r}; its scores are "
                    + ", ".join(f"{name}.{k}" for k in METRICS[name].keys)
                )


def validate_spec(data: Any, source: str = "spec") -> StudySpec:
    """A ``StudySpec`` from a mapping, or one ``ConfigError`` listing every problem by YAML path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with name, dataset, train, methods and objective")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for path, msg in _errors(exc):
            if path and path[0] == "dataset" and "unknown dataset" in msg:
                path = ("dataset", "name")
            lines.append(f"{join_path(path)}: {msg}")
        # the search parameters need no valid spec around them: report theirs too (the trial
        # configs they produce are checked once the rest is valid)
        sections = [(("model",), data.get("model")), (("train",), data.get("train"))]
        methods = data.get("methods")
        sections += [(("methods", m), t) for m, t in methods.items()] if isinstance(methods, dict) else []
        for section, template in sections:
            if isinstance(template, dict):
                _parse_params(section, template, lines)
        _check_section_keys(data, lines)
        unique = list(dict.fromkeys(lines))
        raise ConfigError(f"invalid study spec {source}:\n  " + "\n  ".join(unique)) from None
    problems: list[str] = []
    _check_consistency(spec, problems)
    _check_data(spec, problems)
    if spec.report.claims:
        _check_claims(spec, problems)
    sections_ok = _parse_params(("model",), spec.model, problems)
    sections_ok &= _parse_params(("train",), spec.train, problems)
    for name, template in spec.methods.items():
        if name in METHODS and _parse_params(("methods", name), template, problems) and sections_ok:
            _check_method(spec, name, problems)
    if not problems:
        _check_numbering(spec, problems)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ConfigError(f"invalid study spec {source}:\n  " + "\n  ".join(unique))
    return spec


def load_spec(path: str | Path, overrides: list[tuple[list[str], Any]] | None = None) -> StudySpec:
    """Read, override (``--set``) and validate a study spec file."""
    data = read_config_file(path, expected="a mapping with name, dataset, train, methods and objective")
    if overrides:
        data = apply_set(data, overrides)
    return validate_spec(data, str(path))


def spec_yaml(spec: StudySpec) -> str:
    """The spec as YAML, every default filled in (what the study directory records)."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)

