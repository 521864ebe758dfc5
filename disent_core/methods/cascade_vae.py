"""CascadeVAE-C (Jeong & Song, "Learning Discrete and Continuous Factors of Data via Alternating
Disentanglement", ICML 2019), the continuous-only cascade baseline of erow/disentanglement_lib
(``Cascade``, used around DEFT).

    loss = R(x) + sum_d beta_d(t) * KL_d,
    beta_d(t) = beta_min for d <= stage(t), beta_max otherwise,
    stage(t) = min(floor(t / stage_steps), latent_dim - 1)

Every ``stage_steps`` steps one more latent dimension is relieved from beta_max to beta_min, in
index order. Confirmed (code: erow/disentanglement_lib ``Cascade`` in
``disentanglement_lib/methods/unsupervised/model.py`` and ``model_configs/shared.gin`` @c318d89;
docs/provenance.md, "CascadeVAE-C"): the rule, beta_min = 1, beta_max = 10, stage_steps = 6000.
No deliberate deviation. Reported: the schedule ``stage`` (stage(t)).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from disent_core.methods.base import MethodConfig, MethodContext, Posterior, VAEMethod
from disent_core.schedules import Schedule, StagesConfig


class CascadeVAEConfig(MethodConfig):
    name: Literal["cascade_vae_c"] = "cascade_vae_c"
    beta_min: float = Field(1.0, ge=0, description="KL weight of the relieved dimensions")
    beta_max: float = Field(10.0, ge=0, description="KL weight of the dimensions not yet relieved")
    stage_steps: int = Field(6000, gt=0, description="steps per stage (one more dimension relieved)")


class CascadeVAE(VAEMethod):
    name = "cascade_vae_c"
    config_class = CascadeVAEConfig
    config: CascadeVAEConfig
    schedule_names = ("stage",)

    def __init__(self, config: CascadeVAEConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        d = context.latent_dim
        stages = StagesConfig(
            values=[float(i) for i in range(d)],
            boundaries=[config.stage_steps * i for i in range(1, d)],
        )
        self.stage = stages.build()

    def schedules(self) -> dict[str, Schedule]:
        return {"stage": self.stage}

    def betas(self, step: int) -> torch.Tensor:
        """beta_d at ``step``, (latent_dim,).

        Args:
            step: the global step.

        Returns:
            (latent_dim,) float CPU tensor: beta_min for the first stage(step) + 1 dimensions,
            beta_max for the rest.
        """
        relieved = int(self.stage(step)) + 1
        betas = torch.full((self.context.latent_dim,), self.config.beta_max)
        betas[:relieved] = self.config.beta_min
        return betas

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """sum_d beta_d(t) * KL_d, relieving one more dimension every ``stage_steps`` steps.

        Args:
            posterior: the batch's posterior; its per-dimension KL (d,) and global step are read.

        Returns:
            ``{"regularizer": sum_d beta_d * KL_d}`` (a scalar tensor).
        """
        betas = self.betas(posterior.step).to(posterior.kl_per_dim)
        return {"regularizer": (betas * posterior.kl_per_dim).sum()}
