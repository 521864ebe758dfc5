"""MLflow tracking of a study: one parent run per study, one nested run per member of a Ray Tune trial.

A member is one configuration trained with one seed (``members.py``): a Tune trial trains one, or
under ``resources.population`` a population of several as one fused model. Each member has its own
nested run, found by its member id (``<trial id>-<index>`` in a population, else the trial's id) in
the ``trial_id`` tag; a population member's run also has a ``population`` tag, the Tune trial
it trained in.

``StudyTracker`` is a ``tune.Callback``, so it runs in the Tune driver and sees every trial's life
(start, results, retries, completion, error) with nothing to log from inside the trials. It is used
instead of Tune's ``MLflowLoggerCallback`` because that one logs Tune's bookkeeping as metrics and
opens a second run for each trial after ``Tuner.restore`` (its trial-to-run map lives in memory
only; docs/provenance.md, "Stack behaviours the code relies on"): here a member's run is found
again by its tag under the study's parent run, so a resumed or retried trial keeps its members'
runs.

A nested run holds: params = the member's flattened training config; tags = study, method, the
method's provenance (``method_provenance``: DiD is a ``reconstruction``), dataset, the dataset's
provenance as the trial reports it (``dataset_provenance``: ``procedural`` or the real files'
SHA-256), seed, member id, population (for a population member), protocol name and hash,
representation kind, project version, git commit (also as MLflow's own ``mlflow.source.git.commit``),
each searched value as ``search.<name>`` (apart from the fixed params), a one-line description
(``mlflow.note.content``, naming the population) and disentanglement_lib's model number for grid
studies that ask for it; metrics = every training report and evaluation of the member (its own
entry of a population's report, ``member_result``) as a series over steps, each step once (a trial
restored from an earlier checkpoint trains some steps again; their reports are not logged twice);
artifacts = the member's final files (the trial's final checkpoint directory, or its
``members/<index>/`` for a population member) under ``final/`` (checkpoint, config, scores, latent
traversals, reconstructions, KL per dimension); under ``tracking.log_model``, the checkpoint's
``model/`` as the run's logged model instead (``logged_model.py``).

A population member that diverges is closed FAILED, with its reason (the report's ``failure``) as
the ``failure_reason`` tag, as soon as a report says so, while the population goes on; the other
members finish with their trial. A trial that fails closes each of its members' runs that are still
open as FAILED with the trial's error. ``finalize`` closes whatever a crash left RUNNING, with a
``failure_reason`` tag that the run loses when a resumed driver starts its trial again. A trial that
a killed driver started or ended after Tune's last experiment snapshot does not exist for the
resumed Tune; ``resume`` closes its members' runs as KILLED with the ``LOST_AFTER_SNAPSHOT`` reason
(``close_lost_runs``), so every FINISHED run is a member of a trial Tune holds.

The calls per member are few, whatever the study's size: the runs an earlier driver created are
listed once, paged, when the tracker first needs them (not searched for member by member), a new
run is created with its tags and its params in batches, and each member's part of a result is one
``log_batch`` (metrics, and the dataset provenance tag with the first one); a diverged member's
later reports, which repeat its last one, log nothing.
"""

from __future__ import annotations

import json
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.search.repeater import TRIAL_INDEX

from disent_core.methods.registry import METHODS
from disent_core.metrics.protocol import get_protocol
from studies.orchestration.logged_model import MODEL_DIR, log_model
from studies.orchestration.members import Member, member_diverged, member_files, member_result, trial_members
from studies.results import (
    DATASET_PROVENANCE,
    DIVERGED,
    EVALUATED,
    EVALUATION,
    FAILURE,
    IMAGES_PER_SEC,
    METHOD_PROVENANCE,
    PARENT_TAG,
    POPULATION,
    SEARCH,
    STEP,
    STUDY_TAG,
    TRIAL_TAG,
    is_number,
    is_score_key,
    is_training_key,
    nested_runs,
)
from studies.spec import StudySpec
from studies.spec.space import METHOD, SearchSpace

FAILURE_REASON = "failure_reason"
"""The tag of a run that did not finish: why (divergence, an error, the study stopped). A trial that
runs again loses it; one that fails again gets its new reason."""
LOST_AFTER_SNAPSHOT = ("lost: the driver stopped before Tune's experiment snapshot recorded this trial; "
                       "the resumed study does not continue it")
GIT_COMMIT_TAG = "mlflow.source.git.commit"
"""MLflow's own tag for the source commit (its runs table's Version column)."""
NOTE_TAG = "mlflow.note.content"
"""MLflow's own tag for a run's description (shown on the run's page)."""
SEARCHED_TAG_PREFIX = "search."
"""Tags ``search.<name>`` hold a trial's searched values, apart from the fixed params."""


def git_commit() -> str:
    """The commit of the checkout this package runs from, or ``unknown``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
            text=True, timeout=10, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def project_version() -> str:
    try:
        return metadata.version("disent-studies")
    except metadata.PackageNotFoundError:
        return "unknown"


def tracked_metrics(result: dict[str, Any], objective_keys: list[str]) -> dict[str, float]:
    """The keys of a Tune result that go to MLflow: training series, and scores when evaluated."""
    evaluated = result.get(EVALUATED) == 1
    out = {
        key: float(value) for key, value in result.items()
        if is_number(value) and (is_training_key(key) or (evaluated and is_score_key(key)) or key == DIVERGED)
    }
    if not evaluated:
        for key in objective_keys:
            out.pop(key, None)
    return out


def prepare_store(tracking_uri: str) -> None:
    """Create (migrate) a sqlite tracking store under a file lock.

    Two studies starting at once on a fresh runs root would otherwise race MLflow's schema migration
    of the same ``mlflow.db`` and one of them would fail.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db) + ".lock"):
        MlflowClient(tracking_uri).search_experiments(max_results=1)


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    """The id of experiment ``name``, created (with its artifacts under ``artifact_root``) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (artifact_root / name).as_uri() if artifact_root is not None else None
    return client.create_experiment(name, artifact_location=location)


class StudyTracker(tune.Callback):
    """Mirrors every member of every trial of one study into nested MLflow runs (see the module docstring)."""

    def __init__(self, spec: StudySpec, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.spec = spec
        self.space = SearchSpace(spec)
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.objective_keys = [o.metric for o in spec.objectives]
        self.runs: dict[str, str] = {}
        """Member id -> its run."""
        self.earlier_runs: dict[str, str] | None = None
        """Member id -> run of the runs that existed when this tracker first looked (None: not yet)."""
        self.created: set[str] = set()
        """Members whose run this tracker created (RUNNING, no failure reason to clear)."""
        self.last_step: dict[str, int] = {}
        """Per member, the last step whose report is in its run (-1: none yet)."""
        self.provenance_tagged: set[str] = set()
        self.failed: set[str] = set()
        """Population members whose run this tracker closed FAILED because they diverged."""
        protocol = get_protocol(spec.evaluation.protocol)
        self.base_tags = {
            STUDY_TAG: spec.name,
            "dataset": spec.dataset.name,
            "protocol": protocol.name,
            "protocol_hash": protocol.hash,
            "representation": spec.evaluation.representation,
            "project_version": project_version(),
            "git_commit": git_commit(),
        }
        self.base_tags[GIT_COMMIT_TAG] = self.base_tags["git_commit"]

    def __reduce__(self) -> tuple:
        # Tune pickles its callbacks into the experiment snapshot; rebuild the client on restore
        return (StudyTracker, (self.spec, self.client.tracking_uri, self.experiment_id, self.parent_run_id))

    def _find_run(self, member_id: str) -> str | None:
        # one driver per study: the runs that exist before this tracker creates any are an earlier
        # driver's, listed once (paged) instead of a tag search per member that grows with the study
        if self.earlier_runs is None:
            self.earlier_runs = {
                run.data.tags[TRIAL_TAG]: run.info.run_id
                for run in nested_runs(self.client, self.experiment_id, self.parent_run_id)
                if TRIAL_TAG in run.data.tags
            }
        return self.earlier_runs.get(member_id)

    def run_id(self, member: Member | Any) -> str:
        """The MLflow run of a member: remembered, found again by tag, or created with its params.

        Args:
            member: a ``Member``, or a Tune trial of one member (its only member is meant).

        Returns:
            The run's id.
        """
        if not isinstance(member, Member):
            member = trial_members(member.trial_id, member.config)[0]
        if member.member_id in self.runs:
            return self.runs[member.member_id]
        run_id = self._find_run(member.member_id)
        if run_id is None:
            run_id = self._create_run(member)
            self.created.add(member.member_id)
            self.last_step[member.member_id] = -1
        self.runs[member.member_id] = run_id
        return run_id

    def _last_logged_step(self, run_id: str, keys: list[str]) -> int:
        """The last step at which any of ``keys`` was logged to ``run_id`` (-1: never).

        Every report holds ``images_per_sec``, so when it is among ``keys`` its history alone is
        read, not one history per key.
        """
        series = [IMAGES_PER_SEC] if IMAGES_PER_SEC in keys else keys
        return max(
            (m.step for key in series for m in self.client.get_metric_history(run_id, key)), default=-1
        )

    def _create_run(self, member: Member) -> str:
        config = member.config
        seed_index = config.get(TRIAL_INDEX, 0)
        seed = self.spec.seeds[seed_index]
        train_config = self.space.train_config(config, seed)
        tags = {
            **self.base_tags,
            PARENT_TAG: self.parent_run_id,
            TRIAL_TAG: member.member_id,
            "method": train_config.method.name,
            METHOD_PROVENANCE: METHODS[train_config.method.name].provenance,
            "seed": str(seed),
        }
        if member.population is not None:
            tags[POPULATION] = member.population
        model_number = self.space.model_number(config, seed_index)
        if model_number is not None:
            tags["dlib_model_num"] = str(model_number)
        searched = {k: v for k, v in config.items() if k not in (METHOD, TRIAL_INDEX)}
        tags.update({f"{SEARCHED_TAG_PREFIX}{k}": str(v)[:5000] for k, v in searched.items()})
        values = ", ".join(f"{k}={v}" for k, v in searched.items())
        where = f" (member {member.index} of population {member.population})" if member.population else ""
        tags[NOTE_TAG] = (f"{train_config.method.name} ({values}), seed {seed}: trial {member.member_id}"
                          f"{where} of study {self.spec.name}")
        run = self.client.create_run(
            self.experiment_id, run_name=f"{train_config.method.name}-{member.member_id}", tags=tags
        )
        params = [Param(k, str(v)) for k, v in sorted(train_config.flat_params().items())]
        for start in range(0, len(params), 100):
            self.client.log_batch(run.info.run_id, params=params[start:start + 100])
        return run.info.run_id

    def _fail(self, member: Member, reason: str) -> None:
        """Close a member's run FAILED with ``reason`` as its ``failure_reason`` tag."""
        run_id = self.run_id(member)
        self.client.set_tag(run_id, FAILURE_REASON, reason[:5000])
        self.client.set_terminated(run_id, status="FAILED")
        self.created.discard(member.member_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Open each member's run: created, or an earlier driver's reopened without its failure reason.

        A population member whose last result says it diverged keeps (or gets) its FAILED run.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the Tune trial that starts (``trial_id``, ``config``, ``last_result``).
            **info: further keyword arguments Tune passes (unused).
        """
        last = getattr(trial, "last_result", None)
        for member in trial_members(trial.trial_id, trial.config):
            if member.population is not None:
                own = member_result(last, member)
                if member_diverged(own):
                    if member.member_id not in self.failed:
                        self._fail(member, _divergence(own))
                        self.failed.add(member.member_id)
                    continue
            run_id = self.run_id(member)
            if member.member_id in self.created:  # created RUNNING just now, or running since
                self.created.discard(member.member_id)
                continue
            self._reopen(run_id)

    def _reopen(self, run_id: str) -> None:
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        if FAILURE_REASON in run.data.tags:  # why an earlier driver stopped it; it runs again now
            self.client.delete_tag(run_id, FAILURE_REASON)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Log each member's report to its run, each step once; close a member that diverged.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the reporting Tune trial.
            result: its report (a population's holds each member's under ``members``).
            **info: further keyword arguments Tune passes (unused).
        """
        for member in trial_members(trial.trial_id, trial.config):
            own = member_result(result, member)
            if not own:  # no entry for this member in the report
                continue
            diverged = member.population is not None and member_diverged(own)
            if member.member_id in self.failed:
                if diverged:  # a diverged member goes on appearing in its population's reports
                    continue
                self.failed.discard(member.member_id)  # the population restarted from before it diverged
                self._reopen(self.run_id(member))
            self._log_result(member, own)
            if diverged:
                self._fail(member, _divergence(own))
                self.failed.add(member.member_id)

    def _log_result(self, member: Member, result: dict[str, Any]) -> None:
        """One member's report as one ``log_batch`` (the first 1000 metrics, and any tag)."""
        key = member.member_id
        tags = []
        if DATASET_PROVENANCE in result and key not in self.provenance_tagged:
            tags.append(RunTag(DATASET_PROVENANCE, str(result[DATASET_PROVENANCE])[:5000]))
            self.provenance_tagged.add(key)
        values = tracked_metrics(result, self.objective_keys)
        metrics: list[Metric] = []
        run_id = self.run_id(member) if values or tags else None
        if values and run_id is not None:
            step = int(result.get(STEP, 0))
            if key not in self.last_step:  # a run of an earlier driver: what does it hold?
                self.last_step[key] = self._last_logged_step(run_id, list(values))
            # a step at or before the last logged one was trained again after a restore from an
            # earlier checkpoint (the trainer is deterministic, so the same numbers): logged once
            if step > self.last_step[key] or DIVERGED in values:
                self.last_step[key] = step
                now = int(time.time() * 1000)
                metrics = [Metric(k, v, now, step) for k, v in values.items()]
        if run_id is None or not (metrics or tags):
            return
        self.client.log_batch(run_id, metrics=metrics[:1000], tags=tags)
        for start in range(1000, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start:start + 1000])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Finish each member's run with its final files; a diverged member's run stays FAILED.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the completed Tune trial (``checkpoint``: its final checkpoint, or None).
            **info: further keyword arguments Tune passes (unused).
        """
        last = getattr(trial, "last_result", None)
        done: list[tuple[Member, int]] = []
        for member in trial_members(trial.trial_id, trial.config):
            own = member_result(last, member)
            if member.population is None or not member_diverged(own):
                done.append((member, int(own.get(STEP, 0))))
            elif member.member_id not in self.failed:
                self._fail(member, _divergence(own))
                self.failed.add(member.member_id)
        checkpoint = trial.checkpoint
        if checkpoint is not None and done:
            with checkpoint.as_directory() as directory:
                for member, step in done:
                    files = member_files(directory, member)
                    if files.is_dir():
                        self._log_final(self.run_id(member), files, step)
        for member, _ in done:
            self.client.set_terminated(self.run_id(member), status="FINISHED")

    def _log_final(self, run_id: str, directory: Path, step: int) -> None:
        """The final checkpoint's files under ``final/``, and its ``model/`` as the run's logged model."""
        for entry in sorted(directory.iterdir()):
            if entry.name == MODEL_DIR and entry.is_dir():
                log_model(self.client, self.experiment_id, run_id, entry, step)
            elif entry.is_dir():
                self.client.log_artifacts(run_id, str(entry), artifact_path=f"final/{entry.name}")
            else:
                self.client.log_artifact(run_id, str(entry), artifact_path="final")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Close each member's run FAILED: with the trial's error, or a diverged member's own reason.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the failed Tune trial (``error_file`` or ``error_msg``).
            **info: further keyword arguments Tune passes (unused).
        """
        last = getattr(trial, "last_result", None)
        reason = None
        for member in trial_members(trial.trial_id, trial.config):
            if member.member_id in self.failed:
                continue
            own = member_result(last, member)
            if member.population is not None and member_diverged(own):
                self._fail(member, _divergence(own))
                self.failed.add(member.member_id)
                continue
            reason = reason or failure_reason(trial)
            self._fail(member, reason)


def _divergence(result: dict[str, Any]) -> str:
    """A diverged member's reason: its ``failure`` text, or the step it diverged at."""
    return str(result.get(FAILURE) or f"Diverged: training diverged at step {result.get(STEP, '?')}")


def parent_run_content(spec: StudySpec) -> tuple[dict[str, str], list[Param]]:
    """What a study's parent run holds besides the spec file: its description and source commit as
    MLflow's own tags, and the spec's values (fixed ones, and each search's definition) as params.

    Args:
        spec: the study spec.

    Returns:
        ``(tags, params)``; params are the spec flattened with dots (``train.steps``,
        ``methods.beta_vae.beta.values``), lists as JSON text.
    """
    data = spec.model_dump(mode="json", exclude={"description"})
    flat = pd.json_normalize(data, sep=".").iloc[0].to_dict()
    params = [Param(key, (json.dumps(value) if isinstance(value, list | dict) else str(value))[:6000])
              for key, value in sorted(flat.items()) if value is not None]
    description = " ".join((spec.description or f"study {spec.name}").split())
    return {NOTE_TAG: description, GIT_COMMIT_TAG: git_commit()}, params


def log_best(client: MlflowClient, parent_run_id: str, spec: StudySpec, table: pd.DataFrame) -> None:
    """Put the best completed trial by each objective on the study's parent run.

    Metrics ``best.<objective>``; tags ``best.<objective>.trial_id`` and, for the first objective,
    ``best.method`` and ``best.search.<name>`` (tags, as a resumed study may find a better one).

    Args:
        client: the study's MLflow client.
        parent_run_id: the parent run.
        spec: the study spec.
        table: the results table (``results_table``).
    """
    if table.empty or "status" not in table.columns:
        return
    done = table[table["status"] == "completed"]
    metrics, tags = [], []
    now = int(time.time() * 1000)
    for index, objective in enumerate(spec.objectives):
        column = f"{EVALUATION}{objective.metric}"
        if column not in done.columns or done[column].dropna().empty:
            continue
        scores = done[column].astype(float)
        best = done.loc[scores.idxmax() if objective.mode == "max" else scores.idxmin()]
        metrics.append(Metric(f"best.{objective.metric}", float(best[column]), now, 0))
        tags.append(RunTag(f"best.{objective.metric}.trial_id", str(best["trial_id"])))
        if index == 0:
            tags.append(RunTag("best.method", str(best["method"])))
            tags.extend(RunTag(f"best.{key}", str(value)[:5000]) for key, value in best.items()
                        if str(key).startswith(SEARCH) and pd.notna(value))
    if metrics:
        client.log_batch(parent_run_id, metrics=metrics, tags=tags)


def failure_reason(trial: Any) -> str:
    """The last line of a failed trial's error (``Diverged: training diverged at step ...``)."""
    path = getattr(trial, "error_file", None) or ""
    text = Path(path).read_text() if path and Path(path).is_file() else (trial.error_msg or "unknown error")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def close_open_runs(client: MlflowClient, experiment_id: str, parent_run_id: str, reason: str) -> int:
    """Mark every nested run of the study still RUNNING as KILLED with ``reason``; their number."""
    open_runs = nested_runs(client, experiment_id, parent_run_id, status="RUNNING")
    for run in open_runs:
        client.set_tag(run.info.run_id, FAILURE_REASON, reason)
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
    return len(open_runs)


def close_lost_runs(client: MlflowClient, experiment_id: str, parent_run_id: str, known: set[str],
                    reason: str = LOST_AFTER_SNAPSHOT) -> int:
    """Close the nested runs of members of trials the resumed Tune does not hold: KILLED, with ``reason``.

    A driver killed between two of Tune's experiment snapshots leaves runs of trials it created (and
    maybe finished) after the last one; the restored Tune never continues them.

    Args:
        client: the study's MLflow client.
        experiment_id: the study's experiment.
        parent_run_id: the study's parent run.
        known: the member ids (``trial_members``) of the trials of Tune's snapshot, each run's
            ``trial_id`` tag (empty when Tune wrote none and starts over).
        reason: their ``failure_reason`` tag.

    Returns:
        How many runs were closed (runs closed with ``reason`` before are left as they are).
    """
    closed = 0
    for run in nested_runs(client, experiment_id, parent_run_id):
        tags = run.data.tags
        if tags.get(TRIAL_TAG) in known or tags.get(FAILURE_REASON) == reason:
            continue
        client.set_tag(run.info.run_id, FAILURE_REASON, reason)
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
        closed += 1
    return closed
