"""A Ray Tune trial of one member: one call of ``disent_core.train.train``.

(A trial of several members is ``population_trial.py``'s; its ``run_trial`` is what Tune runs.)

The trial's config holds only what the search decided (``method``, ``beta_vae.beta``, ...) and
Tune's repeat index, which picks the seed; the spec travels with ``tune.with_parameters``. Every
trainer report becomes one ``tune.report``: loss terms (``loss/<term>``), KL per dimension
(``kl/<i>``, or ``info/<i>`` for a method without a KL), schedule values and learning rates
(``schedule/<name>``), images per second, and at the configured steps the evaluation scores
(``mig.discrete_mig``, ...; ``evaluated`` is 1 then), and the data's provenance
(``dataset_provenance``: ``procedural`` or the real files' SHA-256). Under a protocol comparable
with published numbers the trial refuses procedural data before training. The objective keys are
present in every report, NaN before the first evaluation, because Tune requires them; ASHA is
validated to compare trials only after their first evaluation.

Checkpoints are reported with ``tune.Checkpoint`` whenever the trainer writes one, and a retried
trial resumes from ``tune.get_checkpoint()`` step-exactly. The final checkpoint also holds the
trial's config, its scores and figures (latent traversals, reconstructions, KL per dimension: small
PNGs, ``FIGURE_CELL`` pixels per image, ``FIGURE_COLORS`` grey levels or colours, ``FIGURE_DPI``)
and, under ``tracking.log_model``, the final model as an MLflow PyTorch model (``model/``, built
from the final checkpoint by ``logged_model.write_model``, which only such trials import, MLflow
with it; there is none under ``keep_checkpoints: none``, which writes no checkpoint to build it
from).

How many checkpoints a trial leaves is the spec's ``storage.keep_checkpoints``
(``checkpoint_config`` gives Tune's part, ``checkpoints_kept`` the count):

- ``final``: Tune keeps the latest checkpoint only; at the end that is the final one, which the
  tracker also uploads to MLflow.
- ``best``: Tune also keeps the best by the first objective. Only a checkpoint written at an
  evaluated step has a score (``CHECKPOINT_SCORE``; NaN otherwise, which Tune ranks last), so the
  kept one is the model whose score it is, not a later one carrying that score forward.
- ``all``: Tune keeps every checkpoint.
- ``none``: the trainer writes no checkpoint; the final report carries a directory with the config,
  scores and figures only, and a retried trial starts from step 0 (so does a restored one whose
  checkpoint holds no ``checkpoint.pt``).

When every trial reports a single checkpoint (``writes_one_checkpoint``, e.g. ``checkpoint_every``
0), Tune is given no limit: the same files are kept, and Tune does not force an experiment snapshot
at every trial's end (``checkpoint_config``).

A diverged trial reports a checkpoint holding only ``diverged.json`` and raises ``Diverged``, so
Tune records it as failed with the reason; if Tune retries it, the retry fails at once from that
marker instead of training again into the same divergence.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import yaml
from ray import tune
from ray.tune.search.repeater import TRIAL_INDEX

from disent_core.analysis.figures import kl_per_dim_plot, latent_traversal_grid, reconstruction_grid
from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.provenance import require_real_data
from disent_core.errors import Diverged
from disent_core.metrics import evaluate
from disent_core.metrics.protocol import get_protocol
from disent_core.train import CHECKPOINT_NAME, Report, train
from studies.results import (
    ACTIVE_DIMS,
    CHECKPOINT_SCORE,
    DATASET_PROVENANCE,
    DIVERGED,
    EVALUATED,
    IMAGES_PER_SEC,
    INFO,
    KL,
    LOSS,
    RESOURCES,
    SCHEDULE,
    STEP,
)
from studies.spec import StudySpec
from studies.spec.space import SearchSpace, default_checkpoint_every

DIVERGED_MARKER = "diverged.json"
WORK_ROOT = Path("~/.cache/disent_studies/trials")
ACTIVE_KL = 0.01
FIGURES = ("latent_traversals.png", "reconstructions.png", "kl_per_dim.png")
"""The figures of a trial's final checkpoint directory."""
FIGURE_CELL = 48
"""Pixels per image in the trial's image grids (the data's 64, area-averaged). With ``FIGURE_COLORS``
a quarter of the bytes of full-size lossless grids: 44 KB of traversals at 10 latents, not 176 KB."""
FIGURE_COLORS = 64
"""Grey levels (or palette colours for RGB data) of the trial's image grids."""
FIGURE_DPI = 80
"""Resolution of the trial's KL plot (labels stay readable down to about 70)."""


def report_metrics(report: Report) -> dict[str, float]:
    """The training part of one Tune result."""
    metrics: dict[str, float] = {STEP: report.step, IMAGES_PER_SEC: report.images_per_sec}
    metrics.update({f"{LOSS}{k}": v for k, v in report.terms.items()})
    prefix = KL if report.information_name == "KL" else INFO
    metrics.update({f"{prefix}{i}": v for i, v in enumerate(report.latent_information)})
    metrics.update({f"{SCHEDULE}{k}": v for k, v in report.schedules.items()})
    metrics[ACTIVE_DIMS] = sum(v > ACTIVE_KL for v in report.latent_information)
    return metrics


def write_final_files(directory: Path, report: Report, config: Any, scores: Any) -> None:
    """Write a trained model's final files into ``directory``: ``config.yaml``, ``scores.json`` (with
    the dataset and its provenance) and ``FIGURES``.

    Args:
        directory: the trial's (or population member's) final checkpoint directory.
        report: the final ``Report``.
        config: the training config.
        scores: the final ``evaluate`` result.
    """
    (directory / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    payload = {
        "dataset": {**config.dataset.model_dump(mode="json"),
                    "provenance": report.dataset.provenance.as_dict()},
        **scores.record(),
    }
    (directory / "scores.json").write_text(json.dumps(payload, indent=2))
    device = next(report.method.parameters()).device
    traversals, reconstructions, kl = (directory / name for name in FIGURES)
    small = {"cell": FIGURE_CELL, "colors": FIGURE_COLORS}
    latent_traversal_grid(report.method, report.dataset, traversals, device=device, **small)
    reconstruction_grid(report.method, report.dataset, reconstructions, device=device, **small)
    kl_per_dim_plot(report.latent_information, kl, name=report.information_name, dpi=FIGURE_DPI)


def writes_one_checkpoint(spec: StudySpec) -> bool:
    """Whether every trial of the spec reports exactly one Tune checkpoint (the final one).

    True under ``keep_checkpoints: none`` (the final files only) and when every method's trials
    train no further than their ``train.checkpoint_every`` (set, or its default). A diverged trial
    also reports one (its marker, instead of the final checkpoint).

    Args:
        spec: the study spec.

    Returns:
        Whether no trial ever reports a second checkpoint.
    """
    if spec.storage.keep_checkpoints == "none":
        return True
    every = spec.train.get("checkpoint_every")
    if every is not None and not isinstance(every, int):
        return False  # searched: some trials may checkpoint often
    for method in spec.methods:
        steps = spec.steps_of(method)
        interval = default_checkpoint_every(spec, steps) if every is None else every
        if interval and interval < steps:
            return False
    return True


def checkpoint_config(spec: StudySpec) -> tune.CheckpointConfig:
    """What Tune keeps of a trial's checkpoints under the spec's ``storage.keep_checkpoints``.

    Tune forces an experiment snapshot whenever a trial has reported ``num_to_keep`` checkpoints
    since the last one, so that the snapshot never names a checkpoint it has since deleted. The
    snapshot holds every trial of the study (about 30 KB each), so at thousands of trials a forced
    snapshot per trial end would take most of the driver's time. When each trial reports one
    checkpoint there is nothing to delete, and keeping "all" keeps the same files without forcing:
    snapshots then follow Tune's own period (``TUNE_GLOBAL_CHECKPOINT_S``).

    Args:
        spec: the study spec.

    Returns:
        ``all``, or any policy when trials report one checkpoint (``writes_one_checkpoint``): no
        limit; ``best``: the best by ``CHECKPOINT_SCORE`` (the first objective's mode) and, as
        always, the latest; ``final`` and ``none``: the latest.
    """
    keep = spec.storage.keep_checkpoints
    if keep == "all" or writes_one_checkpoint(spec):
        return tune.CheckpointConfig(num_to_keep=None)
    if keep == "best":
        return tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=CHECKPOINT_SCORE,
                                     checkpoint_score_order=spec.objectives[0].mode)
    return tune.CheckpointConfig(num_to_keep=1)


def checkpoints_kept(spec: StudySpec, steps: int, checkpoint_every: int) -> tuple[int, int]:
    """How many training checkpoints one finished trial leaves, at most.

    Args:
        spec: the study spec (``storage.keep_checkpoints``, ``evaluation.every``).
        steps: the trial's ``train.steps``.
        checkpoint_every: its ``train.checkpoint_every`` (0: at the end only).

    Returns:
        ``(in Tune's storage, in MLflow)``: ``final`` (1, 1); ``best`` (2, 1) when intermediate
        steps are evaluated (the best and the final), else (1, 1); ``all`` (every checkpoint, 1);
        ``none`` (0, 0).
    """
    keep = spec.storage.keep_checkpoints
    if keep == "none":
        return 0, 0
    if keep == "all":
        written = steps // checkpoint_every + (steps % checkpoint_every != 0) if checkpoint_every else 1
        return written, 1
    if keep == "best" and 0 < spec.evaluation.every < steps:
        return 2, 1
    return 1, 1


def trial_work_dir(study: str) -> Path:
    """An empty scratch directory for the trial's checkpoints and final files.

    ``~/.cache/disent_studies/trials/<study>/<trial id>`` on the node that runs the trial, not the
    system temp dir, and the same for every attempt of the trial: it is emptied first, so what an
    attempt killed before its cleanup left (a killed worker, or a killed driver and then
    ``resume``) goes when Tune restarts the trial. The trial removes it when an attempt ends.
    """
    work = WORK_ROOT.expanduser() / study / tune.get_context().get_trial_id()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def trial_resources() -> dict[str, Any]:
    """What the running trial was given: its GPUs (``resources/gpus``) and ``CUDA_VISIBLE_DEVICES``."""
    return {f"{RESOURCES}gpus": float(len(ray.get_gpu_ids())),
            f"{RESOURCES}cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}


def training_result(report: Report, resources: dict[str, Any]) -> dict[str, Any]:
    """A report's training part of a trial result, not yet evaluated (``evaluated`` 0).

    Args:
        report: the trainer's report.
        resources: ``trial_resources()``.

    Returns:
        ``report_metrics``, the resources, ``evaluated`` and the dataset's provenance label.
    """
    return {**report_metrics(report), **resources, EVALUATED: 0,
            DATASET_PROVENANCE: report.dataset.provenance.label()}


def evaluated_here(spec: StudySpec, report: Report, steps: int) -> bool:
    """Whether the trial evaluates at this report: at the end and every ``evaluation.every`` steps."""
    every = spec.evaluation.every
    return report.step == steps or bool(every and report.step % every == 0)


def evaluate_report(spec: StudySpec, report: Report, train_config: Any) -> dict[str, float]:
    """The scores of a report's model under the spec's evaluation (protocol, seed, metrics, kind).

    Args:
        spec: the study spec.
        report: the trainer's report (its live method and dataset).
        train_config: the trial's training config (its ``train.threads`` score in parallel).

    Returns:
        ``evaluate``'s scores.
    """
    evaluation = spec.evaluation
    return evaluate(report.method, report.dataset, protocol=evaluation.protocol, seed=evaluation.seed,
                    metrics=evaluation.metrics, n_jobs=train_config.train.threads or 1,
                    representation_kind=evaluation.representation)


def real_data_check(spec: StudySpec) -> Callable[[GroundTruthDataset], None]:
    """The check a trial runs on its built dataset: real data under a comparable protocol.

    Args:
        spec: the study spec.

    Returns:
        A function that raises (``require_real_data``) for procedural data under such a protocol.
    """
    def check_dataset(dataset: GroundTruthDataset) -> None:
        protocol = get_protocol(spec.evaluation.protocol)
        if protocol.comparable:
            require_real_data(spec.dataset.name, dataset.provenance, protocol.name)

    return check_dataset


def run_member_trial(config: dict[str, Any], spec_data: dict[str, Any]) -> None:
    """Train, evaluate and report a trial of one member (``population_trial.run_trial`` hands it over)."""
    spec = StudySpec.model_validate(spec_data)
    space = SearchSpace(spec)
    seed = spec.seeds[config.get(TRIAL_INDEX, 0)]
    train_config = space.train_config(config, seed)
    evaluation = spec.evaluation
    keep = spec.storage.keep_checkpoints
    first = spec.objectives[0].metric
    work = trial_work_dir(spec.name)
    resume_from = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as restored:
            marker = Path(restored) / DIVERGED_MARKER
            if marker.is_file():
                info = json.loads(marker.read_text())
                raise Diverged(info["step"], info["term"], info["value"])
            # keep_checkpoints: none reports the final files without a training checkpoint
            if (Path(restored) / CHECKPOINT_NAME).is_file():
                shutil.copy2(Path(restored) / CHECKPOINT_NAME, work / CHECKPOINT_NAME)
                resume_from = work / CHECKPOINT_NAME
    carried = {o.metric: math.nan for o in spec.objectives}
    resources = trial_resources()
    last: dict[str, Any] = {}

    def on_report(report: Report) -> None:
        metrics = training_result(report, resources)
        at_end = report.step == train_config.train.steps
        if evaluated_here(spec, report, train_config.train.steps):
            scores = evaluate_report(spec, report, train_config)
            metrics.update(scores)
            metrics[EVALUATED] = 1
            carried.update({k: v for k, v in scores.items() if k in carried})
            if at_end:
                write_final_files(work, report, train_config, scores)
                if spec.tracking.log_model and report.checkpoint is not None:
                    from studies.orchestration.logged_model import write_model

                    write_model(work, report.checkpoint, report.dataset, evaluation.seed)
        if keep == "best":
            metrics[CHECKPOINT_SCORE] = metrics.get(first, math.nan) if metrics[EVALUATED] else math.nan
        metrics.update({k: v for k, v in carried.items() if k not in metrics})
        last.clear()
        last.update(metrics)
        if report.checkpoint is not None or at_end:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(work)))
        else:
            tune.report(metrics)

    try:
        train(train_config, on_report, checkpoint_dir=None if keep == "none" else work,
              resume_from=resume_from, check_dataset=real_data_check(spec))
    except Diverged as exc:
        shutil.rmtree(work)
        work.mkdir()
        (work / DIVERGED_MARKER).write_text(
            json.dumps({"step": exc.step, "term": exc.term, "value": exc.value, "message": str(exc)})
        )
        failure = {**last, **carried, DIVERGED: 1, STEP: exc.step}
        if keep == "best":
            failure[CHECKPOINT_SCORE] = math.nan
        tune.report(failure, checkpoint=tune.Checkpoint.from_directory(str(work)))
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
