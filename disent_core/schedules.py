"""Schedules for beta, the capacity C and learning-rate multipliers, as small stateful objects.

A schedule maps the global step (VAE parameter updates, never optimiser calls) to a float. The
open-loop schedules here are pure functions of the step. What a method reports and checkpoints is a
``ScheduledValue``: a ``Schedule`` here, or a closed-loop controller that reads the measured KL
(``disent_core.methods.controllers``); both have a ``last_value`` and a ``state_dict``.

Each schedule is described by a pydantic config with a ``kind`` discriminator, so a study can
search over a schedule family and its parameters:

- ``constant``: v.
- ``linear``: start + (end - start) * clip((t - start_step) / steps, 0, 1)  (AnnealedVAE's C(t)).
- ``stages``: values[i] for boundaries[i-1] <= t < boundaries[i] (piecewise constant; DEFT's beta).
- ``exponential``: max(end, start * rate ** ((t - start_step) / every)) for decaying rate < 1, and
  min(end, ...) for a growing rate > 1.
- ``cyclic``: low + (high - low) * w(((t - start_step) mod period) / period), where w is a cosine
  (0 -> 1 -> 0) or a linear ramp (0 -> 1), as in disent's Cyclic schedule.
"""

from __future__ import annotations

import abc
import itertools
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _ScheduleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self) -> Schedule:
        raise NotImplementedError


class ConstantConfig(_ScheduleConfig):
    kind: Literal["constant"] = "constant"
    value: float

    def build(self) -> Schedule:
        return Schedule(self, lambda t: self.value)


class LinearConfig(_ScheduleConfig):
    kind: Literal["linear"] = "linear"
    start: float
    end: float
    steps: int = Field(gt=0, description="steps over which the value moves from start to end")
    start_step: int = Field(0, ge=0)

    def build(self) -> Schedule:
        def value(t: int) -> float:
            frac = min(max((t - self.start_step) / self.steps, 0.0), 1.0)
            return self.start + (self.end - self.start) * frac

        return Schedule(self, value)


class StagesConfig(_ScheduleConfig):
    kind: Literal["stages"] = "stages"
    values: list[float] = Field(min_length=1)
    boundaries: list[int] = Field(
        default_factory=list, description="steps at which the next value takes over (ascending)"
    )

    @model_validator(mode="after")
    def _check(self) -> StagesConfig:
        if len(self.boundaries) != len(self.values) - 1:
            raise ValueError(
                f"stages need one boundary fewer than values: {len(self.values)} values, "
                f"{len(self.boundaries)} boundaries"
            )
        if any(b <= a for a, b in itertools.pairwise(self.boundaries)) or any(
            b <= 0 for b in self.boundaries
        ):
            raise ValueError(f"boundaries must be positive and strictly ascending, got {self.boundaries}")
        return self

    def stage(self, t: int) -> int:
        """Index of the stage that step ``t`` belongs to.

        Args:
            t: the global step.

        Returns:
            The number of boundaries <= ``t``, in [0, len(values) - 1].
        """
        return sum(t >= b for b in self.boundaries)

    def build(self) -> Schedule:
        return Schedule(self, lambda t: self.values[self.stage(t)])


class ExponentialConfig(_ScheduleConfig):
    kind: Literal["exponential"] = "exponential"
    start: float
    rate: float = Field(gt=0, description="factor applied every `every` steps (< 1 decays)")
    every: int = Field(1, gt=0)
    end: float | None = Field(None, description="bound the value never passes")
    start_step: int = Field(0, ge=0)

    def build(self) -> Schedule:
        def value(t: int) -> float:
            v = self.start * self.rate ** (max(t - self.start_step, 0) / self.every)
            if self.end is not None:
                v = max(v, self.end) if self.rate < 1 else min(v, self.end)
            return v

        return Schedule(self, value)


class CyclicConfig(_ScheduleConfig):
    kind: Literal["cyclic"] = "cyclic"
    low: float
    high: float
    period: int = Field(gt=0)
    shape: Literal["cosine", "linear"] = "cosine"
    start_step: int = Field(0, ge=0)

    def build(self) -> Schedule:
        def value(t: int) -> float:
            phase = (max(t - self.start_step, 0) % self.period) / self.period
            w = 0.5 - 0.5 * math.cos(2 * math.pi * phase) if self.shape == "cosine" else phase
            return self.low + (self.high - self.low) * w

        return Schedule(self, value)


ScheduleConfig = Annotated[
    ConstantConfig | LinearConfig | StagesConfig | ExponentialConfig | CyclicConfig,
    Field(discriminator="kind"),
]


class ScheduledValue(abc.ABC):
    """A value that enters a loss (beta, C, a stage), reported every step and checkpointed."""

    last_value: float | None
    """The value of the latest step (None before the first)."""

    @abc.abstractmethod
    def state_dict(self) -> dict:
        """What a checkpoint must hold to continue step-exactly."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Continue from a ``state_dict``; raises ``ValueError`` for another kind's state.

        Args:
            state: a dict returned by ``state_dict``.

        Raises:
            ValueError: ``state`` is another kind's.
        """


class Schedule(ScheduledValue):
    """A value per global step (open loop), with checkpointable state."""

    def __init__(self, config: _ScheduleConfig, fn) -> None:
        self.config = config
        self._fn = fn
        self.last_value: float | None = None

    def __call__(self, step: int) -> float:
        """The value at ``step``; also remembered as ``last_value`` for reporting."""
        self.last_value = float(self._fn(int(step)))
        return self.last_value

    def state_dict(self) -> dict:
        return {"kind": self.config.kind, "last_value": self.last_value}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``last_value`` from a ``state_dict`` of a schedule of the same kind.

        Args:
            state: a dict returned by ``state_dict``.

        Raises:
            ValueError: ``state`` holds another kind of schedule than the config.
        """
        if state.get("kind") != self.config.kind:
            raise ValueError(
                f"checkpoint holds a {state.get('kind')!r} schedule, config has {self.config.kind!r}"
            )
        self.last_value = state["last_value"]


def as_schedule(value: float | _ScheduleConfig) -> Schedule:
    """A float becomes a constant schedule; a schedule config is built.

    Args:
        value: a constant, or a schedule config.

    Returns:
        The schedule.
    """
    if isinstance(value, _ScheduleConfig):
        return value.build()
    return ConstantConfig(value=float(value)).build()
