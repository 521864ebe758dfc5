"""What a study will cost, before anything starts: ``disent-study run SPEC --dry-run``.

``estimate_study`` reads only the spec: nothing is trained, no data is loaded, Ray is not started
and nothing is written. It gives

- the trials: configurations (``SearchSpace.num_configurations``: ``search.num_trials``, else the
  whole grid) x seeds, the resources of each and how many run at once;
- the storage each finished trial leaves, and the total: its checkpoints (one checkpoint is the
  model's weights and buffers plus Adam's two moment estimates per weight, the model built on
  PyTorch's ``meta`` device, which allocates nothing; times the checkpoints ``storage.
  keep_checkpoints`` keeps in Tune's storage and in MLflow, ``trainable.checkpoints_kept``), its
  final figures (one copy in Tune's storage, one in MLflow), its MLflow metric rows (every report
  logs each loss term, the information of each latent dimension, each schedule and learning rate,
  images/s and the active dimensions; every evaluation each score), Tune's result logs, and under
  ``tracking.log_model`` the model's weights twice (the logged model, and in the final checkpoint);
- the training compute: images (``train.steps`` x ``train.batch_size``) over a throughput per
  trial, as hours per trial, device-hours (hours x the trial's CPUs or GPU share) and the wall
  clock at ``search.max_concurrent`` trials at once. Evaluation time is not counted;
- under ``resources.population`` N above 1 (``StudySpec.population``), the Tune trials: the members
  (configuration-and-seed units, the trials above) of one population key
  (``disent_core.population.population_key``: one method, equal model and train settings but the
  seed) train up to N to a Tune trial as one fused model, a member whose method does not fuse
  alone in its own, so a key of M members needs at least ceil(M / N) Tune trials: the count given,
  the least any packing of the members reaches. Over every point of a grid each configuration's key
  is known; otherwise the configurations are taken to fall to the methods as the search weighs them
  (grid points per method for a grid subset, equally for a sampled search) and each method's to
  one key, which the dry run says beside the count. The compute of a
  population needs its images/s, all N members' together, which is not known here: fused
  throughput has not been measured on a GPU (on the 2-core CPU of this project a population of 4
  trained at 0.54x the images/s of one model, docs/populations.md). Given it
  (``population_images_per_sec``, what ``bench/population_throughput.py`` prints as
  ``population_images_per_sec[N]``), each Tune trial is costed as a full population (an upper
  bound for a partly filled one) and the members that train alone at the single trial's images/s;
  without it only the population-1 figures are given, with the formula that converts them.

The configurations costed are those of the search space: every grid point (the grid's mean), or
for the other searches every method at each end of every numeric range and at every categorical
choice, the largest of each method taken (an upper bound) and the methods weighed equally. The
byte and throughput constants below were measured on this project's standard model; how is said
beside each.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

import torch

from disent_core.config import TrainConfig
from disent_core.memory import SMALLEST_OBSERVATION, estimate_training_memory, format_bytes
from disent_core.methods.base import Method, MethodContext
from disent_core.methods.registry import build_method
from disent_core.metrics import METRICS
from disent_core.population import population_key, supported_methods
from studies.orchestration.trainable import checkpoints_kept
from studies.spec import StudySpec
from studies.spec.space import METHOD, SearchSpace

CHECKPOINT_TENSOR_BYTES = 300
"""``torch.save``'s bytes per tensor beyond its data (zip record, pickle), and ``CHECKPOINT_BASE_BYTES``
for the rest of a trainer checkpoint (config, schedules, stream and generator states): fitted to
``disent_core.train`` checkpoints (the standard model at 10 latents: 8,324,496 bytes for 690,517
weights; FactorVAE with its discriminator 68,556,984); the estimate is within 0.05 % of both, and of
DeVAE's, at base_channels 32 and 8. (DEFT's and DiD's are overestimated early in training, before
every network has stepped.)"""
CHECKPOINT_BASE_BYTES = 7_000
FIGURE_BYTES_PER_ROW = 4_400
"""Bytes per row of the trial's latent-traversal PNG (one row per dimension shown: up to 16, else 10),
and ``FIGURE_BYTES_FIXED`` for its reconstructions, KL plot, config and scores: measured on the final
files of a quickstart trial (dSprites, grey, ``trainable.FIGURE_CELL`` 48-pixel cells, 64 grey levels,
KL plot at 80 dpi: 43,843, 4,655, 11,821 and 1,503 bytes at 10 latents). RGB data gives more: a
beta-VAE on the procedural Shapes3D, 61,791 bytes of traversal."""
FIGURE_BYTES_FIXED = 18_000
METRIC_ROW_BYTES = 250
"""Bytes of one MLflow metric row in the SQLite tracking store (its ``metrics`` table and primary-key
index): measured by logging 5,100 rows of 17 keys in batches into a fresh ``mlflow.db``, 248-251 B
per row. A PostgreSQL store is of the same order."""
TUNE_LOG_BYTES_PER_VALUE = 85
"""Bytes per reported value per report in Tune's trial logs (``result.json``, ``progress.csv`` and the
TensorBoard events), with ``TUNE_FIXED_KEYS`` values Tune adds to every report (times, ids, host,
config): measured on a quickstart trial, 33,109 bytes for 10 reports of 38 values."""
TUNE_FIXED_KEYS = 15
TRIAL_KEYS = 5
"""Keys every report of a trial holds besides its series and scores (step, evaluated, resources,
dataset provenance)."""
CPU_IMAGES_PER_SEC = 600
"""Training images per second of one trial per CPU thread: the ``images_per_sec`` of a quickstart
trial (AnnealedVAE, standard model, 10 latents, batch 64, 1 thread) on the 2-core development
machine, 616-627 (``bench/train_throughput.py --threads 1`` gave 234-324 while other processes
loaded both cores). More threads are taken to scale linearly, which is optimistic."""
GPU_IMAGES_PER_SEC = 5_000
"""ASSUMED, not measured: training images per second of one trial on its GPU share (the standard
model is small; at batch 64 a current datacenter GPU is bound by kernel launches rather than
arithmetic). Pass ``--images-per-sec`` with a figure measured on your GPUs (the ``images_per_sec``
series of any trial)."""
MAX_PROBES = 512
"""Configurations costed at most for a non-grid search."""


@dataclass(frozen=True)
class TrialCost:
    """What one finished trial of a configuration leaves and needs.

    Attributes:
        parameters: the model's weights (every network of the method).
        checkpoint_bytes: one training checkpoint file.
        tune_checkpoints: checkpoints Tune keeps of the trial.
        mlflow_checkpoints: checkpoints uploaded to MLflow (the final one, or none).
        figure_bytes: one copy of the final figures, config and scores.
        metric_rows: MLflow metric rows.
        tune_log_bytes: Tune's result logs of the trial.
        images: training images (steps x batch size).
        model_bytes: the weights of the MLflow model the trial logs (``tracking.log_model``), else 0.
    """

    parameters: int
    checkpoint_bytes: int
    tune_checkpoints: int
    mlflow_checkpoints: int
    figure_bytes: int
    metric_rows: int
    tune_log_bytes: int
    images: int
    model_bytes: int = 0

    @property
    def checkpoints(self) -> int:
        """Checkpoint copies the trial leaves, in Tune's storage and in MLflow."""
        return self.tune_checkpoints + self.mlflow_checkpoints

    @property
    def storage(self) -> int:
        """Bytes the finished trial leaves: checkpoints, two copies of the figures, metric rows, logs."""
        return (self.checkpoint_bytes * self.checkpoints + 2 * self.figure_bytes
                + self.metric_rows * METRIC_ROW_BYTES + self.tune_log_bytes + 2 * self.model_bytes)


@dataclass(frozen=True)
class PopulationGroup:
    """Members that can share Tune trials: one population key, or one method's members that train alone.

    Attributes:
        method: their method.
        members: configurations x seeds.
        images: training images of all of them together.
        fused: whether they train as populations (else one member per Tune trial).
    """

    method: str
    members: int
    images: int
    fused: bool

    def tune_trials(self, population: int) -> int:
        """Tune trials the members need at ``population`` members per Tune trial."""
        return math.ceil(self.members / population) if self.fused else self.members


@dataclass(frozen=True)
class StudyBudget:
    """The estimate of a whole study (see the module docstring).

    Attributes:
        spec: the study spec.
        configurations: configurations the search proposes.
        trials: configurations x seeds.
        per_trial: the mean cost of one trial.
        costed: configurations costed to get it.
        exhaustive: whether those were every configuration the space can produce.
        images_per_sec: the throughput of one trial used for the compute.
        throughput_note: where that throughput comes from.
        storage_without_checkpoints: per trial, what ``keep_checkpoints: none`` would leave.
        population: members per Tune trial (``StudySpec.population``).
        groups: under a population above 1, the members by population key (empty at 1).
        groups_exact: whether ``groups`` hold every configuration by its population key (else the
            configurations' split over the methods is assumed, and over keys unknown).
        population_images_per_sec: a full population's images/s, all its members' together; None:
            not known.
        member_memory: the least device memory of one fused member (``disent_core.memory``), the
            largest over the population keys; 0 when nothing fuses.
    """

    spec: StudySpec
    configurations: int
    trials: int
    per_trial: TrialCost
    costed: int
    exhaustive: bool
    images_per_sec: float
    throughput_note: str
    storage_without_checkpoints: float
    population: int = 1
    groups: tuple[PopulationGroup, ...] = ()
    groups_exact: bool = True
    population_images_per_sec: float | None = None
    member_memory: int = 0

    @property
    def storage(self) -> float:
        """Bytes the whole study leaves."""
        return self.per_trial.storage * self.trials

    @property
    def trial_hours(self) -> float:
        """Hours of training of one trial."""
        return self.per_trial.images / self.images_per_sec / 3600

    @property
    def wall_hours(self) -> float:
        """Hours of the whole study with ``search.max_concurrent`` trials at once."""
        return self.trial_hours * math.ceil(self.trials / min(self.spec.search.max_concurrent, self.trials))

    @property
    def tune_trials(self) -> int:
        """Tune trials of the study: one per member at population 1, else those of ``groups``."""
        if not self.groups:
            return self.trials
        return sum(group.tune_trials(self.population) for group in self.groups)

    @property
    def fused_members(self) -> int:
        """Members that train in populations."""
        return sum(group.members for group in self.groups if group.fused)

    def _tune_trial_hours(self) -> list[tuple[float, int]]:
        """(hours of one of its Tune trials, how many) per group: a population costed as full, a member
        that trains alone at ``images_per_sec`` (the group's mean when its members' steps differ)."""
        rate = self.population_images_per_sec
        hours = []
        for group in self.groups:
            per_member = group.images / group.members / 3600
            if group.fused:
                if rate is None:
                    raise ValueError("a population's images per second is not known")
                hours.append((self.population * per_member / rate, group.tune_trials(self.population)))
            else:
                hours.append((per_member / self.images_per_sec, group.members))
        return hours

    @property
    def population_hours(self) -> tuple[float, float]:
        """(the longest Tune trial, all Tune trials together) in hours, with ``population_images_per_sec``.

        Raises:
            ValueError: ``population_images_per_sec`` is not known and some members fuse.
        """
        hours = self._tune_trial_hours()
        return max(h for h, _ in hours), sum(h * n for h, n in hours)

    @property
    def population_wall_hours(self) -> float:
        """About the hours of the whole study with populations at ``search.max_concurrent`` Tune trials at
        once: their total over the Tune trials at once, at least the longest one."""
        longest, total = self.population_hours
        return max(longest, total / min(self.spec.search.max_concurrent, self.tune_trials))


class _Undecided(Exception):
    def __init__(self, name: str, options: list[Any]) -> None:
        self.name, self.options = name, options


class _Probe:
    """Stands in for an Optuna trial in ``SearchSpace.define_by_run``: answers each suggestion from
    ``plan`` and stops at the first parameter the plan has no value for, with its options (each end
    of a numeric range, every categorical choice)."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.params: dict[str, Any] = {}

    def _pick(self, name: str, options: list[Any]) -> Any:
        if name not in self.plan:
            raise _Undecided(name, options)
        self.params[name] = self.plan[name]
        return self.plan[name]

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        return self._pick(name, [low, high])

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        return self._pick(name, [low, high])

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._pick(name, list(choices))

    def set_user_attr(self, key: str, value: Any) -> None:
        """Grid points are stored as user attributes; a probe keeps none."""


def _assignments(space: SearchSpace, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Trial configs covering the space: every grid point, or every end and choice of every parameter.

    Returns:
        The assignments (at most ``limit``) and whether they are all there are.
    """
    done: list[dict[str, Any]] = []
    todo: list[dict[str, Any]] = [{}]
    while todo:
        if len(done) >= limit:
            return done, False
        plan = todo.pop()
        probe = _Probe(plan)
        try:
            extra = space.define_by_run(probe)
        except _Undecided as need:
            todo.extend({**plan, need.name: value} for value in reversed(need.options))
            continue
        done.append({**probe.params, **extra})
    return done, True


def _method_and_optimizers(config: TrainConfig, device: str) -> tuple[Method, list[torch.optim.Optimizer]]:
    model = config.model
    context = MethodContext(
        observation_shape=SMALLEST_OBSERVATION, latent_dim=model.latent_dim, recon=model.recon,
        dataset_size=1, generator=torch.Generator(), base_channels=model.base_channels,
        architecture=model.architecture,
    )
    with torch.device(device):
        method = build_method(config.method, context)
    return method, [optimizer for _, optimizer in method.optimizers(config.train.optimizer)]


def build_for_counting(config: TrainConfig) -> tuple[Method, list[torch.optim.Optimizer]]:
    """The method of ``config`` and its optimisers, built to count weights, not to train.

    The networks go to PyTorch's ``meta`` device, which records shapes and allocates nothing; a
    method that reads a tensor's value while it builds its optimisers (DEFT's active stage) is built
    on the CPU instead. The observations are taken as 1 x 64 x 64 (``SMALLEST_OBSERVATION``); three
    channels add two convolutions' worth of input and output weights, under 0.5 % of the standard
    model.

    Args:
        config: a trial's training config.

    Returns:
        The method and its optimisers (which have not stepped: no state yet).
    """
    try:
        return _method_and_optimizers(config, "meta")
    except (NotImplementedError, RuntimeError):
        return _method_and_optimizers(config, "cpu")


def _optimizer_state_elements(optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """(elements, tensors) of an optimiser's state once it has stepped: Adam's two moment estimates
    per weight (three with AMSGrad) and its step count per parameter."""
    elements = tensors = 0
    for group in optimizer.param_groups:
        moments = 3 if group.get("amsgrad") else 2
        for param in group["params"]:
            elements += moments * param.numel() + 1
            tensors += moments + 1
    return elements, tensors


def _reports(steps: int, every: int) -> int:
    """Reports of a run of ``steps`` that reports every ``every`` steps and at its end."""
    return steps // every + (steps % every != 0)


def trial_cost(spec: StudySpec, config: TrainConfig) -> TrialCost:
    """What one trial of ``config`` leaves and needs (see the module docstring).

    Args:
        spec: the study spec (evaluation, metrics, ``storage.keep_checkpoints``).
        config: the trial's training config.

    Returns:
        Its cost.
    """
    method, optimizers = build_for_counting(config)
    state = method.state_dict()
    elements = sum(t.numel() for t in state.values())
    tensors = len(state)
    for optimizer in optimizers:
        extra, count = _optimizer_state_elements(optimizer)
        elements += extra
        tensors += count
    parameters = sum(p.numel() for p in method.parameters())
    checkpoint = elements * 4 + tensors * CHECKPOINT_TENSOR_BYTES + CHECKPOINT_BASE_BYTES
    train = config.train
    keep = spec.storage.keep_checkpoints
    tune_kept, mlflow_kept = checkpoints_kept(spec, train.steps, train.checkpoint_every)
    latent_dim = config.model.latent_dim
    rows = latent_dim if latent_dim <= 16 else 10
    series = (len(method.term_names()) - 1 + latent_dim + len(method.schedules()) + len(optimizers)
              + (train.lr_multiplier is not None) + 2)
    scores = sum(len(METRICS[name].keys) for name in spec.evaluation.metrics)
    reports = _reports(train.steps, train.report_every)
    every = spec.evaluation.every
    evaluations = _reports(train.steps, every) if every else 1
    reported = series + TRIAL_KEYS + len(spec.objectives) + (keep == "best") + TUNE_FIXED_KEYS
    return TrialCost(
        parameters=parameters,
        checkpoint_bytes=checkpoint,
        tune_checkpoints=tune_kept,
        mlflow_checkpoints=mlflow_kept,
        figure_bytes=FIGURE_BYTES_FIXED + rows * FIGURE_BYTES_PER_ROW,
        metric_rows=reports * series + evaluations * scores,
        tune_log_bytes=(reports * reported + evaluations * scores) * TUNE_LOG_BYTES_PER_VALUE,
        images=train.steps * train.batch_size,
        model_bytes=4 * sum(t.numel() for t in state.values()) if spec.tracking.log_model else 0,
    )


def _mean(costs: list[TrialCost]) -> TrialCost:
    """The field-wise mean of ``costs`` (rounded up)."""
    names = [f.name for f in fields(TrialCost)]
    return TrialCost(**{n: math.ceil(sum(getattr(c, n) for c in costs) / len(costs)) for n in names})


def _throughput(spec: StudySpec, threads: int, images_per_sec: float | None) -> tuple[float, str]:
    if images_per_sec is not None:
        return images_per_sec, "given with --images-per-sec"
    if spec.resources.gpu > 0:
        return GPU_IMAGES_PER_SEC, "GPU, ASSUMED (not measured; give --images-per-sec)"
    return CPU_IMAGES_PER_SEC * threads, (
        f"CPU, measured {CPU_IMAGES_PER_SEC} per thread x {threads} thread(s), standard model at batch 64"
    )


def _shares(total: int, weights: dict[str, int]) -> dict[str, int]:
    """``total`` split in proportion to ``weights``, rounded by largest remainder (the parts sum to it)."""
    whole = sum(weights.values())
    exact = {name: total * weight / whole for name, weight in weights.items()}
    parts = {name: math.floor(value) for name, value in exact.items()}
    left = total - sum(parts.values())
    for name in sorted(exact, key=lambda n: parts[n] - exact[n])[:left]:
        parts[name] += 1
    return parts


def _population_groups(
    space: SearchSpace, probes: list[tuple[TrainConfig, TrialCost]], exhaustive: bool, configurations: int
) -> tuple[tuple[PopulationGroup, ...], bool]:
    """The members of a study by population key (see the module docstring).

    Args:
        space: the study's search space.
        probes: the costed configurations (``_assignments``) with their costs.
        exhaustive: whether those are every configuration the space can produce.
        configurations: configurations the search proposes.

    Returns:
        The groups, in the spec's method order, and whether they hold every configuration by its key
        (else one group per method, its share assumed). A method no probe reached (past ``MAX_PROBES``) is
        taken to fuse when its method can, at the most images of any probe.
    """
    seeds = len(space.spec.seeds)
    if space.grid and exhaustive and configurations == len(space.grid):
        by_key: dict[tuple[str, str | None], list[TrialCost]] = {}
        for config, cost in probes:
            by_key.setdefault((config.method.name, population_key(config)), []).append(cost)
        groups = [
            PopulationGroup(method, len(costs) * seeds, seeds * sum(c.images for c in costs), key is not None)
            for (method, key), costs in by_key.items()
        ]
        return tuple(sorted(groups, key=lambda g: space.methods.index(g.method))), True
    by_method: dict[str, list[tuple[TrainConfig, TrialCost]]] = {}
    for config, cost in probes:
        by_method.setdefault(config.method.name, []).append((config, cost))
    if space.grid:
        weights = {m: sum(point[METHOD] == m for point in space.grid) for m in space.methods}
    else:
        weights = dict.fromkeys(space.methods, 1)
    most = max(cost.images for _, cost in probes)
    groups = []
    for method, count in _shares(configurations, weights).items():
        if not count:
            continue
        if method in by_method:
            images = max(cost.images for _, cost in by_method[method])
            fused = any(population_key(config) is not None for config, _ in by_method[method])
        else:
            images, fused = most, method in supported_methods()
        groups.append(PopulationGroup(method, count * seeds, count * seeds * images, fused))
    return tuple(groups), False


def estimate_study(
    spec: StudySpec, images_per_sec: float | None = None, population_images_per_sec: float | None = None
) -> StudyBudget:
    """The cost of running ``spec``, from the spec alone (see the module docstring).

    Args:
        spec: a validated study spec.
        images_per_sec: training throughput of one trial; default ``GPU_IMAGES_PER_SEC`` (assumed)
            for trials with a GPU share, else ``CPU_IMAGES_PER_SEC`` per thread (measured). Under a
            population, that of a Tune trial of one member (one that trains alone).
        population_images_per_sec: training throughput of a Tune trial of ``spec.population``
            members, all of them together (``bench/population_throughput.py``'s
            ``population_images_per_sec[N]`` on the device); default not known.

    Returns:
        The estimate.

    Raises:
        ConfigError: ``search.num_trials`` asks for more configurations than the grid has.
        ValueError: a throughput is not positive, or a population's is given for a study that trains
            one member per Tune trial.
    """
    for given in (images_per_sec, population_images_per_sec):
        if given is not None and not given > 0:
            raise ValueError(f"images per second must be > 0, got {given}")
    population = spec.population
    if population_images_per_sec is not None and population == 1:
        raise ValueError("a population's images per second was given, but this study trains one member per "
                         "Tune trial (resources.population resolves to 1)")
    space = SearchSpace(spec)
    configurations = space.num_configurations()
    assignments, exhaustive = _assignments(space, MAX_PROBES)
    memo: dict[str, TrialCost] = {}
    by_method: dict[str, list[TrialCost]] = {}
    probes: list[tuple[TrainConfig, TrialCost]] = []
    threads = 1
    for assignment in assignments:
        config = space.train_config(assignment, spec.seeds[0])
        threads = config.train.threads or 1
        key = json.dumps(config.model_dump(mode="json", exclude={"train": {"seed"}}), sort_keys=True)
        if key not in memo:
            memo[key] = trial_cost(spec, config)
        by_method.setdefault(config.method.name, []).append(memo[key])
        probes.append((config, memo[key]))
    if space.grid:
        per_trial = _mean([cost for costs in by_method.values() for cost in costs])
    else:
        per_trial = _mean([max(costs, key=lambda c: (c.storage, c.images)) for costs in by_method.values()])
    bare = per_trial.storage - per_trial.checkpoint_bytes * per_trial.checkpoints
    rate, note = _throughput(spec, threads, images_per_sec)
    groups, groups_exact = (), True
    member_memory = 0
    if population > 1:
        groups, groups_exact = _population_groups(space, probes, exhaustive, configurations)
        fused = {population_key(config): config for config, _ in probes}
        fused.pop(None, None)
        member_memory = max((estimate_training_memory(config).model for config in fused.values()), default=0)
    return StudyBudget(spec, configurations, configurations * len(spec.seeds), per_trial, len(assignments),
                       exhaustive, rate, note, bare, population, groups, groups_exact,
                       population_images_per_sec, member_memory)


def _hours(hours: float) -> str:
    return f"{hours:,.2f}" if hours < 10 else f"{hours:,.0f}"


def _population_lines(budget: StudyBudget, concurrent: int) -> tuple[list[str], list[str]]:
    """The lines of a population above 1: what a Tune trial holds, and its compute.

    Args:
        budget: ``estimate_study``'s result, with ``population`` above 1.
        concurrent: Tune trials at once.

    Returns:
        (lines after ``resources``, lines after the compute of each trial alone).
    """
    spec, size = budget.spec, budget.population
    resources = spec.resources
    chosen = resources.population
    tune_trials = budget.tune_trials
    per_method: dict[str, int] = {}
    for group in budget.groups:
        per_method[group.method] = per_method.get(group.method, 0) + group.tune_trials(size)
    split = ", ".join(f"{method} {count:,}" for method, count in per_method.items())
    alone = sorted({group.method for group in budget.groups if not group.fused})
    device = "GPU" if resources.gpu > 0 else "CPU"
    how = "trained as one fused model" if budget.fused_members else "but no method of this study fuses"
    lines = [f"population: {size} members (trials) per Tune trial (resources.population: {chosen}), {how}"]
    if budget.fused_members:
        per_gpu = f" ({size / resources.gpu:g} per GPU)" if resources.gpu > 0 else ""
        lines.append(
            f"  a Tune trial's {resources.cpu:g} CPU and {resources.gpu:g} GPU hold up to {size} "
            f"members{per_gpu}, at least {size} x {format_bytes(budget.member_memory)} of {device} memory "
            "(one member's weights, gradients, Adam state and activations: disent_core.memory's lower bound)"
        )
    if budget.groups_exact:
        lines.append(f"  Tune trials: at least {tune_trials:,} for the {budget.trials:,} trials ({split}; "
                     f"every grid point by its population key, up to {size} to a Tune trial)")
    else:
        share = "in proportion to their grid points" if spec.search.algorithm == "grid" else "equally"
        lines.append(f"  Tune trials: at least {tune_trials:,} for the {budget.trials:,} trials ({split}), "
                     f"if the configurations fall to the methods {share}; a method's configurations that "
                     "differ in model or train settings split into more")
    if alone:
        lines.append(f"  {', '.join(alone)}: not fused (one member per Tune trial); fused methods: "
                     f"{', '.join(supported_methods())}")
    if not budget.fused_members:
        return lines, []
    hours_unit = f"{device}-hours"
    rate = budget.population_images_per_sec
    if rate is None:
        share = resources.gpu if resources.gpu > 0 else resources.cpu
        alone_hours = budget.trial_hours * budget.trials * share
        compute = [
            f"  population {size}: a Tune trial's images/s (its {size} members together) is not known (fused "
            f"throughput is not measured on a {device} here): its {hours_unit} are about the "
            f"{_hours(alone_hours)} above x {budget.images_per_sec:,.0f} / that images/s",
            f"  to cost it, run bench/population_throughput.py on the {device} "
            f"(population_images_per_sec[{size}]) and give that figure with --population-images-per-sec",
        ]
        return lines, compute
    longest, total = budget.population_hours
    device_hours = f"{_hours(total * resources.cpu)} CPU-hours"
    if resources.gpu > 0:
        device_hours = f"{_hours(total * resources.gpu)} GPU-hours and " + device_hours
    compute = [
        f"  population {size}: at {rate:,.0f} images/s per Tune trial of {size} members (given with "
        f"--population-images-per-sec; {rate / budget.images_per_sec:.2f}x the {budget.images_per_sec:,.0f} "
        f"of one trial alone): up to {_hours(longest)} hours per Tune trial, {tune_trials:,} Tune trials, "
        f"{device_hours} in all, about {_hours(budget.population_wall_hours)} hours at "
        f"{min(concurrent, tune_trials)} Tune trials at once (a Tune trial of fewer members costed as full)",
    ]
    return lines, compute


def format_budget(budget: StudyBudget) -> list[str]:
    """The lines ``run --dry-run`` prints: trials, resources, populations, storage and compute.

    Args:
        budget: ``estimate_study``'s result.

    Returns:
        The lines, without newlines.
    """
    spec, cost = budget.spec, budget.per_trial
    resources = spec.resources
    if spec.search.algorithm == "grid":
        costed = "the mean over the grid's points"
    else:
        costed = "the largest per method at each end of every searched range and at every choice"
    if not budget.exhaustive:
        costed += f" (the first {budget.costed} such configurations only)"
    concurrent = min(spec.search.max_concurrent, budget.trials)
    keep = spec.storage.keep_checkpoints
    total_hours = budget.trial_hours * budget.trials
    device_hours = f"{_hours(total_hours * resources.cpu)} CPU-hours"
    if resources.gpu > 0:
        device_hours = f"{_hours(total_hours * resources.gpu)} GPU-hours and " + device_hours
    populated, population_compute = _population_lines(budget, spec.search.max_concurrent) \
        if budget.population > 1 else ([], [])
    per = "Tune trial" if budget.population > 1 else "trial"
    lines = [
        f"trials: {budget.trials:,} ({budget.configurations:,} configuration(s) x {len(spec.seeds)} seed(s), "
        f"{spec.search.algorithm} search)",
        f"resources: {resources.cpu:g} CPU and {resources.gpu:g} GPU per {per}, "
        f"{concurrent} {per}(s) at once",
        *populated,
        f"storage: {format_bytes(cost.storage)} per trial, {format_bytes(budget.storage)} in all "
        f"(storage.keep_checkpoints: {keep}; {costed})",
        f"  checkpoints: {cost.checkpoints} x {format_bytes(cost.checkpoint_bytes)} per trial "
        f"({cost.tune_checkpoints} kept by Tune, {cost.mlflow_checkpoints} in MLflow; {cost.parameters:,} "
        "weights + Adam state)",
        f"  figures: 2 x {format_bytes(cost.figure_bytes)} per trial (Tune and MLflow)",
        f"  MLflow metric rows: {cost.metric_rows:,} per trial, "
        f"{format_bytes(cost.metric_rows * METRIC_ROW_BYTES)}",
        f"  Tune result logs: {format_bytes(cost.tune_log_bytes)} per trial",
    ]
    if keep != "none":
        lines.append(f"  with storage.keep_checkpoints=none: "
                     f"{format_bytes(budget.storage_without_checkpoints * budget.trials)} in all")
    alone = "each trial alone (population 1), " if budget.population > 1 else ""
    lines += [
        f"compute: {cost.images:,} training images per trial, {cost.images * budget.trials:,} in all "
        "(steps x batch size; evaluation not counted)",
        f"  {alone}at {budget.images_per_sec:,.0f} images/s per trial ({budget.throughput_note}): "
        f"{_hours(budget.trial_hours)} hours per trial, {device_hours} in all, about "
        f"{_hours(budget.wall_hours)} hours at {concurrent} at once",
        *population_compute,
    ]
    return lines
