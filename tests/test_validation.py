"""The shared pydantic error formatter: messages come from the error's type and context."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from disent_core.validation import error_message, join_path


class _Low(BaseModel):
    search: Literal["low"]
    value: float = Field(gt=0, le=10)


class _High(BaseModel):
    search: Literal["high"]
    count: int = Field(ge=1, lt=5)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    param: Annotated[_Low | _High, Field(discriminator="search")]
    name: str = "x"

    @field_validator("name")
    @classmethod
    def _no_spaces(cls, name: str) -> str:
        if " " in name:
            raise ValueError("remove the spaces from the name")
        return name


def messages(data: dict) -> list[str]:
    with pytest.raises(ValidationError) as info:
        _Spec.model_validate(data)
    return [f"{join_path(e['loc'])}: {error_message(e)}" for e in info.value.errors()]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"param": {"search": "low", "value": 0}}, "param.low.value: must be > 0"),
        ({"param": {"search": "low", "value": 10.5}}, "param.low.value: must be <= 10"),
        ({"param": {"search": "high", "count": 0}}, "param.high.count: must be >= 1"),
        ({"param": {"search": "high", "count": 5}}, "param.high.count: must be < 5"),
        ({"param": {"search": "mid"}}, "param: unknown search kind 'mid'; valid kinds: 'low', 'high'"),
        ({"param": {"search": "low", "value": 1}, "extra": 1},
         "extra: unknown key; remove it or check its spelling"),
        ({"param": {"search": "low", "value": 1}, "name": "a b"}, "name: remove the spaces from the name"),
    ],
)
def test_messages_come_from_the_error_type(data: dict, expected: str) -> None:
    assert messages(data) == [expected]


def test_other_errors_keep_pydantics_message_and_paths_index_lists() -> None:
    (line,) = messages({"param": {"search": "high", "count": "many"}})
    assert line.startswith("param.high.count: Input should be a valid integer")
    assert join_path(("seeds", 2)) == "seeds[2]" and join_path(()) == "<root>"


class _Bound(BaseModel):
    low: float = Field(allow_inf_nan=False)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_an_infinite_or_nan_number_is_refused_as_not_finite(value: float) -> None:
    with pytest.raises(ValidationError) as info:
        _Bound(low=value)
    assert [f"{join_path(e['loc'])}: {error_message(e)}" for e in info.value.errors()] == [
        "low: must be a finite number (not .inf, -.inf or .nan)"
    ]
