"""beta-VAE (Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework", ICLR 2017).

    loss = R(x) + beta(t) * KL

R is summed over pixels and KL over latent dimensions, both averaged over the batch
(disentanglement_lib's scale). Deviation from disentanglement_lib: beta may follow a schedule of the
global step t; a plain float is the constant beta of the reference.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from disent_core.methods.base import MethodConfig, MethodContext, Posterior, VAEMethod
from disent_core.schedules import Schedule, ScheduleConfig, as_schedule


class BetaVAEConfig(MethodConfig):
    name: Literal["beta_vae"] = "beta_vae"
    beta: Annotated[float, Field(ge=0)] | ScheduleConfig = Field(
        1.0, description="weight of the KL term: a constant or a schedule of the global step"
    )


class BetaVAE(VAEMethod):
    name = "beta_vae"
    config_class = BetaVAEConfig
    config: BetaVAEConfig
    schedule_names = ("beta",)

    def __init__(self, config: BetaVAEConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.beta = as_schedule(config.beta)

    def schedules(self) -> dict[str, Schedule]:
        return {"beta": self.beta}

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """beta(t) * KL, with beta the schedule at the posterior's step.

        Args:
            posterior: the batch's posterior; its total KL (nats) and global step are read.

        Returns:
            ``{"regularizer": beta(step) * KL}`` (a scalar tensor).
        """
        beta = self.beta(posterior.step)
        return {"regularizer": beta * posterior.kl}
