"""Command-line overrides of YAML fields: ``--set train.steps=2000``."""

from __future__ import annotations

from typing import Any

import yaml

from disent_core.errors import DisentError


def parse_set(assignments: list[str]) -> list[tuple[list[str], Any]]:
    """``["train.steps=2000"]`` -> ``[(["train", "steps"], 2000)]``; values are parsed as YAML."""
    out = []
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise DisentError(f"--set {item!r}: expected KEY=VALUE, for example --set train.steps=2000")
        out.append((key.split("."), yaml.safe_load(raw)))
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
