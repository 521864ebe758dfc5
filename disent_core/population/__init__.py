"""Fused populations: N members of one method and architecture trained as one model.

Members may differ in their seed and in the method options that only weight or schedule the loss;
everything else must be equal (``check_population``). Each member's numbers are those of its own
``disent_core.train.train`` up to floating-point rounding; its reports, checkpoint state and failure
are its own. docs/populations.md describes the design, the API and measured throughput.
"""

from disent_core.population.compat import check_population, population_key, supported_methods
from disent_core.population.trainer import (
    POPULATION_CHECKPOINT_NAME,
    MemberResult,
    Population,
    PopulationResult,
    check_population_memory,
    extract_member_checkpoint,
    load_population_checkpoint,
    member_checkpoint,
    train_population,
)

__all__ = [
    "POPULATION_CHECKPOINT_NAME",
    "MemberResult",
    "Population",
    "PopulationResult",
    "check_population",
    "check_population_memory",
    "extract_member_checkpoint",
    "load_population_checkpoint",
    "member_checkpoint",
    "population_key",
    "supported_methods",
    "train_population",
]
