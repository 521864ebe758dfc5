"""The Optuna side of a study: sampler, ``OptunaSearch`` and the seed repeater around it.

Optuna proposes configurations; each configuration runs once per seed of the spec. The repeat is
Ray Tune's own ``Repeater`` (the seed is ``seeds[__trial_index__]``), with two gaps of it filled:

- it forwards a single metric only; a multi-objective study needs the mean of each objective;
- its ``save``/``restore`` keep only the wrapped searcher, so after ``Tuner.restore`` it forgets
  which trials belong to which configuration. Here its own state is saved beside the searcher's.

On restore it also closes the Optuna trials that were asked after the last experiment snapshot:
Tune restarts those configurations under new trials, and the old Optuna trials would otherwise stay
RUNNING forever (stack.md section 5). They are marked FAIL with a ``failure_reason``.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from disent_core.errors import ConfigError
from studies.space import SearchSpace
from studies.spec import StudySpec

LOST_ON_RESTORE = "lost: asked after the last snapshot before the driver stopped; Tune ran it again"


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


def fail_running_trials(study: optuna.Study, keep: set[int], reason: str) -> int:
    """Mark RUNNING trials of ``study`` whose numbers are not in ``keep`` as FAIL; their number."""
    count = 0
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if frozen.number in keep:
            continue
        optuna.trial.Trial(study, frozen._trial_id).set_user_attr("failure_reason", reason)
        study.tell(frozen.number, state=TrialState.FAIL)
        count += 1
    return count


class SeedRepeater(Repeater):
    """Tune's ``Repeater`` that averages every objective and survives ``Tuner.restore``."""

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

    def save(self, checkpoint_path: str) -> None:
        inner = checkpoint_path + ".searcher"
        self.searcher.save(inner)
        with open(inner, "rb") as f:
            searcher_state = f.read()
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"repeater": self.get_state(), "searcher": searcher_state}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            saved = pickle.load(f)
        inner = checkpoint_path + ".searcher"
        with open(inner, "wb") as f:
            f.write(saved["searcher"])
        self.searcher.restore(inner)
        self.set_state(saved["repeater"])
        if isinstance(self.searcher, OptunaSearch):
            # trials known to the restored searcher will be told; every other RUNNING one was lost
            known = {t.number for t in self.searcher._ot_trials.values()}
            fail_running_trials(self.searcher._ot_study, known, LOST_ON_RESTORE)
