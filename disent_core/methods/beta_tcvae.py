"""beta-TCVAE (Chen et al., "Isolating Sources of Disentanglement in Variational Autoencoders",
NeurIPS 2018), Eq. 4 with alpha = gamma = 1.

    loss = R(x) + KL + (beta(t) - 1) * TC

TC is the minibatch-weighted sampling (MWS) estimate over a batch of size B drawn from a dataset of
size N (``context.dataset_size``), with z_j ~ q(z|x_j):

    log q(z_j)           ~ logsumexp_i sum_d log N(z_jd; mu_id, var_id) - log(N * B)
    log prod_d q(z_jd)   ~ sum_d [logsumexp_i log N(z_jd; mu_id, var_id) - log(N * B)]
    TC = mean_j [log q(z_j) - log prod_d q(z_jd)]

Deliberate deviations from disentanglement_lib: the log(N * B) constants are kept, so the logged TC
is the estimator of the paper; it is larger than disentanglement_lib's by (d - 1) * log(N * B) and
has the same gradient. beta may follow a schedule of the global step. The erow port's extra alpha
((beta - alpha) * TC + alpha * KL) is not used.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field

from disent_core.methods.base import VAE_TERMS, MethodConfig, MethodContext, Posterior, VAEMethod
from disent_core.methods.losses import gaussian_log_density
from disent_core.schedules import Schedule, ScheduleConfig, as_schedule


class BetaTCVAEConfig(MethodConfig):
    name: Literal["beta_tc_vae"] = "beta_tc_vae"
    beta: Annotated[float, Field(ge=0)] | ScheduleConfig = Field(
        1.0, description="weight of TC is beta - 1: a constant or a schedule of the global step"
    )


def total_correlation(
    z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, dataset_size: int
) -> torch.Tensor:
    """Minibatch-weighted sampling estimate of TC(z) with the log(N * B) constants (see module doc).

    Args:
        z: posterior samples (B, d), z_j ~ q(z|x_j).
        mean: posterior means (B, d).
        logvar: posterior log-variances (B, d).
        dataset_size: N, the number of observations in the dataset (>= 1).

    Returns:
        The TC estimate in nats (a scalar tensor).
    """
    log_norm = math.log(dataset_size * z.shape[0])
    # log_density[j, i, d] = log N(z_jd; mu_id, var_id)
    log_density = gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))
    log_qz = torch.logsumexp(log_density.sum(2), dim=1) - log_norm
    log_prod_qzd = (torch.logsumexp(log_density, dim=1) - log_norm).sum(1)
    return (log_qz - log_prod_qzd).mean()


class BetaTCVAE(VAEMethod):
    name = "beta_tc_vae"
    config_class = BetaTCVAEConfig
    config: BetaTCVAEConfig
    loss_terms = (*VAE_TERMS, "tc")
    schedule_names = ("beta",)

    def __init__(self, config: BetaTCVAEConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        if context.dataset_size < 1:
            raise ValueError(f"beta_tc_vae needs the dataset size N >= 1, got {context.dataset_size}")
        self.beta = as_schedule(config.beta)

    def schedules(self) -> dict[str, Schedule]:
        return {"beta": self.beta}

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """KL + (beta(t) - 1) * TC, TC the minibatch-weighted sampling estimate.

        Args:
            posterior: the batch's posterior and sample (mean, logvar, z each (B, d)), KL and step.

        Returns:
            ``"regularizer"`` (KL + (beta - 1) * TC) and ``"tc"`` (nats), scalar tensors.
        """
        beta = self.beta(posterior.step)
        p = posterior
        tc = total_correlation(p.z, p.mean, p.logvar, self.context.dataset_size)
        return {
            "regularizer": p.kl + (beta - 1.0) * tc,
            "tc": tc,
        }
