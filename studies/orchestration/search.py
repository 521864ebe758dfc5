"""The Optuna side of a study: the sampler, and ``StudySearch``, the Ray Tune searcher around it.

Optuna proposes configurations; each configuration runs once per seed of the spec.
``StudySearch`` is a Ray Tune ``Searcher`` that drives an Optuna study through its public
ask-and-tell interface: the first Tune trial of a configuration asks Optuna for a trial and runs
the define-by-run space on it, and the configuration is then suggested once per seed, with
``__trial_index__`` (Tune's ``TRIAL_INDEX``) the seed's index, as Tune's ``Repeater`` does. When every
seed of a configuration has ended, Optuna is told the mean over seeds of every objective (seeds
without a value are left out of the mean; a configuration none of whose seeds gave a value is told
FAIL if its last trial errored, PRUNED otherwise). The grouping is done here rather than by
``Repeater`` + ``OptunaSearch`` because those forward a single metric only and keep their state in
private attributes that restoring would have to read.

Restoring after the driver died (``StudySearch.restore``): Tune restores its trials and the
searcher's state as of its last experiment snapshot, while Optuna's storage holds every trial asked
since. A trial asked after the snapshot has no Tune trial any more; left RUNNING it would never
end, and a ``GridSampler`` would count its grid point as taken and give a later trial a point that
already ran (docs/provenance.md, "Stack behaviours the code relies on"). Such trials are marked
FAIL with a ``failure_reason`` user attribute and asked again: a WAITING copy with the same
parameters is queued first (Optuna's public ``RetryHeartbeatStaleTrialCallback``), so the next
configuration Tune asks for is the lost one. The copy keeps the lost trial's system attributes,
hence its grid point: ``study.enqueue_trial`` would give a copy without one, which a
``GridSampler`` neither counts as visiting its point nor can tell (a ``KeyError`` in its
``after_trial`` when one point is left). A RUNNING trial cannot be given a user attribute through
``Study``, so ``failure_reason`` is written through the storage (``BaseStorage.set_trial_user_attr``),
an object this code creates itself.

A configuration Optuna was told after the snapshot cannot be undone (a finished Optuna trial is
final), so it is run again instead of being asked anew: the trials of a configuration the restored
searcher knows run again from the snapshot's state when they ended after it, and telling it again
is skipped (``tell(skip_if_finished=True)``); a configuration asked and told after the snapshot,
unknown to the restored searcher, is queued to be suggested again, seed by seed, under its own
Optuna trial (``replay``), before anything new is asked. The trainer is deterministic, so the
trials run again reach the numbers Optuna holds. Each configuration thus has one finished Optuna
trial, and each grid point and seed one Tune trial, however the driver stopped.
"""

from __future__ import annotations

import copy
import logging
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.repeater import TRIAL_INDEX

from studies.spec import StudySpec
from studies.spec.space import SearchSpace

log = logging.getLogger(__name__)
LOST_ON_RESTORE = "lost: asked after the last snapshot before the driver stopped; asked again"


def make_sampler(spec: StudySpec, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of the spec's ``search.algorithm``, seeded with its ``search.seed``.

    Args:
        spec: the study spec.
        space: its search space; a grid sampler searches ``grid_point`` over ``range(len(space.grid))``.

    Returns:
        A ``GridSampler``, ``RandomSampler`` or ``CmaEsSampler`` for ``grid``, ``random`` or ``cmaes``,
        else a ``TPESampler``.
    """
    seed = spec.search.seed
    algorithm = spec.search.algorithm
    if algorithm == "grid":
        return optuna.samplers.GridSampler({"grid_point": list(range(len(space.grid)))}, seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def _as_storage(storage: BaseStorage | str) -> BaseStorage:
    return RDBStorage(storage) if isinstance(storage, str) else storage


def fail_running_trials(storage: BaseStorage | str, study_name: str, keep: set[int], reason: str,
                        retry: bool = False) -> int:
    """Mark RUNNING trials of the study whose numbers are not in ``keep`` as FAIL; their number.

    ``reason`` becomes each one's ``failure_reason`` user attribute. With ``retry``, each is first
    queued again as a WAITING copy (same parameters, same grid point).

    Args:
        storage: the Optuna storage, or an RDB URL.
        study_name: the Optuna study's name.
        keep: Optuna trial numbers to leave RUNNING.
        reason: the ``failure_reason`` user attribute of each trial failed.
        retry: whether to queue a WAITING copy of each first.

    Returns:
        How many trials were marked FAIL.
    """
    storage = _as_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=storage)
    study_id = storage.get_study_id_from_name(study_name)
    count = 0
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if frozen.number in keep:
            continue
        if retry:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                RetryHeartbeatStaleTrialCallback()(study, frozen)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        storage.set_trial_user_attr(trial_id, "failure_reason", reason)
        study.tell(frozen.number, state=TrialState.FAIL)
        count += 1
    return count


@dataclass
class SeedGroup:
    """One configuration (one Optuna trial) and the Tune trials that run it, one per seed."""

    number: int
    config: dict[str, Any]
    trials: list[str] = field(default_factory=list)  # Tune trial ids, in seed order
    values: dict[str, list[float]] = field(default_factory=dict)  # per ended trial, one per objective
    told: bool = False


class StudySearch(Searcher):
    """Ray Tune searcher over an Optuna study: one Optuna trial per configuration, ``repeat`` Tune
    trials (seeds) per configuration, the mean over seeds told (see the module docstring).

    ``space`` is a define-by-run function (``SearchSpace.define_by_run``); ``metric``/``mode`` a
    name and ``"min"``/``"max"``, or lists of them for a multi-objective study; ``storage`` an
    Optuna storage or an RDB URL.
    """

    def __init__(self, space: Callable[[optuna.Trial], dict[str, Any] | None], metric: str | list[str],
                 mode: str | list[str], sampler: optuna.samplers.BaseSampler, study_name: str,
                 storage: BaseStorage | str, repeat: int = 1) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.sampler = sampler
        self.study_name = study_name
        self.storage = _as_storage(storage)
        self.repeat = repeat
        self.group_of: dict[str, SeedGroup] = {}  # Tune trial id -> its configuration
        self.filling: SeedGroup | None = None  # the configuration still short of seeds
        self.replay: list[SeedGroup] = []  # told after the snapshot restored from: run again first
        self.optuna_study: optuna.Study | None = None
        self.study()  # created now (or loaded), as the study's first trial may be asked much later

    def study(self) -> optuna.Study:
        if self.optuna_study is None:
            modes = self.mode if isinstance(self.mode, list) else [self.mode]
            self.optuna_study = optuna.create_study(
                storage=self.storage, sampler=self.sampler, pruner=optuna.pruners.NopPruner(),
                study_name=self.study_name, load_if_exists=True,
                directions=["minimize" if m == "min" else "maximize" for m in modes],
            )
        return self.optuna_study

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the searcher with the Tuner; the study reconnects when next needed
        return {**self.__dict__, "optuna_study": None}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The config of a new Tune trial: the next seed of the current configuration, or a new one.

        Args:
            trial_id: the new Tune trial's id.

        Returns:
            The configuration (Optuna's params and what the space returned) and ``__trial_index__``
            (``TRIAL_INDEX``), the seed's index; when the current configuration has ``repeat``
            trials, the next one is the first to ``replay``, else a new one asked of Optuna.
        """
        if self.filling is None or len(self.filling.trials) >= self.repeat:
            if self.replay:
                self.filling = self.replay.pop(0)
            else:
                trial = self.study().ask()
                returned = self.space(trial) or {}
                self.filling = SeedGroup(trial.number, {**trial.params, **returned})
        group = self.filling
        group.trials.append(trial_id)
        self.group_of[trial_id] = group
        return {**copy.deepcopy(group.config), TRIAL_INDEX: len(group.trials) - 1}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Record the trial's objectives; once every seed of its configuration ended, tell Optuna.

        Args:
            trial_id: the ended Tune trial's id (ignored if this searcher did not suggest it).
            result: its last result, holding the objectives (NaN for a missing one); ``None`` if none.
            error: whether it errored (an all-NaN configuration is then told FAIL, else PRUNED).
        """
        group = self.group_of.get(trial_id)
        if group is None:
            return
        if group.told:  # run again after a restore (see the module docstring): Optuna holds it
            return
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        group.values[trial_id] = [result.get(m, np.nan) if result else np.nan for m in metrics]
        if len(group.trials) < self.repeat or len(group.values) < len(group.trials):
            return
        scores = np.asarray(list(group.values.values()), dtype=float)
        finite = np.isfinite(scores).any(axis=0)
        means = [float(np.nanmean(scores[:, i])) if finite[i] else None for i in range(len(metrics))]
        if any(m is None for m in means):
            values, state = None, TrialState.FAIL if error else TrialState.PRUNED
        else:
            values, state = (means if isinstance(self.metric, list) else means[0]), TrialState.COMPLETE
        try:
            self.study().tell(group.number, values, state=state, skip_if_finished=True)
        except Exception as exc:  # e.g. GridSampler calls study.stop() once the grid is done
            log.warning("telling Optuna trial %d: %s", group.number, exc)
        group.told = True

    def save(self, checkpoint_path: str) -> None:
        """Pickle the searcher's state: the sampler, the seed groups, the one being filled and the
        configurations still to run again.

        Args:
            checkpoint_path: the file to write.
        """
        with open(checkpoint_path, "wb") as out:
            pickle.dump({"sampler": self.sampler, "group_of": self.group_of, "filling": self.filling,
                         "replay": self.replay}, out)

    def restore(self, checkpoint_path: str) -> None:
        """Take the state of the snapshot, then account for the Optuna trials asked after it.

        Those told already are queued to run again (``replay``); those still RUNNING are failed
        and asked again (see the module docstring).

        Args:
            checkpoint_path: the file ``save`` wrote.
        """
        with open(checkpoint_path, "rb") as saved:
            state = pickle.load(saved)
        self.sampler, self.group_of, self.filling = state["sampler"], state["group_of"], state["filling"]
        self.replay = state.get("replay", [])
        self.optuna_study = None  # reopened with the restored sampler
        known = {group.number for group in [*self.group_of.values(), *self.replay]}
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        for frozen in self.study().get_trials(deepcopy=False, states=finished):
            if frozen.number in known or "failure_reason" in frozen.user_attrs:
                continue  # known, or failed as lost or stopped: not a configuration that ran
            returned = self.space(frozen) or {}
            self.replay.append(SeedGroup(frozen.number, {**frozen.params, **returned}, told=True))
            log.info("Optuna trial %d was told after the last snapshot; its trials run again", frozen.number)
        fail_running_trials(self.storage, self.study_name, known, LOST_ON_RESTORE, retry=True)
