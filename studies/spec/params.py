"""The search-parameter language of a study spec: ``{search: <kind>, ...}`` mappings and the walkers
over the templates that hold them.

A value under ``model``, ``train`` or ``methods.<name>`` is a search parameter when it is a mapping
with the key ``search`` (``PARAM_KINDS``): ``float`` / ``log_float`` / ``int`` / ``log_int`` with
``low`` and ``high`` (and an optional ``step``), ``categorical`` with ``choices`` and ``grid`` with
``values``. Choices may be whole objects holding parameters of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Finite = Annotated[float, Field(allow_inf_nan=False)]
"""A bound of a numeric range: Optuna samples between finite bounds only (``.inf`` overflows)."""


class _Range(_Strict):
    """A numeric range: finite bounds, ``low`` smaller than ``high``."""

    low: Finite
    high: Finite

    @model_validator(mode="after")
    def _range(self) -> _Range:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be smaller than high ({self.high})")
        return self


class FloatParam(_Range):
    search: Literal["float"]
    low: Finite
    high: Finite
    step: float | None = Field(None, gt=0, allow_inf_nan=False)


class LogFloatParam(FloatParam):
    search: Literal["log_float"]  # type: ignore[assignment]
    low: float = Field(
        gt=0, allow_inf_nan=False, description="log-uniform ranges need a positive lower bound"
    )
    step: None = None


class IntParam(_Range):
    search: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)


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


def param_name(prefix: str, path: tuple[str | int, ...]) -> str:
    """A search parameter's Optuna name: ``prefix`` then ``.key`` per mapping key and ``[i]`` per
    list item or categorical choice (``annealed_vae.capacity[1].end``).

    Args:
        prefix: the section's prefix (``model``, ``train``, or the method's name).
        path: keys and indices from the section down to the parameter; a choice is its index.

    Returns:
        The name.
    """
    return prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


@dataclass(frozen=True)
class Found:
    """A search parameter found in a template.

    Attributes:
        path: where it sits for ``param_name`` (a categorical choice counted as its index).
        spec_path: where it sits in the YAML (``capacity.choices[1].end``), for messages.
        raw: its ``{search: ...}`` mapping.
    """

    path: tuple[str | int, ...]
    spec_path: tuple[str | int, ...]
    raw: dict


def walk(template: Any, nested: bool = True, spec_path: tuple = (), path: tuple = ()) -> Iterator[Found]:
    """Every search parameter in a template, outermost first.

    Args:
        template: a spec section (or any value inside one).
        nested: also the parameters inside the choices of a categorical or grid parameter, which
            exist only once that choice is made (malformed parameters are not descended into).
        spec_path: the template's own YAML path (prefixed to every ``spec_path``).
        path: the template's own ``param_name`` path.

    Returns:
        An iterator of ``Found``.
    """
    if is_param(template):
        yield Found(path, spec_path, template)
        if not nested:
            return
        try:
            param = parse_param(template)
        except ValidationError:
            return
        if isinstance(param, CategoricalParam | GridParam):
            key = "choices" if isinstance(param, CategoricalParam) else "values"
            for i, choice in enumerate(options_of(param)):
                yield from walk(choice, nested, (*spec_path, key, i), (*path, i))
    elif isinstance(template, dict):
        for key, value in template.items():
            yield from walk(value, nested, (*spec_path, key), (*path, key))
    elif isinstance(template, list):
        for i, value in enumerate(template):
            yield from walk(value, nested, (*spec_path, i), (*path, i))


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
