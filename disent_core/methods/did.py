"""DiD (Zhang et al., "Disentanglement in Difference: Directly Learning Semantically Disentangled
Representations by Maximizing Inter-Factor Differences", arXiv 2502.03123): a reconstruction.

Neither the full text nor code of the paper could be read, so this is rebuilt from its abstract
and two summaries (``method_provenance: reconstruction``); docs/methods.md ("DiD") gives every
design choice with what is confirmed and what is ours, and docs/provenance.md the sources.

Networks: a generator G (``models.gan64.DCGANGenerator``, sigmoid output) of codes c from the prior
(``prior``), a WGAN-GP critic D and a Samples Encoder E (``models.gan64.ConvNet``, the dlib encoder
trunk), and a Difference Encoder H on channel-concatenated pairs, L2-normalised output. Per batch:

    L_D   = mean D(G(c)) - mean D(x_real) + lambda_gp * mean (|grad D(x_mix)|_2 - 1)^2
    L_enc = mean_batch sum_d (E(G(c))_d - c_d)^2
    L_H   = 1/2 [InfoNCE(v1 -> v2) + InfoNCE(v2 -> v1)],  v = H(G(c), G(c shifted along one dim k))
    L_G   = -mean D(G(c)) + lambda_H * L_H + lambda_enc * L_enc

where two shifts of the same dimension are positives and pairs built on other dimensions negatives.
``"loss"`` (one Adam on G, E, H) routes each network its own gradient through ``scale_gradient``;
``"critic_loss"`` (the critic's Adam) sees detached fakes. Deviations from the VAE conventions: a
step is one critic update and G is updated every ``critic_steps`` steps; DiD has no KL, so the
information the trainer reports (``information_per_dim``, named ``info``) is a Gaussian-channel
lower bound on what E recovers of each code dimension (``information_bound``). The representation
is E(x); it has no posterior, so no sampled representation.
"""
from __future__ import annotations

import contextlib
import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from disent_core.errors import ConfigError
from disent_core.methods.base import (
    RECONSTRUCTION,
    AdamBeta,
    Method,
    MethodConfig,
    MethodContext,
    OptimConfig,
)
from disent_core.methods.losses import scale_gradient
from disent_core.models.gan64 import ConvNet, DCGANGenerator

PositiveFloat = Annotated[float, Field(gt=0)]
CRITIC_SLOPE = 0.2
MIN_ERROR = 1e-12  # keeps the information bound finite when a code is recovered exactly
PRIOR_ENTROPY = {"uniform": math.log(2.0), "normal": 0.5 * math.log(2 * math.pi * math.e)}


class DiDConfig(MethodConfig):
    name: Literal["did"] = "did"
    prior: Literal["uniform", "normal"] = Field("uniform", description="latent prior: U(-1, 1)^n or N(0, I)")
    lambda_h: float = Field(1.0, ge=0, description="weight of the difference loss L_H in L_G (unknown)")
    lambda_enc: float = Field(1.0, ge=0, description="weight of the samples-encoder loss in L_G (unknown)")
    lambda_gp: float = Field(10.0, ge=0, description="WGAN-GP gradient-penalty weight")
    critic_steps: int = Field(5, ge=1, description="critic updates per generator update (n_critic)")
    temperature: float = Field(0.1, gt=0, description="InfoNCE temperature of L_H")
    shift_range: tuple[PositiveFloat, PositiveFloat] = Field(
        (0.5, 1.0), description="range of the absolute shift of the perturbed latent dimension"
    )
    difference_dim: int | None = Field(
        None, ge=1, description="size of the Difference Encoder's output (None: latent_dim)"
    )
    generator_betas: tuple[AdamBeta, AdamBeta] | None = Field(
        (0.5, 0.9), description="Adam betas of G, E and H (None: train.optimizer.betas)"
    )
    critic_lr: float = Field(1e-4, gt=0)
    critic_betas: tuple[AdamBeta, AdamBeta] = (0.5, 0.9)

    @model_validator(mode="after")
    def _shift_fits_the_prior(self) -> DiDConfig:
        low, high = self.shift_range
        if low > high:
            raise ValueError(f"shift_range {self.shift_range} must be (low, high) with low <= high")
        if self.prior == "uniform" and high > 1:
            raise ValueError("with the uniform prior on [-1, 1] shift_range must stay within (0, 1]")
        return self


def information_bound(squared_error: torch.Tensor, prior: str) -> torch.Tensor:
    """Per-dimension lower bound (nats) on what a code recovered with ``squared_error`` carries:
    max(0, h(prior) - 1/2 log(2 pi e mse_d)), the prior's entropy less a Gaussian noise's.

    Args:
        squared_error: mean squared recovery error of each code dimension, (n,), >= 0.
        prior: ``"uniform"`` (U(-1, 1)) or ``"normal"`` (N(0, 1)).

    Returns:
        (n,) tensor of bounds in nats, >= 0.
    """
    noise_entropy = 0.5 * torch.log(2 * math.pi * math.e * squared_error.clamp(min=MIN_ERROR))
    return (PRIOR_ENTROPY[prior] - noise_entropy).clamp(min=0)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, mix: torch.Tensor
) -> torch.Tensor:
    """mean_i (|grad_x D(x)|_2 at x = mix_i * real_i + (1 - mix_i) * fake_i  - 1)^2, differentiable.

    Args:
        critic: D, mapping images (B, C, H, W) to scores (B, 1).
        real: real images (B, C, H, W).
        fake: generated images (B, C, H, W), detached.
        mix: interpolation weights (B,) in [0, 1].

    Returns:
        The WGAN-GP penalty (a scalar tensor), with a graph to the critic's parameters.
    """
    weight = mix.reshape(-1, *([1] * (real.dim() - 1)))
    with torch.enable_grad():
        mixed = (weight * real + (1 - weight) * fake).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def difference_infonce(
    v1: torch.Tensor, v2: torch.Tensor, dims: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of paired difference vectors, and the top-1 accuracy of finding the positive.

    Row a of v1 and row a of v2 (both (B, m), normalised here) are positives; rows b whose pair was
    built on another dimension (dims[b] != dims[a]) are negatives; rows on the same dimension are
    neither and are left out of the denominator.

    Args:
        v1: difference vectors (B, m) of the first shifts.
        v2: difference vectors (B, m) of the second shifts.
        dims: (B,) int64 latent dimension each pair was built on.
        temperature: the softmax temperature (> 0).

    Returns:
        (loss in nats, accuracy in [0, 1]), scalar tensors.
    """
    v1, v2 = F.normalize(v1, dim=1), F.normalize(v2, dim=1)
    logits = v1 @ v2.T / temperature
    eye = torch.eye(len(dims), dtype=torch.bool, device=dims.device)
    excluded = (dims[:, None] == dims[None, :]) & ~eye
    logits = logits.masked_fill(excluded, float("-inf"))
    target = torch.arange(len(dims), device=dims.device)
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    accuracy = (logits.argmax(dim=1) == target).float().mean()
    return loss, accuracy


class DiD(Method):
    name = "did"
    config_class = DiDConfig
    provenance = RECONSTRUCTION
    config: DiDConfig
    loss_terms = (
        "loss", "generator_loss", "adversarial", "difference", "difference_accuracy", "enc",
        "critic_loss", "wasserstein", "gradient_penalty", "information", "information_per_dim",
    )
    information_term = "information_per_dim"
    information_name = "info"

    def __init__(self, config: DiDConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        if context.architecture != "dlib":
            raise ConfigError(
                f"model.architecture {context.architecture!r}: DiD builds its own networks on the dlib "
                "encoder trunk; leave model.architecture at dlib"
            )
        channels = context.observation_shape[0]
        n, b = context.latent_dim, context.base_channels
        self.generator = DCGANGenerator(n, channels, b)
        self.critic = ConvNet(channels, 1, b, negative_slope=CRITIC_SLOPE)
        self.samples_encoder = ConvNet(channels, n, b)
        self.difference_encoder = ConvNet(2 * channels, config.difference_dim or n, b)

    def generate(self, codes: torch.Tensor) -> torch.Tensor:
        """G(c): images in [0, 1].

        Args:
            codes: codes c (N, n).

        Returns:
            Images (N, C, H, W) in [0, 1].
        """
        return torch.sigmoid(self.generator(codes))

    # --- LatentModel (disent_core.latents): what figures read ---------------------------------
    reconstruction_name = "G(E(x))"

    @property
    def code_bound(self) -> float | None:
        """1 under the uniform prior on [-1, 1] (codes outside its support mean nothing), else None."""
        return 1.0 if self.config.prior == "uniform" else None

    @torch.no_grad()
    def code(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), clipped to the prior's support under the uniform prior.

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            Codes (N, n), in [-1, 1] under the uniform prior.
        """
        code = self.samples_encoder(x)
        return code if self.code_bound is None else code.clamp(-self.code_bound, self.code_bound)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): images in [0, 1].

        Args:
            z: codes (N, n).

        Returns:
            Images (N, C, H, W) in [0, 1].
        """
        return self.generate(z)

    @torch.no_grad()
    def latent_information(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The information bound of each dimension on len(x) prior codes drawn from ``generator``
        (``x`` only sets the batch size): max(0, h(c_d) - 1/2 log(2 pi e mse_d)).

        Args:
            x: observations (N, C, H, W); only N, the device and the dtype are read.
            generator: a CPU generator the N prior codes are drawn from.

        Returns:
            (n,) tensor of bounds in nats, >= 0.
        """
        shape = (x.shape[0], self.context.latent_dim)
        if self.config.prior == "uniform":
            codes = 2 * torch.rand(shape, generator=generator) - 1
        else:
            codes = torch.randn(shape, generator=generator)
        codes = codes.to(device=x.device, dtype=x.dtype)
        error = (self.samples_encoder(self.generate(codes)) - codes).square().mean(0)
        return information_bound(error, self.config.prior)

    def sample_prior(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """(batch, n) codes from the prior, drawn from the context's generator.

        Args:
            batch: how many codes.
            like: a tensor whose device and dtype the codes take.

        Returns:
            (batch, n) codes: U(-1, 1) or N(0, 1) entries.
        """
        shape = (batch, self.context.latent_dim)
        g, device, dtype = self.context.generator, like.device, like.dtype
        if self.config.prior == "uniform":
            return 2 * torch.rand(shape, generator=g, device=device, dtype=dtype) - 1
        return torch.randn(shape, generator=g, device=device, dtype=dtype)

    def perturb(self, codes: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
        """codes with dimension dims[i] of row i shifted by +-U(shift_range) (kept in the prior's support).

        Args:
            codes: codes (B, n).
            dims: (B,) int64 dimension to shift in each row.

        Returns:
            (B, n) copy of ``codes`` with one entry per row shifted (the shift reversed where it would
            leave [-1, 1] under the uniform prior).
        """
        low, high = self.config.shift_range
        g, n = self.context.generator, codes.shape[0]
        size = low + (high - low) * torch.rand(n, generator=g, device=codes.device, dtype=codes.dtype)
        flip = torch.rand(n, generator=g, device=codes.device) < 0.5
        shift = torch.where(flip, -size, size)
        current = codes.gather(1, dims[:, None]).squeeze(1)
        moved = current + shift
        if self.config.prior == "uniform":
            moved = torch.where(moved.abs() > 1, current - shift, moved)
        return codes.scatter(1, dims[:, None], moved[:, None])

    def loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One critic step's terms; the generator side is trained every ``critic_steps`` steps.

        Args:
            x: a batch of real images (B, C, H, W), float in [0, 1].
            step: the global step (critic updates so far).

        Returns:
            ``"loss"`` (G, E, H: adversarial + difference + enc, each network's gradient weighted by
            ``scale_gradient``), ``"critic_loss"``, logged scalars (``"generator_loss"``, ``"adversarial"``,
            ``"difference"``, ``"difference_accuracy"``, ``"enc"``, ``"wasserstein"``,
            ``"gradient_penalty"``, ``"information"`` in nats) and ``"information_per_dim"`` (n,).
        """
        cfg, g = self.config, self.context.generator
        batch = x.shape[0]
        generator_step = (step + 1) % cfg.critic_steps == 0
        codes = self.sample_prior(batch, x)
        dims = torch.randint(self.context.latent_dim, (batch,), generator=g, device=x.device)
        all_codes = torch.cat([codes, self.perturb(codes, dims), self.perturb(codes, dims)])
        with contextlib.nullcontext() if generator_step else torch.no_grad():
            images = self.generate(all_codes)
        fake, shifted1, shifted2 = images.split(batch)

        critic_real = self.critic(x).squeeze(1)
        critic_fake = self.critic(fake.detach()).squeeze(1)
        mix = torch.rand(batch, generator=g, device=x.device, dtype=x.dtype)
        penalty = gradient_penalty(self.critic, x, fake.detach(), mix)
        wasserstein = critic_real.mean() - critic_fake.mean()
        critic_loss = -wasserstein + cfg.lambda_gp * penalty
        if generator_step:
            adversarial = -self.critic(fake).mean()
        else:
            adversarial = -critic_fake.detach().mean()

        estimate = self.samples_encoder(scale_gradient(fake, cfg.lambda_enc))
        squared_error = (estimate - codes).square().mean(0)
        enc = squared_error.sum()

        anchors = scale_gradient(torch.cat([fake, fake]), cfg.lambda_h)
        moved = scale_gradient(torch.cat([shifted1, shifted2]), cfg.lambda_h)
        v1, v2 = self.difference_encoder(torch.cat([anchors, moved], dim=1)).split(batch)
        difference, difference_accuracy = difference_infonce(v1, v2, dims, cfg.temperature)

        information = information_bound(squared_error.detach(), cfg.prior)
        return {
            "loss": adversarial + difference + enc,
            "generator_loss": (adversarial + cfg.lambda_h * difference + cfg.lambda_enc * enc).detach(),
            "adversarial": adversarial,
            "difference": difference,
            "difference_accuracy": difference_accuracy,
            "enc": enc,
            "critic_loss": critic_loss,
            "wasserstein": wasserstein.detach(),
            "gradient_penalty": penalty.detach(),
            "information": information.sum(),
            "information_per_dim": information,
        }

    def optimizers(self, optim: OptimConfig) -> list[tuple[str, torch.optim.Optimizer]]:
        """One Adam on G, E and H minimising ``"loss"``, then the critic's Adam on ``"critic_loss"``.

        Args:
            optim: lr, eps and (unless ``generator_betas`` is set) betas of the first Adam.

        Returns:
            ``[("loss", adam_g_e_h), ("critic_loss", critic_adam)]``.
        """
        networks = [*self.generator.parameters(), *self.samples_encoder.parameters(),
                    *self.difference_encoder.parameters()]
        betas = self.config.generator_betas or optim.betas
        main = torch.optim.Adam(networks, lr=optim.lr, betas=betas, eps=optim.eps)
        critic = torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr,
                                  betas=self.config.critic_betas)
        return [("loss", main), ("critic_loss", critic)]

    @torch.no_grad()
    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), the samples encoder's code (unclipped).

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            Codes (N, n).
        """
        return self.samples_encoder(x)
