"""ControlVAE (Shao et al., "ControlVAE: Controllable Variational Autoencoder", ICML 2020), the
PI-controlled beta-VAE baseline of erow/disentanglement_lib (``PIDControl``).

    loss = R(x) + beta_t * KL,   beta_t = PIControl(KL_t detached, t)

The controller (``controllers.PIControl``) steers the batch KL towards a set point C(t) that rises
by ``c_step`` every ``period`` steps from ``init_c`` to ``c``:

    e = C(t) - KL,  P = K_p / (1 + exp(e)) + 1,  I += K_i * e (frozen while the previous unclipped
    output P + I < beta_min),  beta = max(P + I, beta_min)

Confirmed (code): the update rule and anti-windup, K_p = 0.01, K_i = -0.001, beta_min = 1 (the
code's literal 1), period 5000, the set point raised at t = 0, period, 2 * period ...
(``c_step * (floor(t / period) + 1)``). From the 2022-08 code version: init_c = 0.5, c_step = 0.15;
the later version's linear step is c_step = (c - init_c) / floor(total_steps / period). Inferred:
c = 16 (the DeVAE sweeps used c in {13.5, 16}; the code has no default). Deviation: C(t) is a
function of the global step instead of a counter advanced per forward call, so resume is exact.
Reported: ``kl_target`` (C(t)) as a term; beta as the schedule ``beta``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from disent_core.methods.base import VAE_TERMS, MethodConfig, MethodContext, Posterior, VAEMethod
from disent_core.methods.controllers import PIControl
from disent_core.schedules import ScheduledValue


class ControlVAEConfig(MethodConfig):
    name: Literal["control_vae"] = "control_vae"
    c: float = Field(16.0, ge=0, description="final KL set point C (nats)")
    init_c: float = Field(0.5, ge=0, description="set point before the first raise")
    c_step: float = Field(0.15, ge=0, description="raise of the set point every `period` steps")
    period: int = Field(5000, gt=0, description="steps between raises of the set point")
    k_p: float = Field(0.01, description="proportional gain")
    k_i: float = Field(-0.001, description="integral gain (negative: KL above the set point raises beta)")
    beta_min: float = Field(1.0, ge=0, description="lower clip of beta and anti-windup threshold")


class ControlVAE(VAEMethod):
    name = "control_vae"
    config_class = ControlVAEConfig
    config: ControlVAEConfig
    loss_terms = (*VAE_TERMS, "kl_target")
    schedule_names = ("beta",)

    def __init__(self, config: ControlVAEConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.controller = PIControl(
            c=config.c,
            init_c=config.init_c,
            c_step=config.c_step,
            period=config.period,
            k_p=config.k_p,
            k_i=config.k_i,
            beta_min=config.beta_min,
        )

    def schedules(self) -> dict[str, ScheduledValue]:
        return {"beta": self.controller}

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """beta_t * KL, with beta_t from the PI controller fed the detached batch KL of this step.

        Args:
            posterior: the batch's posterior; its total KL (nats) and global step are read. Advances
                the controller.

        Returns:
            ``"regularizer"`` (beta_t * KL) and ``"kl_target"`` (the set point C(t), nats), scalar tensors.
        """
        kl, step = posterior.kl, posterior.step
        beta = self.controller.update(float(kl.detach()), step)
        return {"regularizer": beta * kl, "kl_target": kl.new_tensor(self.controller.target(step))}
