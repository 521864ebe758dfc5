"""FactorVAE (Kim & Mnih, "Disentangling by Factorising", ICML 2018).

    VAE loss:           R(x) + KL + gamma * TC,   TC = mean_batch[D_real(z) - D_fake(z)]
    discriminator loss: -0.5 * mean_batch log p_real(z) - 0.5 * mean_batch log p_fake(perm(z))

z ~ q(z|x) is the batch's posterior sample; D is the discriminator's two logits (index 0 "real":
a sample of q(z), index 1 "fake": a sample of prod_d q(z_d)); p = softmax(D) clipped to
[1e-6, 1 - 1e-6] as in disentanglement_lib; perm(z) permutes each dimension independently across
the batch (the context's generator). Two optimisers, stepped in order once per global step: the
VAE's Adam on "loss" (encoder and decoder only) and the discriminator's Adam on
"discriminator_loss" (lr 1e-4, betas (0.5, 0.9)).

As in disentanglement_lib, TC and the discriminator loss use the same batch (the paper draws a
second batch for the permuted codes). Deliberate deviations: the discriminator's inputs are detached
(disentanglement_lib gets the same gradients by restricting each optimiser's var_list); steps count
VAE updates only, whereas TF1's two ``minimize`` calls may both advance the global step.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from disent_core.methods.base import (
    VAE_TERMS,
    AdamBeta,
    MethodConfig,
    MethodContext,
    OptimConfig,
    Posterior,
    VAEMethod,
)
from disent_core.models.discriminator import FactorDiscriminator

PROB_CLIP = 1e-6


class FactorVAEConfig(MethodConfig):
    name: Literal["factor_vae"] = "factor_vae"
    gamma: float = Field(10.0, ge=0, description="weight of the total-correlation estimate")
    discriminator_lr: float = Field(1e-4, gt=0)
    discriminator_betas: tuple[AdamBeta, AdamBeta] = (0.5, 0.9)


def permute_dims(z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Permute each column of z (N, d) independently across the batch.

    Args:
        z: codes (N, d).
        generator: the source of the permutations, on ``z``'s device.

    Returns:
        (N, d) tensor: each column of ``z`` shuffled independently.
    """
    order = torch.rand(z.shape, generator=generator, device=z.device).argsort(dim=0)
    return z.gather(0, order)


def clipped_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log of softmax(logits) clipped to [PROB_CLIP, 1 - PROB_CLIP] (disentanglement_lib).

    Args:
        logits: discriminator logits (N, 2).

    Returns:
        (N, 2) log-probabilities, in [log 1e-6, log(1 - 1e-6)].
    """
    return logits.softmax(dim=1).clamp(PROB_CLIP, 1 - PROB_CLIP).log()


class FactorVAE(VAEMethod):
    name = "factor_vae"
    config_class = FactorVAEConfig
    config: FactorVAEConfig
    loss_terms = (*VAE_TERMS, "tc", "discriminator_loss", "discriminator_accuracy")

    def __init__(self, config: FactorVAEConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.discriminator = FactorDiscriminator(context.latent_dim)

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """KL + gamma * TC, with TC read off the discriminator; also the discriminator's own loss.

        Args:
            posterior: the batch's posterior; its sample z (N, d) and total KL are read.

        Returns:
            ``"regularizer"`` (KL + gamma * TC), ``"tc"``, ``"discriminator_loss"`` (on detached z and
            its permutation) and ``"discriminator_accuracy"`` (in [0, 1]), scalar tensors.
        """
        logits = self.discriminator(posterior.z)
        d_logits = self.discriminator(self.discriminator_batch(posterior.z))
        return self.tc_terms(posterior, logits, d_logits)

    def discriminator_batch(self, z: torch.Tensor) -> torch.Tensor:
        """The discriminator's training batch: the detached codes, then their permutation.

        Args:
            z: the posterior sample (N, d).

        Returns:
            (2N, d): ``z.detach()`` stacked on ``permute_dims`` of it (drawn from the context's
            generator).
        """
        real = z.detach()
        return torch.cat([real, permute_dims(real, self.context.generator)])

    def tc_terms(
        self, posterior: Posterior, logits: torch.Tensor, d_logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``regularizer``'s terms from the discriminator's logits (``disent_core.population`` runs
        many members' discriminators as one and calls this on each member's slice).

        Args:
            posterior: the batch's posterior; its sample z (N, d) and total KL are read.
            logits: the discriminator on ``posterior.z``, (N, 2).
            d_logits: the discriminator on ``discriminator_batch(posterior.z)``, (2N, 2).

        Returns:
            As ``regularizer``.
        """
        tc = (logits[:, 0] - logits[:, 1]).mean()
        n = posterior.z.shape[0]
        log_p = clipped_log_probs(d_logits)
        discriminator_loss = -0.5 * log_p[:n, 0].mean() - 0.5 * log_p[n:, 1].mean()
        correct = torch.cat([d_logits[:n, 0] > d_logits[:n, 1], d_logits[n:, 1] > d_logits[n:, 0]])
        return {
            "regularizer": posterior.kl + self.config.gamma * tc,
            "tc": tc,
            "discriminator_loss": discriminator_loss,
            "discriminator_accuracy": correct.float().mean(),
        }

    def optimizers(self, optim: OptimConfig) -> list[tuple[str, torch.optim.Optimizer]]:
        """The VAE's Adam on ``"loss"``, then the discriminator's Adam on ``"discriminator_loss"``.

        Args:
            optim: the VAE optimiser's Adam settings (the discriminator's come from the config).

        Returns:
            ``[("loss", vae_adam), ("discriminator_loss", discriminator_adam)]``.
        """
        discriminator_adam = torch.optim.Adam(
            self.discriminator.parameters(),
            lr=self.config.discriminator_lr,
            betas=self.config.discriminator_betas,
        )
        return [*super().optimizers(optim), ("discriminator_loss", discriminator_adam)]
