"""One formatter for pydantic validation errors, shared by training configs and study specs.

Messages are built from pydantic's structured errors (``type``, ``loc``, ``ctx``), the interface
pydantic keeps stable, rather than from its English text: a bound says ``must be >= 1``, an unknown
key says how to fix it, a validator's own ``ValueError`` text is used as it is, and an unknown
discriminator tag lists the valid ones, and an infinite or NaN number where a finite one is needed
says so. Any other error keeps pydantic's message.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import ErrorDetails

BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
          "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
UNKNOWN_KEY = "unknown key; remove it or check its spelling"
NOT_FINITE = "must be a finite number (not .inf, -.inf or .nan)"
NOT_A_MAPPING = frozenset({"dict_type", "model_type", "model_attributes_type"})
"""Errors that only say a value is not a mapping (a union member of another kind complaining)."""
CONTAINER_TYPES = NOT_A_MAPPING | {"list_type"}
"""Errors that only say a value is not a mapping or a list: noise when the value failed a union
member of another kind."""


def error_message(err: ErrorDetails) -> str:
    """Our message for one pydantic error.

    Args:
        err: one entry of ``ValidationError.errors()``.

    Returns:
        The message, without the location.
    """
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in BOUNDS:
        symbol, key = BOUNDS[kind]
        return f"must be {symbol} {_number(ctx[key])}"
    if kind == "extra_forbidden":
        return UNKNOWN_KEY
    if kind == "finite_number":
        return NOT_FINITE
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "union_tag_invalid":
        field = str(ctx.get("discriminator", "")).strip("'")
        return f"unknown {field} kind '{ctx['tag']}'; valid kinds: {ctx['expected_tags']}"
    return err["msg"]


def _number(value: Any) -> str:
    """A bound as pydantic shows it: a whole float without its ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def join_path(loc: tuple[Any, ...]) -> str:
    """A location as a YAML path: ``methods.beta_vae.beta``, list items as ``[i]``; ``<root>`` if empty."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"
