"""The Optuna side of a study: sampler, ``OptunaSearch`` and the seed repeater around it.

Optuna proposes configurations; each configuration runs once per seed of the spec. The repeat is
Ray Tune's own ``Repeater`` (the seed is ``seeds[__trial_index__]``); it forwards a single metric
only, so ``SeedRepeater`` tells a multi-objective study the mean of each objective.

Restoring after the driver died (``StudySearch``): Tune restores its trials, the repeater and the
searcher from its last experiment snapshot, while Optuna's storage holds every trial asked since.
A trial asked after the snapshot has no Tune trial any more; left RUNNING it would never end, and
a ``GridSampler`` would count its grid point as taken and give a later trial a point that already
ran (docs/provenance.md, "Stack behaviours the code relies on"). Such trials are marked FAIL with
a ``failure_reason`` and asked again: a WAITING copy with the same parameters (and grid point) is
queued, Optuna's ``RetryHeartbeatStaleTrialCallback``, so the next configuration Tune asks for is
the lost one.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from disent_core.errors import ConfigError
from studies.space import SearchSpace
from studies.spec import StudySpec

LOST_ON_RESTORE = "lost: asked after the last snapshot before the driver stopped; asked again"


def make_sampler(spec: StudySpec, space: SearchSpace) -> optuna.samplers.BaseSampler:
    seed = spec.search.seed
    algorithm = spec.search.algorithm
    if algorithm == "grid":
        return optuna.samplers.GridSampler({"grid_point": list(range(len(space.grid)))}, seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def num_configurations(spec: StudySpec, space: SearchSpace) -> int:
    """How many configurations the search proposes (each runs once per seed)."""
    if space.grid and spec.search.num_trials is not None and spec.search.num_trials > len(space.grid):
        raise ConfigError(
            f"search.num_trials: {spec.search.num_trials} is more than the {len(space.grid)} grid "
            "configurations; leave it out to run the whole grid"
        )
    if spec.search.num_trials is not None:
        return spec.search.num_trials
    return len(space.grid) if space.grid else 10


def fail_running_trials(study: optuna.Study, keep: set[int], reason: str, retry: bool = False) -> int:
    """Mark RUNNING trials of ``study`` whose numbers are not in ``keep`` as FAIL; their number.

    With ``retry``, each is first queued again as a WAITING copy (same parameters, same grid point).
    """
    count = 0
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if frozen.number in keep:
            continue
        if retry:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                RetryHeartbeatStaleTrialCallback()(study, frozen)
        optuna.trial.Trial(study, frozen._trial_id).set_user_attr("failure_reason", reason)
        study.tell(frozen.number, state=TrialState.FAIL)
        count += 1
    return count


class StudySearch(OptunaSearch):
    """``OptunaSearch`` that, restored from a snapshot, fails and asks again the Optuna trials
    asked after it (see the module docstring)."""

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        known = {t.number for t in self._ot_trials.values()}
        fail_running_trials(self._ot_study, known, LOST_ON_RESTORE, retry=True)


class SeedRepeater(Repeater):
    """Tune's ``Repeater`` that tells the searcher the mean over seeds of every objective."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, **kwargs: Any) -> None:
        metrics = self.searcher.metric if isinstance(self.searcher.metric, list) else [self.searcher.metric]
        group = self._trial_id_to_group.get(trial_id)
        if group is None:
            return
        values = [result.get(m, np.nan) if result else np.nan for m in metrics]
        group.report(trial_id, values)
        if group.finished_reporting():
            scores = np.asarray(group.scores(), dtype=float)
            finite = np.isfinite(scores).any(axis=0)
            means = [float(np.nanmean(scores[:, i])) if finite[i] else None for i in range(len(metrics))]
            summary = None if any(m is None for m in means) else dict(zip(metrics, means, strict=True))
            self.searcher.on_trial_complete(
                group.primary_trial_id, result=summary, error=summary is None and kwargs.get("error", False)
            )
