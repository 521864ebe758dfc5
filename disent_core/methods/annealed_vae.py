"""AnnealedVAE / CCI-VAE (Burgess et al., "Understanding disentangling in beta-VAE", 2018).

    loss = R(x) + gamma * |KL - C(t)|,   C(t) = min(c_max, c_max * t / iteration_threshold)

t is the global step passed to ``loss`` (VAE parameter updates), as in disentanglement_lib's
TensorFlow version. Deliberate deviations: the erow PyTorch port advances C with an internal counter
per forward call, which drifts on resume or repeated calls; this module never keeps a counter.
``capacity`` may replace the default linear C(t) with any schedule.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from disent_core.methods.base import MethodConfig, MethodContext, Posterior, VAEMethod
from disent_core.schedules import LinearConfig, Schedule, ScheduleConfig, as_schedule


class AnnealedVAEConfig(MethodConfig):
    name: Literal["annealed_vae"] = "annealed_vae"
    c_max: float = Field(25.0, ge=0, description="final capacity C (nats)")
    gamma: float = Field(1000.0, ge=0, description="weight of |KL - C(t)|")
    iteration_threshold: int = Field(100_000, gt=0, description="steps over which C rises from 0 to c_max")
    capacity: ScheduleConfig | None = Field(
        None, description="schedule of C(t) replacing the default linear ramp (c_max is then unused)"
    )


class AnnealedVAE(VAEMethod):
    name = "annealed_vae"
    config_class = AnnealedVAEConfig
    config: AnnealedVAEConfig
    schedule_names = ("capacity",)

    def __init__(self, config: AnnealedVAEConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        if config.capacity is None:
            ramp = LinearConfig(start=0.0, end=config.c_max, steps=config.iteration_threshold)
            self.capacity = ramp.build()
        else:
            self.capacity = as_schedule(config.capacity)

    def schedules(self) -> dict[str, Schedule]:
        return {"capacity": self.capacity}

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """gamma * |KL - C(t)|, with C the capacity schedule at the posterior's step.

        Args:
            posterior: the batch's posterior; its total KL (nats) and global step are read.

        Returns:
            ``{"regularizer": gamma * |KL - C(step)|}`` (a scalar tensor).
        """
        capacity = self.capacity(posterior.step)
        reg = self.config.gamma * (posterior.kl - capacity).abs()
        return {"regularizer": reg}
