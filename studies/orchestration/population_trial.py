"""A population trial: one Ray Tune trial training several members as one fused model.

Under ``resources.population`` above 1 the searcher packs members (configurations-and-seeds) whose
training shares everything but the seed and the loss weights into one Tune trial
(``members.py``); ``run_population_trial`` trains them with ``disent_core.population.
train_population``, whose members reach the numbers of their own ``train`` up to float rounding
(docs/populations.md). Everything a one-member trial does (``trainable.run_member_trial``) is done per
member: the same report keys at the same steps (under ``members``), evaluations with the same
protocol, seed and metrics, and the same final files (config, scores, figures, the member's own
``checkpoint.pt`` in the single trainer's format, the logged model) under ``members/<index>/`` of the
final checkpoint. Each result also carries, at its top level, the population's step, ``evaluated``
and each objective's best member value, which Tune requires.

A member that diverges fails alone: the population masks it out and goes on, and from then on every
result carries its last report with ``diverged`` 1, its step and ``failure`` (the reason); its folder
holds ``diverged.json`` with that result. Checkpoints are the population's (``population.pt``, every
member's state at one step), reported to Tune whenever the trainer writes one: a retried or resumed
trial continues the whole population from it step-exactly, its diverged members from their markers.
The final checkpoint holds the members' own checkpoints instead of ``population.pt``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search.repeater import TRIAL_INDEX

from disent_core.errors import Diverged
from disent_core.population import (
    POPULATION_CHECKPOINT_NAME,
    extract_member_checkpoint,
    load_population_checkpoint,
    train_population,
)
from disent_core.train import Report
from studies.orchestration.members import MEMBER_FILES, MEMBERS, Member, is_population, trial_members
from studies.orchestration.trainable import (
    DIVERGED_MARKER,
    evaluate_report,
    evaluated_here,
    real_data_check,
    run_member_trial,
    training_result,
    trial_resources,
    trial_work_dir,
    write_final_files,
)
from studies.results import DIVERGED, EVALUATED, FAILURE, STEP, is_number
from studies.spec import StudySpec
from studies.spec.space import SearchSpace


def run_trial(config: dict[str, Any], spec_data: dict[str, Any]) -> None:
    """Train, evaluate and report one Tune trial (the function ``tune.Tuner`` runs).

    Args:
        config: the trial's config: one member's, or a population's (``members.is_population``).
        spec_data: the study spec, as JSON data.
    """
    if is_population(config):
        run_population_trial(config, spec_data)
    else:
        run_member_trial(config, spec_data)


def _best(values: list[float], mode: str) -> float:
    finite = [v for v in values if is_number(v)]
    if not finite:
        return math.nan
    return max(finite) if mode == "max" else min(finite)


def _restore(work: Path) -> tuple[Path | None, dict[int, dict[str, Any]]]:
    """Copy the population checkpoint and the diverged members' markers of ``tune.get_checkpoint``.

    Returns:
        ``(population checkpoint to resume from or None, member index -> last result of each
        member that had diverged)``.
    """
    checkpoint = tune.get_checkpoint()
    diverged: dict[int, dict[str, Any]] = {}
    if checkpoint is None:
        return None, diverged
    resume_from = None
    with checkpoint.as_directory() as restored:
        restored = Path(restored)
        if (restored / POPULATION_CHECKPOINT_NAME).is_file():
            resume_from = Path(shutil.copy2(restored / POPULATION_CHECKPOINT_NAME, work))
        for marker in sorted(restored.glob(f"{MEMBER_FILES}/*/{DIVERGED_MARKER}")):
            index = int(marker.parent.name)
            (work / MEMBER_FILES / str(index)).mkdir(parents=True, exist_ok=True)
            shutil.copy2(marker, work / MEMBER_FILES / str(index) / DIVERGED_MARKER)
            diverged[index] = json.loads(marker.read_text())["result"]
    return resume_from, diverged


def run_population_trial(config: dict[str, Any], spec_data: dict[str, Any]) -> None:
    """Train, evaluate and report a population trial's members (``run_trial`` hands it over).

    Args:
        config: the trial's config, ``{"population": [member config, ...]}``.
        spec_data: the study spec, as JSON data.
    """
    spec = StudySpec.model_validate(spec_data)
    space = SearchSpace(spec)
    members: list[Member] = trial_members(tune.get_context().get_trial_id(), config)
    seeds = [spec.seeds[m.config.get(TRIAL_INDEX, 0)] for m in members]
    train_configs = [space.train_config(m.config, seed) for m, seed in zip(members, seeds, strict=True)]
    steps = train_configs[0].train.steps
    evaluation, objectives = spec.evaluation, spec.objectives
    work = trial_work_dir(spec.name)
    resume_from, latest = _restore(work)
    resources = trial_resources()
    carried = [{o.metric: math.nan for o in objectives} for _ in members]
    waiting: list[tuple[int, Report]] = []
    sent = [-1]  # the step of the last result reported

    def folder(index: int) -> Path:
        directory = work / MEMBER_FILES / str(index)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def member_metrics(index: int, report: Report, final_state: dict | None) -> dict[str, Any]:
        metrics = training_result(report, resources)
        if evaluated_here(spec, report, steps):
            train_config = train_configs[index]
            scores = evaluate_report(spec, report, train_config)
            metrics.update(scores)
            metrics[EVALUATED] = 1
            carried[index].update({k: v for k, v in scores.items() if k in carried[index]})
            if report.step == steps:
                directory = folder(index)
                write_final_files(directory, report, train_config, scores)
                if final_state is not None:
                    member_checkpoint = extract_member_checkpoint(final_state, index, directory)
                    if spec.tracking.log_model:
                        from studies.orchestration.logged_model import write_model

                        write_model(directory, member_checkpoint, report.dataset, evaluation.seed)
        metrics.update({k: v for k, v in carried[index].items() if k not in metrics})
        return metrics

    def send(step: int, evaluated: bool, with_checkpoint: bool) -> None:
        result: dict[str, Any] = {STEP: step, EVALUATED: int(evaluated)}
        for objective in objectives:
            result[objective.metric] = _best([r.get(objective.metric, math.nan) for r in latest.values()],
                                             objective.mode)
        result[MEMBERS] = {str(index): latest[index] for index in sorted(latest)}
        checkpoint = tune.Checkpoint.from_directory(str(work)) if with_checkpoint else None
        tune.report(result, checkpoint=checkpoint)
        sent[0] = step

    def on_failure(index: int, exc: Diverged) -> None:
        failure = {**latest.get(index, {}), **carried[index], DIVERGED: 1, STEP: exc.step,
                   FAILURE: f"{type(exc).__name__}: {exc}"}
        latest[index] = failure
        (folder(index) / DIVERGED_MARKER).write_text(json.dumps({"step": exc.step, "result": failure}))

    def on_report(index: int, report: Report) -> None:
        waiting.append((index, report))
        live = len(members) - sum(1 for r in latest.values() if r.get(DIVERGED) == 1)
        if len(waiting) < live:
            return
        step = waiting[0][1].step
        at_end = step == steps
        checkpoint = waiting[0][1].checkpoint
        final_state = load_population_checkpoint(checkpoint) if at_end and checkpoint is not None else None
        for member_index, member_report in waiting:
            latest[member_index] = member_metrics(member_index, member_report, final_state)
        evaluated = any(latest[i].get(EVALUATED) == 1 for i, _ in waiting)
        waiting.clear()
        if at_end and checkpoint is not None:
            checkpoint.unlink()  # the members' own checkpoints replace it in the final checkpoint
        send(step, evaluated, with_checkpoint=checkpoint is not None or at_end)

    keep = spec.storage.keep_checkpoints
    try:
        result = train_population(
            train_configs, on_report, on_failure=on_failure,
            checkpoint_dir=None if keep == "none" else work, resume_from=resume_from,
            check_dataset=real_data_check(spec),
        )
        if sent[0] != result.step:  # every member diverged: no report at the last step trained
            send(result.step, evaluated=False, with_checkpoint=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
