"""Command-line overrides of YAML fields: ``--set train.steps=2000``."""

from __future__ import annotations

from typing import Any

import yaml

from disent_core.errors import DisentError


def parse_set(assignments: list[str]) -> list[tuple[list[str], Any]]:
    """``["train.steps=2000"]`` -> ``[(["train", "steps"], 2000)]``; values are parsed as YAML.

    Args:
        assignments: ``KEY=VALUE`` texts, the key dotted, the value YAML.

    Returns:
        ``(key parts, value)`` per assignment.

    Raises:
        DisentError: an assignment without ``=``, with an empty key part, or whose value is not YAML.
    """
    out = []
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise DisentError(f"--set {item!r}: expected KEY=VALUE, for example --set train.steps=2000")
        parts = key.split(".")
        if not all(parts):
            raise DisentError(
                f"--set {item!r}: the key {key!r} has an empty part; separate keys with one dot"
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise DisentError(
                f"--set {item!r}: the value {raw!r} is not valid YAML ({problem}); close its brackets "
                "and quotes, or quote the whole value to set a string"
            ) from None
        out.append((parts, value))
    return out


def apply_set(data: dict, assignments: list[tuple[list[str], Any]]) -> dict:
    """Set dotted keys in a nested dict (creating intermediate mappings)."""
    for path, value in assignments:
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise DisentError(f"--set {'.'.join(path)}: {part!r} is not a mapping")
            node = child
        node[path[-1]] = value
    return data
