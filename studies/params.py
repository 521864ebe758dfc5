"""The search-parameter language of a study spec: ``{search: <kind>, ...}`` mappings and the walkers
over the templates that hold them.

A value under ``model``, ``train`` or ``methods.<name>`` is a search parameter when it is a mapping
with the key ``search`` (``PARAM_KINDS``): ``float`` / ``log_float`` / ``int`` / ``log_int`` with
``low`` and ``high`` (and an optional ``step``), ``categorical`` with ``choices`` and ``grid`` with
``values``. Choices may be whole objects holding parameters of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatParam(_Strict):
    search: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be smaller than high ({self.high})")
        return self


class LogFloatParam(FloatParam):
    search: Literal["log_float"]  # type: ignore[assignment]
    low: float = Field(gt=0, description="log-uniform ranges need a positive lower bound")
    step: None = None


class IntParam(_Strict):
    search: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be smaller than high ({self.high})")
        return self


class LogIntParam(IntParam):
    search: Literal["log_int"]  # type: ignore[assignment]
    low: int = Field(ge=1, description="log-uniform ranges need a positive lower bound")
    step: Literal[1] = 1


class CategoricalParam(_Strict):
    search: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


class GridParam(_Strict):
    search: Literal["grid"]
    values: list[Any] = Field(min_length=1)


SearchParam = Annotated[
    FloatParam | LogFloatParam | IntParam | LogIntParam | CategoricalParam | GridParam,
    Field(discriminator="search"),
]
PARAM_KINDS = ("float", "log_float", "int", "log_int", "categorical", "grid")
_PARAM_ADAPTER: TypeAdapter = TypeAdapter(SearchParam)


def parse_param(raw: dict) -> BaseModel:
    """The typed search parameter of a ``{search: ...}`` mapping (raises pydantic's error)."""
    return _PARAM_ADAPTER.validate_python(raw)


def options_of(param: BaseModel) -> list[Any]:
    """The explicit values of a categorical or grid parameter."""
    return list(param.choices) if isinstance(param, CategoricalParam) else list(param.values)


def is_param(value: Any) -> bool:
    return isinstance(value, dict) and "search" in value


def all_params(template: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Like ``find_params``, and also the parameters nested inside categorical or grid choices,
    at their spec paths (``capacity.choices[1].end``). Malformed parameters are skipped."""
    for at, raw in find_params(template, path):
        yield at, raw
        try:
            param = parse_param(raw)
        except ValidationError:
            continue
        if isinstance(param, CategoricalParam | GridParam):
            key = "choices" if isinstance(param, CategoricalParam) else "values"
            for i, choice in enumerate(options_of(param)):
                yield from all_params(choice, (*at, key, i))


def find_params(template: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """``(path, raw parameter mapping)`` for every search parameter in a template, outermost first.

    Parameters nested inside the choices of a categorical or grid parameter are not listed: they
    exist only once that choice is made.
    """
    if is_param(template):
        yield path, template
    elif isinstance(template, dict):
        for key, value in template.items():
            yield from find_params(value, (*path, key))
    elif isinstance(template, list):
        for i, value in enumerate(template):
            yield from find_params(value, (*path, i))


def set_path(template: Any, path: tuple, value: Any) -> Any:
    """A copy of ``template`` with the value at ``path`` replaced (containers are copied, not shared)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(template, dict):
        return {**template, head: set_path(template[head], rest, value)}
    copy = list(template)
    copy[head] = set_path(copy[head], rest, value)
    return copy
