"""Run and resume a study: spec -> Optuna search inside Ray Tune -> MLflow.

Layout of one study (``<root>/<name>/``)::

    spec.yaml        the validated spec, every default filled in
    study.json       where its state lives: tracking URI, experiment, parent run, Optuna storage
                     and study name, Tune experiment path
    study.lock       held by the one driver of the study (``lock.py``), with who holds it
    optuna.db        Optuna storage (default; a PostgreSQL URL from the spec replaces it)
    tune/            Ray Tune's experiment directory (default; ``storage.checkpoints`` replaces it)
    results.parquet  one row per trial, written when the study stops (also a parent-run artifact)

The runs root holds ``mlflow.db`` and ``mlartifacts/`` shared by every study under it (each study
has its own experiment). The study's parent run holds the spec (``spec.yaml``, and its values as
params), a description, the results table and, once the study stops, its best trial by each
objective (``tracking.parent_run_content``, ``tracking.log_best``). ``run_study`` refuses an
existing study directory; ``resume_study`` continues it with ``Tuner.restore`` (or starts it if
Tune never wrote a snapshot). Both hold the study's lock from before they create or change anything
until they return, so a second driver of the same study stops with a message naming the first.
Whatever happens, ``finalize`` leaves no Optuna trial and no MLflow run RUNNING.

Tune restores the trials of its last experiment snapshot; the runs of trials a killed driver
started after it are closed as lost (``tracking.close_lost_runs``) before Tune starts again.

A trial whose latest checkpoint no longer exists on storage (deleted, or rotated away after Tune's
last experiment snapshot) would fail for good when Tune restores it; it has no state to lose, so
it starts again from step 0 instead (``restartable``), and ``resume`` says which trials it restarted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pyarrow.fs
import ray
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.repeater import TRIAL_INDEX
from ray.tune.trainable import wrap_function

from disent_core.errors import DisentError
from disent_core.methods.registry import METHODS
from studies.orchestration.lock import hold_study
from studies.orchestration.members import member_diverged, member_result, trial_members
from studies.orchestration.output import quiet_libraries
from studies.orchestration.population_trial import run_trial
from studies.orchestration.progress import Progress
from studies.orchestration.search import PopulationKey, StudySearch, fail_running_trials, make_sampler
from studies.orchestration.tracking import (
    StudyTracker,
    close_lost_runs,
    close_open_runs,
    ensure_experiment,
    log_best,
    parent_run_content,
    prepare_store,
)
from studies.orchestration.trainable import checkpoint_config
from studies.results import (
    DATASET_PROVENANCE,
    FAILURE,
    METHOD_PROVENANCE,
    POPULATION,
    STEP,
    STUDY_TAG,
    one_type_per_column,
    row_from_metrics,
)
from studies.spec import StudySpec, spec_yaml
from studies.spec.space import METHOD, SearchSpace
from studies.study_dir import TUNE_NAME, StudyState, default_tracking_uri, load_study_spec

log = logging.getLogger(__name__)
STOPPED_BEFORE_END = "the study stopped before this trial finished; `disent-study resume` continues it"


def init_ray(address: str | None) -> None:
    """Connect to ``address`` (a cluster, or ``$RAY_ADDRESS`` under ``ray job submit``) or start one here."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    if address == "local":
        # the embedded Ray's workers see this process's data root (a cluster job sets its own env)
        env = {k: os.environ[k] for k in ("DISENT_DATA",) if k in os.environ}
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 object_store_memory=500 * 1024**2, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": env} if env else None)
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)


def _create_state(spec: StudySpec, root: Path, directory: Path) -> StudyState:
    tracking_uri = spec.tracking.mlflow_uri or default_tracking_uri(root)
    optuna_storage = spec.storage.optuna or f"sqlite:///{directory / 'optuna.db'}"
    study_name = spec.name
    existing = optuna.study.get_all_study_names(optuna.storages.RDBStorage(optuna_storage))
    if study_name in existing:
        raise DisentError(
            f"the Optuna storage {optuna_storage} already holds a study named {study_name!r}; "
            "choose another name with --set name=... (or resume that study)"
        )
    prepare_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    artifact_root = None if spec.tracking.mlflow_uri else root / "mlartifacts"
    experiment_id = ensure_experiment(client, spec.experiment_name, artifact_root)
    tags, params = parent_run_content(spec)
    parent = client.create_run(experiment_id, run_name=spec.name,
                               tags={STUDY_TAG: spec.name, "disent.study_dir": str(directory), **tags})
    for start in range(0, len(params), 100):
        client.log_batch(parent.info.run_id, params=params[start:start + 100])
    client.log_text(parent.info.run_id, spec_yaml(spec), "spec.yaml")
    # studies may share one checkpoints location: each gets its own folder there
    shared = spec.storage.checkpoints
    tune_storage = f"{shared.rstrip('/')}/{spec.name}" if shared else str(directory)
    return StudyState(spec.name, str(root), tracking_uri, experiment_id, parent.info.run_id,
                      optuna_storage, study_name, tune_storage)


def run_study(spec: StudySpec, root: Path, address: str | None = None, output: str = "normal") -> Path:
    """Start a new study under ``root``, holding its lock until it stops.

    Args:
        spec: the validated study spec.
        root: the runs root; the study directory is ``root / spec.name``.
        address: the Ray cluster to run on (None: ``$RAY_ADDRESS``, else an embedded Ray).
        output: ``normal`` (this package's lines, the libraries quiet: ``output.quiet_libraries``),
            ``quiet`` (failures and the closing summary only) or ``verbose`` (the libraries too).

    Returns:
        The study directory.

    Raises:
        StudyLocked: another driver holds the study.
        DisentError: the study exists already, or it stopped with trials unfinished.
    """
    if output != "verbose":
        quiet_libraries()
    root = root.expanduser().resolve()
    directory = root / spec.name
    spec = spec.as_run()
    SearchSpace(spec).num_configurations()  # a grid larger than asked for fails before anything starts
    with hold_study(directory, spec.name, spec.storage.optuna):
        if (directory / "study.json").exists():
            raise DisentError(
                f"study directory {directory} already exists; continue it with "
                f"`disent-study resume {directory}` or start a new one with --set name=<new name>"
            )
        (directory / "spec.yaml").write_text(spec_yaml(spec))
        state = _create_state(spec, root, directory)
        state.save(directory)
        _execute(spec, state, directory, address, restore=False, output=output)
    return directory


def resume_study(directory: Path, address: str | None = None, output: str = "normal") -> Path:
    """Continue a study from its directory after a crash, a kill or Ctrl-C, holding its lock.

    Args:
        directory: the study directory that ``run_study`` created.
        address: the Ray cluster to run on (None: ``$RAY_ADDRESS``, else an embedded Ray).
        output: ``normal``, ``quiet`` or ``verbose`` (as for ``run_study``).

    Returns:
        The study directory.

    Raises:
        StudyLocked: another driver holds the study.
        DisentError: not a study directory, or it stopped again with trials unfinished.
    """
    if output != "verbose":
        quiet_libraries()
    directory = directory.expanduser().resolve()
    state = StudyState.load(directory)
    with hold_study(directory, state.optuna_study, state.optuna_storage):
        spec = load_study_spec(directory)
        restore = tune.Tuner.can_restore(state.tune_path)
        known: set[str] = set()
        if restore:
            analysis = tune.ExperimentAnalysis(state.tune_path)
            known = {member.member_id for trial in analysis.trials
                     for member in trial_members(trial.trial_id, trial.config)}
            for line in prepare_restarts(spec, state, analysis):
                print(line, flush=True)
        client = MlflowClient(state.tracking_uri)
        lost = close_lost_runs(client, state.experiment_id, state.parent_run_id, known)
        if lost:
            print(f"{lost} trial(s) started after Tune's last snapshot before the driver stopped are "
                  "lost; their MLflow runs are closed as KILLED", flush=True)
        _execute(spec, state, directory, address, restore=restore, output=output)
    return directory


def holds_state(checkpoint: tune.Checkpoint) -> bool:
    """Whether a Tune checkpoint's directory is still on its storage and not empty."""
    selector = pyarrow.fs.FileSelector(checkpoint.path, allow_not_found=True)
    return bool(checkpoint.filesystem.get_file_info(selector))


def prepare_restarts(spec: StudySpec, state: StudyState,
                     analysis: tune.ExperimentAnalysis | None = None) -> list[str]:
    """Ready the trials Tune will restore whose latest checkpoint is gone to start from scratch.

    Such a trial starts from step 0 (``restartable``). Tune still tracks the checkpoints it kept
    (``trainable.checkpoint_config``: the latest, or under ``keep_checkpoints: best`` also the
    best) and deletes those it no longer keeps as the trial checkpoints again; a missing one makes
    that deletion log an error, so the oldest and the latest are recreated empty here.

    Args:
        spec: the study's spec.
        state: the study's state; its Tune experiment has a snapshot.
        analysis: that snapshot, if already loaded (loading it reads every trial's state).

    Returns:
        ``trial <id> (<method>, seed <seed>): its checkpoint <path> is gone; restarted from scratch``
        for each such trial.
    """
    analysis = analysis or tune.ExperimentAnalysis(state.tune_path)
    lines = []
    for trial in analysis.trials:
        latest = trial.checkpoint
        if trial.status == "TERMINATED" or latest is None or holds_state(latest):
            continue
        oldest = analysis.get_best_checkpoint(trial, "training_iteration", "min")
        for checkpoint in (latest, oldest):
            if checkpoint is not None:
                checkpoint.filesystem.create_dir(checkpoint.path)
        members = trial_members(trial.trial_id, trial.config)
        config = members[0].config
        label = f"{config.get(METHOD, '?')}, seed {spec.seeds[config.get(TRIAL_INDEX, 0)]}"
        if len(members) > 1:
            label = f"a population of {len(members)}: {label} and others"
        lines.append(f"trial {trial.trial_id} ({label}): its checkpoint {latest.path} is gone; "
                     "restarted from scratch")
    return lines


def restartable(function: Any) -> type[tune.Trainable]:
    """``function`` as a Tune trainable that starts from scratch when its checkpoint is gone.

    Tune restores a resumed or retried trial from its latest checkpoint and fails the trial when
    that checkpoint no longer exists on storage (``Trainable.restore``); every retry fails the same
    way. Such a trial has no state to lose, so the restore of a missing or empty checkpoint is
    skipped instead and the function starts with ``tune.get_checkpoint()`` None, from step 0.

    Args:
        function: a function trainable (``tune.with_parameters(run_trial, ...)``).

    Returns:
        The trainable class, named like ``function`` (``Tuner.restore`` checks the name).
    """
    base = wrap_function(function)

    class RestartableTrainable(base):  # type: ignore[misc, valid-type]
        def restore(self, checkpoint_path: Any) -> None:
            checkpoint = getattr(checkpoint_path, "checkpoint", checkpoint_path)
            if isinstance(checkpoint, tune.Checkpoint) and not holds_state(checkpoint):
                log.warning("checkpoint %s is gone; the trial starts from scratch", checkpoint.path)
                return
            super().restore(checkpoint_path)

    return RestartableTrainable


def trial_dirname(trial: tune.experiment.Trial) -> str:
    """``trial_<id>``: a trial's directory name (a module function, pickled by name into every
    trial's state in Tune's snapshot, where a lambda took 1.3 KB per trial)."""
    return f"trial_{trial.trial_id}"


def _tuner(spec: StudySpec, state: StudyState, restore: bool, callbacks: list) -> tune.Tuner:
    space = SearchSpace(spec)
    objectives = spec.objectives
    metric: Any = [o.metric for o in objectives] if len(objectives) > 1 else objectives[0].metric
    mode: Any = [o.mode for o in objectives] if len(objectives) > 1 else objectives[0].mode
    trainable = tune.with_resources(
        restartable(tune.with_parameters(run_trial, spec_data=spec.model_dump(mode="json"))),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    if restore:
        return tune.Tuner.restore(state.tune_path, trainable, resume_unfinished=True, resume_errored=True)
    searcher = StudySearch(
        space=space.define_by_run, metric=metric, mode=mode, sampler=make_sampler(spec, space),
        study_name=state.optuna_study, storage=optuna.storages.RDBStorage(state.optuna_storage),
        repeat=len(spec.seeds), population=spec.population, member_key=PopulationKey(spec),
        configurations=space.num_configurations(),
    )
    scheduler = None
    if spec.scheduler is not None:
        scheduler = ASHAScheduler(
            time_attr="step", max_t=spec.steps, grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
        )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=objectives[0].metric, mode=objectives[0].mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=space.num_configurations() * len(spec.seeds),
            max_concurrent_trials=spec.search.max_concurrent,
            reuse_actors=True,  # a new trial reuses a finished trial's process: no start-up, no imports
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=TUNE_NAME, storage_path=state.tune_storage, callbacks=callbacks, verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=checkpoint_config(spec),
        ),
    )


def _execute(spec: StudySpec, state: StudyState, directory: Path, address: str | None, restore: bool,
             output: str) -> None:
    init_ray(address)
    client = MlflowClient(state.tracking_uri)
    client.update_run(state.parent_run_id, status="RUNNING")
    tracker = StudyTracker(spec, state.tracking_uri, state.experiment_id, state.parent_run_id)
    total = SearchSpace(spec).num_configurations() * len(spec.seeds)
    progress = Progress(spec, total, quiet=output == "quiet")
    tuner = _tuner(spec, state, restore, [tracker, progress])
    grid = None
    try:
        grid = tuner.fit()
    finally:
        finalize(spec, state, directory, grid)
    left = unfinished(spec, state) if grid is not None else 0
    if left:
        raise StudyInterrupted(directory, left)
    progress.summary(grid, state, directory)


class StudyInterrupted(DisentError):
    """``fit`` returned with trials still to run: it was interrupted (Ctrl-C, SIGTERM); exit 130."""

    exit_status = 130

    def __init__(self, directory: Path, count: int) -> None:
        super().__init__(f"the study stopped with {count} trial(s) unfinished; continue it with "
                         f"`disent-study resume {directory}`")


def unfinished(spec: StudySpec, state: StudyState) -> int:
    """Members (trials) of the study that have not ended (run to the end, stopped early, or failed)."""
    trials = tune.ExperimentAnalysis(state.tune_path).trials
    ended = sum(len(trial_members(t.trial_id, t.config))
                for t in trials if t.status in ("TERMINATED", "ERROR"))
    return SearchSpace(spec).num_configurations() * len(spec.seeds) - ended


def finalize(spec: StudySpec, state: StudyState, directory: Path, grid: Any) -> None:
    """Close what a stop leaves open and write the results table.

    MLflow runs still RUNNING are marked KILLED (a resumed trial reopens its run). Optuna trials
    still RUNNING are marked FAIL only when the study is complete: after a crash or Ctrl-C they
    belong to trials that ``resume`` continues and then tells.
    """
    client = MlflowClient(state.tracking_uri)
    close_open_runs(client, state.experiment_id, state.parent_run_id, STOPPED_BEFORE_END)
    complete = grid is not None and not unfinished(spec, state)
    if complete:
        fail_running_trials(state.optuna_storage, state.optuna_study, set(), STOPPED_BEFORE_END)
    if grid is not None:
        table = results_table(spec, grid)
        path = directory / "results.parquet"
        table.to_parquet(path)
        client.log_artifact(state.parent_run_id, str(path))
        log_best(client, state.parent_run_id, spec, table)
    client.set_terminated(state.parent_run_id, status="FINISHED" if complete else "KILLED")


def results_table(spec: StudySpec, grid: Any) -> pd.DataFrame:
    """One row per member (trial): status, method, seed, the population it trained in, dataset
    provenance, ``train_config.*`` and ``evaluation_results.*``."""
    space = SearchSpace(spec)
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(result.path).name.removeprefix("trial_")
        error = str(result.error).strip().splitlines()[-1] if result.error is not None else None
        for member in trial_members(trial_id, result.config):
            config = member.config
            if METHOD not in config:
                continue
            own = member_result(metrics, member)
            failure = own.get(FAILURE) if member_diverged(own) and member.population else error
            seed_index = config.get(TRIAL_INDEX, 0)
            seed = spec.seeds[seed_index]
            row: dict[str, Any] = {
                "trial_id": member.member_id,
                "status": "failed" if failure is not None else "completed",
                "error": failure,
                "method": config[METHOD],
                "seed": seed,
                POPULATION: member.population,
                "step": own.get(STEP),
                "model_num": space.model_number(config, seed_index),
                METHOD_PROVENANCE: METHODS[config[METHOD]].provenance,
                DATASET_PROVENANCE: own.get(DATASET_PROVENANCE),
            }
            params = space.train_config(config, seed).flat_params()
            searched = {k: v for k, v in config.items() if k not in (METHOD, TRIAL_INDEX)}
            row.update(row_from_metrics(own, params, searched))
            rows.append(row)
    return one_type_per_column(pd.DataFrame(rows))
