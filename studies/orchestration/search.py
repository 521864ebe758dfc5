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

Populations (``resources.population`` N above 1, docs/populations.md): a study's unit is then a
member, one configuration with one seed, and a Tune trial holds up to N of them. The searcher keeps
the members asked for but not yet placed (``waiting``); for a new Tune trial it asks for up to N more
configurations (TPE with Optuna's constant liar, ``make_sampler``; CMA-ES draws each from its
current distribution; a grid gives its next points) and takes up to N waiting members whose
``PopulationKey`` equals the first one's, in order, so a configuration's seeds are placed in seed
order. A member whose key is None trains alone, in a plain trial. The search is
``Searcher.FINISHED`` once every configuration has been placed. Each member is told to Optuna as a
seed of its configuration, wherever it ran.

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

from disent_core.population import population_key
from studies.orchestration.members import POPULATION_CONFIG, Member, member_diverged, member_result
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
        else a ``TPESampler``, with a constant liar when trials hold populations (several
        configurations are then asked before any is told, and the liar keeps them apart).
    """
    seed = spec.search.seed
    algorithm = spec.search.algorithm
    if algorithm == "grid":
        return optuna.samplers.GridSampler({"grid_point": list(range(len(space.grid)))}, seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=spec.population > 1)


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


class PopulationKey:
    """What a member of ``spec`` shares with every member of its population
    (``disent_core.population.population_key`` of its training config; None: it trains alone).

    A class rather than a closure: Tune pickles the searcher that holds it.

    Args:
        spec: the study spec.
    """

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self.space: SearchSpace | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "space": None}

    def __call__(self, config: dict[str, Any], seed_index: int) -> str | None:
        if self.space is None:
            self.space = SearchSpace(self.spec)
        return population_key(self.space.train_config(config, self.spec.seeds[seed_index]))


@dataclass
class SeedGroup:
    """One configuration (one Optuna trial) and the members that run it, one per seed."""

    number: int
    config: dict[str, Any]
    trials: list[str] = field(default_factory=list)  # member ids, in seed order
    values: dict[str, list[float]] = field(default_factory=dict)  # per ended member, one per objective
    told: bool = False


@dataclass
class Unit:
    """A (configuration, seed) waiting for a Tune trial, and what its population must share."""

    group: SeedGroup
    seed_index: int
    key: str | None  # None: it trains alone


class StudySearch(Searcher):
    """Ray Tune searcher over an Optuna study: one Optuna trial per configuration, ``repeat``
    members (seeds) per configuration, the mean over seeds told (see the module docstring).

    ``space`` is a define-by-run function (``SearchSpace.define_by_run``); ``metric``/``mode`` a
    name and ``"min"``/``"max"``, or lists of them for a multi-objective study; ``storage`` an
    Optuna storage or an RDB URL. With ``population`` above 1, a Tune trial holds up to that many
    members whose ``member_key`` (config, seed index -> what a population shares, None: alone) is
    equal, and the search ends (``Searcher.FINISHED``) once ``configurations`` have been handed out.
    """

    def __init__(self, space: Callable[[optuna.Trial], dict[str, Any] | None], metric: str | list[str],
                 mode: str | list[str], sampler: optuna.samplers.BaseSampler, study_name: str,
                 storage: BaseStorage | str, repeat: int = 1, population: int = 1,
                 member_key: Callable[[dict[str, Any], int], str | None] | None = None,
                 configurations: int | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        if population > 1 and (member_key is None or configurations is None):
            raise ValueError("a population search needs member_key and configurations")
        self.space = space
        self.sampler = sampler
        self.study_name = study_name
        self.storage = _as_storage(storage)
        self.repeat = repeat
        self.population = population
        self.member_key = member_key
        self.configurations = configurations
        self.group_of: dict[str, SeedGroup] = {}  # member id -> its configuration
        self.filling: SeedGroup | None = None  # the configuration still short of seeds
        self.replay: list[SeedGroup] = []  # told after the snapshot restored from: run again first
        self.waiting: list[Unit] = []  # asked, not yet in a Tune trial (populations only)
        self.members_of: dict[str, list[str]] = {}  # population trial id -> its member ids
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

    def _next_configuration(self) -> SeedGroup:
        """The first configuration to ``replay``, else a new one asked of Optuna."""
        if self.replay:
            return self.replay.pop(0)
        trial = self.study().ask()
        returned = self.space(trial) or {}
        return SeedGroup(trial.number, {**trial.params, **returned})

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The config of a new Tune trial: one member, or a population's members.

        Args:
            trial_id: the new Tune trial's id.

        Returns:
            One member's config (Optuna's params, what the space returned and ``__trial_index__``,
            ``TRIAL_INDEX``, the seed's index): the next seed of the current configuration, or of
            the first to ``replay``, or of a new one asked of Optuna. With ``population`` above 1,
            ``{"population": [member config, ...]}`` for several members, and ``Searcher.FINISHED``
            once every configuration has been handed out.
        """
        if self.population > 1:
            return self._suggest_population(trial_id)
        if self.filling is None or len(self.filling.trials) >= self.repeat:
            self.filling = self._next_configuration()
        group = self.filling
        group.trials.append(trial_id)
        self.group_of[trial_id] = group
        return {**copy.deepcopy(group.config), TRIAL_INDEX: len(group.trials) - 1}

    def _started(self) -> int:
        """Configurations handed out or waiting: each has its own Optuna trial number."""
        groups = [*self.group_of.values(), *(unit.group for unit in self.waiting)]
        return len({group.number for group in groups})

    def _enough_waiting(self) -> bool:
        """Whether the first waiting member's population can be formed without asking more."""
        if not self.waiting:
            return False
        first = self.waiting[0].key
        return first is None or sum(unit.key == first for unit in self.waiting) >= self.population

    def _suggest_population(self, trial_id: str) -> dict[str, Any] | str | None:
        """Up to ``population`` waiting members sharing the first one's key, asking for more first.

        At most ``population`` configurations are asked per call (Optuna's batch ask: the sampler's
        constant liar keeps them apart), fewer when the first waiting member's key has enough.
        """
        assert self.member_key is not None and self.configurations is not None
        started = self._started()  # counted once: every configuration asked below is a new one
        for _ in range(self.population):
            if self._enough_waiting() or (started >= self.configurations and not self.replay):
                break
            group = self._next_configuration()
            started += 1
            self.waiting += [Unit(group, k, self.member_key(group.config, k)) for k in range(self.repeat)]
        if not self.waiting:
            return Searcher.FINISHED
        first = self.waiting[0].key
        if first is None:
            taken = self.waiting[:1]
        else:
            taken = [unit for unit in self.waiting if unit.key == first][: self.population]
        self.waiting = [unit for unit in self.waiting if not any(unit is t for t in taken)]
        configs, member_ids = [], []
        for index, unit in enumerate(taken):
            member_id = trial_id if len(taken) == 1 else f"{trial_id}-{index}"
            unit.group.trials.append(member_id)
            self.group_of[member_id] = unit.group
            member_ids.append(member_id)
            configs.append({**copy.deepcopy(unit.group.config), TRIAL_INDEX: unit.seed_index})
        if len(taken) == 1:
            return configs[0]
        self.members_of[trial_id] = member_ids
        return {POPULATION_CONFIG: configs}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Record each member's objectives; once every seed of a configuration ended, tell Optuna.

        Args:
            trial_id: the ended Tune trial's id (ignored if this searcher did not suggest it).
            result: its last result, holding the objectives (NaN for a missing one), a population's
                under ``members``; ``None`` if none.
            error: whether it errored (an all-NaN configuration is then told FAIL, else PRUNED; a
                population member that diverged counts as errored).
        """
        member_ids = self.members_of.get(trial_id)
        if member_ids is None:
            self._record(trial_id, result, error)
            return
        for index, member_id in enumerate(member_ids):
            own = member_result(result, Member(member_id, index, {}, trial_id))
            self._record(member_id, own, error or member_diverged(own))

    def _record(self, member_id: str, result: dict | None, error: bool) -> None:
        group = self.group_of.get(member_id)
        if group is None:
            return
        if group.told:  # run again after a restore (see the module docstring): Optuna holds it
            return
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        group.values[member_id] = [result.get(m, np.nan) if result else np.nan for m in metrics]
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
        """Pickle the searcher's state: the sampler, the seed groups, the one being filled, the
        configurations still to run again, the members waiting for a trial and each population's
        members.

        Args:
            checkpoint_path: the file to write.
        """
        with open(checkpoint_path, "wb") as out:
            pickle.dump({"sampler": self.sampler, "group_of": self.group_of, "filling": self.filling,
                         "replay": self.replay, "waiting": self.waiting, "members_of": self.members_of}, out)

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
        self.waiting, self.members_of = state.get("waiting", []), state.get("members_of", {})
        self.optuna_study = None  # reopened with the restored sampler
        groups = [*self.group_of.values(), *self.replay, *(unit.group for unit in self.waiting)]
        known = {group.number for group in groups}
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        for frozen in self.study().get_trials(deepcopy=False, states=finished):
            if frozen.number in known or "failure_reason" in frozen.user_attrs:
                continue  # known, or failed as lost or stopped: not a configuration that ran
            returned = self.space(frozen) or {}
            self.replay.append(SeedGroup(frozen.number, {**frozen.params, **returned}, told=True))
            log.info("Optuna trial %d was told after the last snapshot; its trials run again", frozen.number)
        fail_running_trials(self.storage, self.study_name, known, LOST_ON_RESTORE, retry=True)
