"""The members of a Tune trial: the (configuration, seed) units it trains.

A study's unit is a member: one configuration trained with one seed. It is one seed of an Optuna
trial, one nested MLflow run and one row of the results table, however it was packed. A Tune trial
trains

- one member: its config is the member's own (``method``, the searched values by Optuna name and
  ``__trial_index__``, the seed's index), and its results are the member's;
- or, under ``resources.population`` above 1, a population (``disent_core.population``): its config
  is ``{"population": [member config, ...]}``, and each result holds, beside the keys Tune needs at
  the top level (``step``, ``evaluated``, each objective as the best member's value), the members'
  own results under ``members`` (member index as text -> exactly the keys a one-member trial
  reports, plus ``failure`` for a member that diverged).

A member of a population is named ``<trial id>-<index>``; a trial's only member by the trial's id.
Its final files (checkpoint, config, scores, figures, model) are in the trial's final checkpoint,
under ``members/<index>/`` for a population.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studies.results import DIVERGED

POPULATION_CONFIG = "population"
"""Key of a population trial's config: the list of its member configs."""
MEMBERS = "members"
"""Key of a population trial's result: member index (as text) -> that member's result."""
MEMBER_FILES = "members"
"""Folder of a population trial's checkpoint that holds each member's final files, by index."""


@dataclass(frozen=True)
class Member:
    """One (configuration, seed) unit of a Tune trial.

    Attributes:
        member_id: ``<trial id>-<index>`` in a population, else the trial's id.
        index: its position in the population (0 for a trial's only member).
        config: its config: ``method``, the searched values and ``__trial_index__``.
        population: the id of the Tune trial it trains in beside others; None when alone.
    """

    member_id: str
    index: int
    config: dict[str, Any]
    population: str | None


def is_population(config: Mapping[str, Any] | None) -> bool:
    """Whether a Tune trial's config is a population's.

    Args:
        config: the trial's config.

    Returns:
        True when it lists member configs under ``population``.
    """
    return bool(config) and POPULATION_CONFIG in config


def trial_members(trial_id: str, config: Mapping[str, Any] | None) -> list[Member]:
    """The members a Tune trial trains, in population order.

    Args:
        trial_id: the Tune trial's id.
        config: its config (None or empty: a trial Tune holds without one).

    Returns:
        One ``Member`` per member config of a population, else the trial's only member.
    """
    config = dict(config or {})
    if not is_population(config):
        return [Member(trial_id, 0, config, None)]
    return [Member(f"{trial_id}-{i}", i, dict(member), trial_id)
            for i, member in enumerate(config[POPULATION_CONFIG])]


def member_result(result: Mapping[str, Any] | None, member: Member) -> dict[str, Any]:
    """A member's own result out of its trial's result.

    Args:
        result: the trial's result (None: none yet).
        member: one of the trial's members.

    Returns:
        The result itself for a trial's only member; for a population member its entry under
        ``members`` (or its ``members/<index>/`` keys of a flattened result, as Tune's searchers
        get it) over the trial's top-level keys (Tune's own, such as ``time_total_s``, and the
        population's step), or an empty dict when the result has no entry for it.
    """
    if not result:
        return {}
    if member.population is None:
        return dict(result)
    own = (result.get(MEMBERS) or {}).get(str(member.index))
    prefix = f"{MEMBERS}/"
    if own is None:  # Tune hands its searchers the result flattened: members/<index>/<key>
        mine = f"{prefix}{member.index}/"
        own = {k.removeprefix(mine): v for k, v in result.items() if k.startswith(mine)}
    if not own:
        return {}
    return {**{k: v for k, v in result.items() if k != MEMBERS and not k.startswith(prefix)}, **own}


def member_diverged(result: Mapping[str, Any]) -> bool:
    """Whether a member's result says it diverged (``diverged`` is 1).

    Args:
        result: the member's result (``member_result``).

    Returns:
        True when it diverged.
    """
    return result.get(DIVERGED) == 1


def member_files(directory: str | Path, member: Member) -> Path:
    """Where a member's final files are in its trial's final checkpoint directory.

    Args:
        directory: the trial's checkpoint directory.
        member: one of the trial's members.

    Returns:
        ``directory`` for a trial's only member, else ``directory/members/<index>``.
    """
    directory = Path(directory)
    return directory if member.population is None else directory / MEMBER_FILES / str(member.index)
