"""The search space of a study spec: Optuna define-by-run, grid enumeration and trial configs.

Every search parameter gets an Optuna name from where it sits: ``model.latent_dim``,
``train.optimizer.lr``, ``beta_vae.beta`` (method parameters are prefixed by their method, so the
spaces of different methods never share a distribution), and a parameter inside the ``i``-th choice
of a categorical ``c`` is ``c[i].<path>``. A study with several methods first suggests ``method``.

Categorical choices that Optuna cannot store (lists such as DeVAE's betas, whole schedule objects)
are stored as their JSON text, so ``[1, 10, 40]`` appears in Optuna's dashboard as it was written.

A grid search enumerates every configuration up front (methods in spec order, then the grid values
in order, the first parameter outermost) and lets Optuna's ``GridSampler`` pick the index
``grid_point``; the resolved values are returned into the trial config and stored as Optuna user
attributes. The seeds are not part of the space: each configuration runs once per seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from disent_core.config import TrainConfig
from disent_core.errors import ConfigError
from studies.spec.params import (
    CategoricalParam,
    FloatParam,
    GridParam,
    IntParam,
    LogFloatParam,
    LogIntParam,
    is_param,
    options_of,
    param_name,
    parse_param,
)

if TYPE_CHECKING:
    from studies.spec import StudySpec

GRID_POINT = "grid_point"
METHOD = "method"
Pick = Callable[[str, BaseModel], Any]


def label(choice: Any) -> Any:
    """How a categorical choice is stored in Optuna: itself if primitive, else its JSON text."""
    if choice is None or isinstance(choice, bool | int | float | str):
        return choice
    return json.dumps(choice, sort_keys=True)


class _Undecided(Exception):
    def __init__(self, name: str, labels: list[Any]) -> None:
        self.name, self.labels = name, labels


def _resolve(template: Any, prefix: str, pick: Pick, path: tuple = ()) -> Any:
    """The template with every search parameter replaced by ``pick(param_name(prefix, path), param)``."""
    if is_param(template):
        param = parse_param(template)
        if isinstance(param, CategoricalParam | GridParam):
            options = options_of(param)
            chosen = pick(param_name(prefix, path), param)
            index = [label(o) for o in options].index(chosen)
            return _resolve(options[index], prefix, pick, (*path, index))
        return pick(param_name(prefix, path), param)
    if isinstance(template, dict):
        return {key: _resolve(value, prefix, pick, (*path, key)) for key, value in template.items()}
    if isinstance(template, list):
        return [_resolve(value, prefix, pick, (*path, i)) for i, value in enumerate(template)]
    return template


def _suggest(trial: Any, name: str, param: BaseModel) -> Any:
    if isinstance(param, LogFloatParam):
        return trial.suggest_float(name, param.low, param.high, log=True)
    if isinstance(param, FloatParam):
        return trial.suggest_float(name, param.low, param.high, step=param.step)
    if isinstance(param, LogIntParam):
        return trial.suggest_int(name, param.low, param.high, log=True)
    if isinstance(param, IntParam):
        return trial.suggest_int(name, param.low, param.high, step=param.step)
    return trial.suggest_categorical(name, [label(o) for o in options_of(param)])


class SearchSpace:
    """The space of one spec; ``define_by_run`` is what ``StudySearch`` calls on each asked trial."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self.methods = list(spec.methods)
        self.grid: list[dict[str, Any]] = (
            [point for m in self.methods for point in self._enumerate(m)]
            if spec.search.algorithm == "grid" else []
        )

    def _sections(self, method: str) -> list[tuple[str, str, Any]]:
        """``(section, name prefix, template)`` of the parts of a trial config ``method`` uses."""
        return [
            ("model", "model", self.spec.model),
            ("train", "train", self.spec.train),
            ("method", method, self.spec.methods[method]),
        ]

    def _resolve_all(self, method: str, pick: Pick) -> dict[str, Any]:
        return {section: _resolve(t, prefix, pick) for section, prefix, t in self._sections(method)}

    def _enumerate(self, method: str) -> list[dict[str, Any]]:
        """Every assignment of a grid for one method, first parameter outermost."""
        done: list[dict[str, Any]] = []
        todo: list[dict[str, Any]] = [{METHOD: method}]
        while todo:
            assignment = todo.pop()

            def pick(name: str, param: BaseModel, a: dict = assignment) -> Any:
                if name in a:
                    return a[name]
                raise _Undecided(name, [label(o) for o in options_of(param)])

            try:
                self._resolve_all(method, pick)
            except _Undecided as need:
                todo.extend({**assignment, need.name: v} for v in reversed(need.labels))
                continue
            done.append(assignment)
        return done

    def define_by_run(self, trial: Any) -> dict[str, Any]:
        """Suggest one configuration on an Optuna trial; returns the values that are not suggestions."""
        if self.grid:
            point = trial.suggest_categorical(GRID_POINT, list(range(len(self.grid))))
            assignment = self.grid[point]
            for key, value in assignment.items():
                trial.set_user_attr(key, value)
            return dict(assignment)
        method = trial.suggest_categorical(METHOD, self.methods) if len(self.methods) > 1 else self.methods[0]
        self._resolve_all(method, lambda name, param: _suggest(trial, name, param))
        return {METHOD: method}

    def train_config(self, assignment: dict[str, Any], seed: int) -> TrainConfig:
        """The training config of one trial: the spec's fixed values plus the assignment, at ``seed``."""
        method = assignment[METHOD]

        def pick(name: str, param: BaseModel) -> Any:
            if name not in assignment:
                raise ConfigError(f"trial config has no value for search parameter {name!r}")
            return assignment[name]

        parts = self._resolve_all(method, pick)
        train = {**parts["train"], "seed": seed}
        if method in self.spec.method_steps:
            train.update(steps=self.spec.steps_of(method), steps_note=self.spec.method_steps[method].note)
        if "threads" not in train:
            train["threads"] = max(1, int(self.spec.resources.cpu))
        if "checkpoint_every" not in train:
            train["checkpoint_every"] = default_checkpoint_every(self.spec, train["steps"])
        data = {
            "dataset": self.spec.dataset.model_dump(mode="json"),
            "model": parts["model"],
            "train": train,
            "method": {"name": method, **parts["method"]},
        }
        try:
            return TrainConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"trial config {assignment} is invalid: {exc}") from None

    def num_configurations(self) -> int:
        """How many configurations the search proposes (each runs once per seed).

        Returns:
            ``search.num_trials``, else the whole grid, else 10.

        Raises:
            ConfigError: ``search.num_trials`` asks for more configurations than the grid has.
        """
        asked = self.spec.search.num_trials
        if self.grid and asked is not None and asked > len(self.grid):
            raise ConfigError(
                f"search.num_trials: {asked} is more than the {len(self.grid)} grid "
                "configurations; leave it out to run the whole grid"
            )
        if asked is not None:
            return asked
        return len(self.grid) if self.grid else 10

    def model_number(self, assignment: dict[str, Any], seed_index: int) -> int | None:
        """disentanglement_lib's model number of a grid trial, when the spec asks for it."""
        numbering = self.spec.model_numbering
        if numbering is None or GRID_POINT not in assignment:
            return None
        # dlib's numbers count its fixed 36 configurations x 50 seeds and use the seed's value, so
        # a study of fewer seeds or grid points keeps them (validate_spec checks grid and seeds)
        return numbering.number(assignment[GRID_POINT], self.spec.seeds[seed_index])


def default_checkpoint_every(spec: StudySpec, steps: int) -> int:
    """Checkpoint about five times in a trial of ``steps``, at report steps, so a retry loses little."""
    report = spec.report_every
    return max(report, report * round(steps / 5 / report))
