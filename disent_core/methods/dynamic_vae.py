"""DynamicVAE (Shao et al., "Rethinking Controllable Variational Autoencoders", CVPR 2022), the
incremental-PI beta-VAE baseline of the DeVAE paper, as in erow/disentanglement_lib ``DynamicVAE``.

    loss = R(x) + beta_t * KL,   beta_t = IncrementalPIControl(KL_t detached, t)

with (``controllers.IncrementalPIControl``)

    target(t) = C / floor(T / period) * floor(min(t, T) / period)
    y_t = alpha * KL_t + (1 - alpha) * y_{t-1},   e_t = y_t - target(t)
    beta_t = max(beta_{t-1} + K_p * (f(e_t) - f(e_{t-1})) + [beta_{t-1} >= beta_min] * K_i * e_t, beta_min)

Confirmed (authors' code, erow/disentanglement_lib ``DynamicVAE`` from commit 8a0e8ab, 2022-09-17,
to the last commit fd8a9af): the update rule with e = y - target, positive gains and
f(e) = min(e, 0) (``proportional_on = "undershoot"``, the default), its anti-windup, alpha = 0.95,
beta_init = 150, beta_min = 1, the staircase target with period K, and the repo defaults C = 11,
K_p = 0.01, K_i = 0.005 (the DeVAE paper used C = 18, K_p = 0.01, K_i = 0.001, T = 200k, K = 5000).
T = 100k is this project's default (the code requires it). ``proportional_on = "overshoot"``,
f(e) = max(e, 0), is a labelled legacy option: the rule of the earlier commit 9eb8bfd (e' = target - y,
negative gains, f = min(e', 0)), which had a linear target and never a staircase. As in the code the
anti-windup reads the clipped beta_{t-1}, so it fires only when beta_init < beta_min. Deviation:
the target is a function of the global step, so resume is exact. Reported: ``kl_target`` and
``kl_ema`` as terms; beta as the schedule ``beta``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from disent_core.methods.base import VAE_TERMS, MethodConfig, MethodContext, Posterior, VAEMethod
from disent_core.methods.controllers import IncrementalPIControl, ProportionalOn
from disent_core.schedules import ScheduledValue


class DynamicVAEConfig(MethodConfig):
    name: Literal["dynamic_vae"] = "dynamic_vae"
    c: float = Field(11.0, ge=0, description="final KL target C (nats)")
    total_steps: int = Field(100_000, gt=0, description="T: steps until the target reaches C")
    period: int = Field(5000, gt=0, description="K: the target rises in steps every `period` steps")
    alpha: float = Field(0.95, gt=0, le=1, description="EMA weight of the newest KL")
    k_p: float = Field(0.01, ge=0, description="proportional gain")
    k_i: float = Field(0.005, ge=0, description="integral gain")
    beta_init: float = Field(150.0, ge=0, description="beta before the first step")
    beta_min: float = Field(1.0, ge=0, description="lower clip of beta and anti-windup threshold")
    proportional_on: ProportionalOn = Field(
        "undershoot",
        description="undershoot: f(e) = min(e, 0) (authors' code from 8a0e8ab on); "
        "overshoot: f(e) = max(e, 0) (legacy rule of commit 9eb8bfd)",
    )

    @model_validator(mode="after")
    def _period_fits(self) -> DynamicVAEConfig:
        if self.total_steps < self.period:
            raise ValueError(f"total_steps ({self.total_steps}) must be >= period ({self.period})")
        return self


class DynamicVAE(VAEMethod):
    name = "dynamic_vae"
    config_class = DynamicVAEConfig
    config: DynamicVAEConfig
    loss_terms = (*VAE_TERMS, "kl_target", "kl_ema")
    schedule_names = ("beta",)

    def __init__(self, config: DynamicVAEConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.controller = IncrementalPIControl(
            c=config.c,
            total_steps=config.total_steps,
            period=config.period,
            alpha=config.alpha,
            k_p=config.k_p,
            k_i=config.k_i,
            beta_init=config.beta_init,
            beta_min=config.beta_min,
            proportional_on=config.proportional_on,
        )

    def schedules(self) -> dict[str, ScheduledValue]:
        return {"beta": self.controller}

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """beta_t * KL, with beta_t from the incremental PI controller fed the detached batch KL.

        Args:
            posterior: the batch's posterior; its total KL (nats) and global step are read. Advances
                the controller.

        Returns:
            ``"regularizer"`` (beta_t * KL), ``"kl_target"`` (target(t), nats) and ``"kl_ema"`` (the
            controller's KL EMA, nats), scalar tensors.
        """
        kl, step = posterior.kl, posterior.step
        beta = self.controller.update(float(kl.detach()), step)
        return {
            "regularizer": beta * kl,
            "kl_target": kl.new_tensor(self.controller.target(step)),
            "kl_ema": kl.new_tensor(self.controller.state["kl_ema"]),
        }
