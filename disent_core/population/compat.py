"""When members form one population, and the message that says why a list of members does not.

A population trains its members as one model, so every setting that shapes the computation graph,
the optimiser or the data pipeline must be equal: the dataset (name and options), the whole
``model`` section (architecture, latent size, base channels, reconstruction loss), every ``train``
setting (steps, batch size, optimiser, learning-rate multiplier, cadences, device, threads,
prefetch, precision) and every method option that changes the networks or their optimisers (FactorVAE's
discriminator learning rate, DeVAE's layer sampling and number of spaces). Members may differ in

- ``train.seed``: the member's initialisation, data stream and random draws;
- ``train.steps_note``: a free-text note, recorded with the member;
- the method options of ``FusedMethod.weights``: those that only weight or schedule the loss
  (beta and its schedule, C, gamma, lambdas, controller targets and gains).

Deliberate limits: ``train.channels_last`` is refused (the fused convolutions run in the default
layout), and so is ``train.precision: fp16``: its gradient scaler skips the step of a model whose
gradients overflow, and one scaler over the stacked members would skip every member's step, so a
member's numbers would depend on the others. ``bf16`` (autocast, no scaler) is supported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from disent_core.config import TrainConfig
from disent_core.errors import ConfigError
from disent_core.population.methods import FUSED_METHODS

MEMBER_FIELDS = ("train.seed", "train.steps_note")
"""Config paths besides the method's weights in which members may differ."""


def _differences(a: Any, b: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(a.keys() | b.keys()):
            found += _differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return found
    return [] if a == b else [(path, a, b)]


def _may_differ(path: str, weights: frozenset[str]) -> bool:
    if path in MEMBER_FIELDS:
        return True
    head, _, rest = path.partition(".")
    return head == "method" and rest.split(".")[0] in weights


def supported_methods() -> list[str]:
    """The names of the methods that train as populations, sorted.

    Returns:
        Method names (``FUSED_METHODS``' keys).
    """
    return sorted(FUSED_METHODS)


def population_key(config: TrainConfig) -> str | None:
    """What a member shares with every other member of its population, as text.

    Configs with equal keys train as one population (``check_population`` accepts them); a config
    whose key is None trains alone.

    Args:
        config: a member's training config.

    Returns:
        The config without its member fields and its method's weights, and its method's structure,
        as JSON; None when its method does not train as a population, or under
        ``train.channels_last`` or ``train.precision: fp16``.
    """
    name = config.method.name
    if name not in FUSED_METHODS or config.train.channels_last or config.train.precision == "fp16":
        return None
    fused = FUSED_METHODS[name]
    shared = config.model_dump(mode="json")
    for path in MEMBER_FIELDS:
        section, _, key = path.partition(".")
        shared[section].pop(key, None)
    shared["method"] = {k: v for k, v in shared["method"].items() if k not in fused.weights}
    return json.dumps([shared, fused.structure(config.method)], sort_keys=True, default=str)


def check_population(configs: Sequence[TrainConfig]) -> None:
    """Refuse a list of member configs that cannot train as one population.

    Args:
        configs: the members' training configs, member 0 first.

    Raises:
        ConfigError: no members; a method that does not train as a population (the message lists
            those that do); ``train.channels_last``; or a member that differs from member 0 in a
            setting that splits a population (the message names the field and both values).
    """
    if not configs:
        raise ConfigError("a population needs at least one member config")
    name = configs[0].method.name
    if name not in FUSED_METHODS:
        raise ConfigError(f"method {name!r} does not train as a population; methods that do: "
                          f"{', '.join(supported_methods())}")
    if configs[0].train.channels_last:
        raise ConfigError("train.channels_last is not supported by populations; leave it false")
    if configs[0].train.precision == "fp16":
        raise ConfigError(
            "train.precision fp16 is not supported by populations: its gradient scaler skips a model's step "
            "when that model's gradients overflow, and one scaler over the stacked members would skip "
            "every member's step; use fp32 or bf16"
        )
    fused = FUSED_METHODS[name]
    reference = configs[0].model_dump(mode="json")
    structure = fused.structure(configs[0].method)
    for i, config in enumerate(configs[1:], 1):
        if config.method.name != name:
            raise ConfigError(
                f"member {i} trains method {config.method.name!r} and member 0 {name!r}; a population "
                "trains one method: train them in separate populations"
            )
        splitting = [d for d in _differences(reference, config.model_dump(mode="json"), "")
                     if not _may_differ(d[0], fused.weights)]
        splitting += [(what, value, other) for (what, value), other in
                      zip(structure.items(), fused.structure(config.method).values(), strict=True)
                      if value != other]
        if splitting:
            detail = "; ".join(f"{path}: member 0 has {a!r}, member {i} has {b!r}"
                               for path, a, b in splitting)
            allowed = ", ".join([*MEMBER_FIELDS, *(f"method.{w}" for w in sorted(fused.weights))])
            raise ConfigError(
                f"member {i} cannot train in one population with member 0: {detail}. A population shares "
                f"its graph, optimiser and data pipeline; members may differ only in {allowed}. Train "
                "members that differ elsewhere in separate populations"
            )
