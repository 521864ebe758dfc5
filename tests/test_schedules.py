"""Schedules: values per global step, checkpoint state and config validation."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter, ValidationError

from disent_core.schedules import (
    ConstantConfig,
    CyclicConfig,
    ExponentialConfig,
    LinearConfig,
    ScheduleConfig,
    StagesConfig,
    as_schedule,
)

ADAPTER = TypeAdapter(ScheduleConfig)


def values(config, steps: list[int]) -> list[float]:
    schedule = config.build()
    return [schedule(t) for t in steps]


def test_constant_and_as_schedule() -> None:
    assert values(ConstantConfig(value=2.5), [0, 10, 10**9]) == [2.5] * 3
    assert as_schedule(4)(123) == 4.0
    assert as_schedule(LinearConfig(start=0, end=1, steps=4))(2) == 0.5


def test_linear_ramp_with_delay() -> None:
    config = LinearConfig(start=1.0, end=5.0, steps=100, start_step=50)
    assert values(config, [0, 50, 75, 150, 1000]) == pytest.approx([1.0, 1.0, 2.0, 5.0, 5.0])
    assert values(LinearConfig(start=10, end=0, steps=10), [0, 5, 10, 20]) == pytest.approx([10, 5, 0, 0])


def test_stages_switch_at_the_boundaries() -> None:
    config = StagesConfig(values=[8.0, 4.0, 1.0], boundaries=[10, 30])
    assert values(config, [0, 9, 10, 29, 30, 10**6]) == [8.0, 8.0, 4.0, 4.0, 1.0, 1.0]
    assert [config.stage(t) for t in (0, 10, 30)] == [0, 1, 2]
    assert values(StagesConfig(values=[3.0]), [0, 100]) == [3.0, 3.0]


def test_exponential_decay_is_bounded_below_by_end() -> None:
    config = ExponentialConfig(start=100.0, rate=0.5, every=10, end=10.0)
    assert values(config, [0, 10, 15, 20, 30, 40, 1000]) == pytest.approx(
        [100.0, 50.0, 100 * 0.5**1.5, 25.0, 12.5, 10.0, 10.0]
    )


def test_exponential_growth_is_bounded_above_by_end() -> None:
    config = ExponentialConfig(start=1.0, rate=2.0, end=20.0, start_step=5)
    assert values(config, [0, 5, 6, 9, 10, 100]) == pytest.approx([1.0, 1.0, 2.0, 16.0, 20.0, 20.0])
    assert values(ExponentialConfig(start=1.0, rate=2.0), [10]) == pytest.approx([1024.0])


def test_cyclic_cosine() -> None:
    config = CyclicConfig(low=1.0, high=3.0, period=100)
    expected = [1.0 + 2.0 * (0.5 - 0.5 * math.cos(2 * math.pi * t / 100)) for t in (0, 25, 50, 75)]
    assert expected == pytest.approx([1.0, 2.0, 3.0, 2.0])
    assert values(config, [0, 25, 50, 75, 100, 150]) == pytest.approx([*expected, 1.0, 3.0])


def test_cyclic_linear_ramps_and_restarts() -> None:
    config = CyclicConfig(low=0.0, high=4.0, period=10, shape="linear", start_step=5)
    assert values(config, [0, 5, 10, 14, 15, 20]) == pytest.approx([0.0, 0.0, 2.0, 3.6, 0.0, 2.0])


def test_state_dict_round_trip() -> None:
    config = LinearConfig(start=0, end=1, steps=10)
    schedule = config.build()
    assert schedule.state_dict() == {"kind": "linear", "last_value": None}
    schedule(5)
    restored = config.build()
    restored.load_state_dict(schedule.state_dict())
    assert restored.last_value == schedule.last_value == 0.5
    assert restored.state_dict() == schedule.state_dict()
    with pytest.raises(ValueError, match="'linear' schedule"):
        ConstantConfig(value=1).build().load_state_dict(schedule.state_dict())


def test_configs_parse_by_kind() -> None:
    config = ADAPTER.validate_python({"kind": "stages", "values": [1, 2], "boundaries": [5]})
    assert isinstance(config, StagesConfig)
    assert ADAPTER.validate_python(config.model_dump()) == config


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "stages", "values": [1, 2, 3], "boundaries": [5]},
        {"kind": "stages", "values": [1, 2], "boundaries": [5, 10]},
        {"kind": "stages", "values": [1, 2, 3], "boundaries": [10, 5]},
        {"kind": "stages", "values": [1, 2], "boundaries": [0]},
        {"kind": "stages", "values": []},
        {"kind": "linear", "start": 0, "end": 1, "steps": 0},
        {"kind": "linear", "start": 0, "end": 1, "steps": 5, "start_step": -1},
        {"kind": "exponential", "start": 1, "rate": 0},
        {"kind": "exponential", "start": 1, "rate": 0.5, "every": 0},
        {"kind": "cyclic", "low": 0, "high": 1, "period": 0},
        {"kind": "cyclic", "low": 0, "high": 1, "period": 5, "shape": "square"},
        {"kind": "constant", "value": 1, "extra": 2},
        {"kind": "sigmoid", "value": 1},
    ],
)
def test_invalid_configs_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(bad)
