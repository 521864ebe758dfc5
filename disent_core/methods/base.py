"""The method interface and the shared VAE training-step template.

A method is an ``nn.Module`` (and an ``abc.ABC``: instantiating one that misses an abstract method is
a ``TypeError``) that owns its networks and declares:

- ``loss(x, step) -> dict[str, Tensor]`` (abstract): named terms, exactly the class's ``loss_terms``
  (``term_names()`` for a method whose terms depend on its config). ``"loss"`` is the total that the
  VAE optimiser minimises; every component (``recon``, ``kl``, ``tc`` ...) is there for logging; the
  vector named by the class's ``information_term`` (d,) is the batch-mean information of each latent
  dimension that the trainer reports, named ``information_name`` (a VAE's ``"kl_per_dim"``, the
  KL of each dimension; DiD's ``"information_per_dim"``, an information bound). Methods with a
  second network add its own total (FactorVAE: ``"discriminator_loss"``).
- ``optimizers(optim) -> list[(loss key, optimizer)]`` (abstract): which optimiser minimises which
  term, in the order the trainer steps them. Steps count updates of the first (the VAE's) optimiser.
- ``schedules() -> dict[str, ScheduledValue]``: every schedule whose value enters a loss (beta, C ...),
  checkpointed and reported by the trainer; its keys are the class's ``schedule_names``.
- ``lr_factors(step) -> dict[loss key, list[float]]``: a factor per parameter group of an optimiser
  at ``step`` (default: none, i.e. 1). Before every step the trainer writes
  ``group["lr"] = group["base_lr"] * factor * multiplier`` (``train.set_learning_rates``), where
  ``base_lr`` is the group's nominal learning rate (its ``lr`` when first seen, unless the method
  sets it) and ``multiplier`` the trainer's global learning-rate schedule.
- ``representation(x) -> Tensor`` (abstract): the code that metrics score (the posterior mean).
- ``posterior(x) -> (mean, logvar)``: the Gaussian posterior q(z|x) = N(mean, diag exp(logvar))
  whose mean is the representation; disentanglement_lib's sampled representation draws
  ``reparameterize(mean, logvar, generator)`` from it. Methods without a posterior (DiD) raise
  ``MetricError``.

``GaussianAutoencoder`` holds what every Gaussian encoder/decoder method shares: the networks from
the overridable ``build_encoder`` / ``build_decoder`` hooks, ``sample``, ``representation``,
``posterior``, ``reconstruct`` and one Adam. ``VAEMethod`` adds the fixed training step (encode,
sample, decode, reconstruction + KL) with one hook, ``regularizer(Posterior)``, so that each baseline
is a few dozen lines; its last stage, ``vae_terms``, is public so that ``disent_core.population`` can
run many members' networks as one and each member's own sampling and regularizer on its slice.
Randomness comes from the ``torch.Generator`` in the ``MethodContext``; nothing
draws from torch's global RNG.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Annotated, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from disent_core.errors import MetricError
from disent_core.latents import reparameterize
from disent_core.methods.losses import ReconLoss, gaussian_kl_per_dim, reconstruction_loss
from disent_core.models.conv64 import Architecture, ConvEncoder, DeconvDecoder
from disent_core.schedules import ScheduledValue

REIMPLEMENTATION = "reimplementation"
RECONSTRUCTION = "reconstruction"


class MethodConfig(BaseModel):
    """Base of every method's hyperparameters; subclasses add ``name: Literal[...]`` and fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


AdamBeta = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
"""One of Adam's two moment decay rates: finite, in [0, 1)."""


class OptimConfig(BaseModel):
    """Adam settings of the VAE optimiser (disentanglement_lib: lr 1e-4, betas 0.9/0.999, eps 1e-8),
    every value finite and the betas in [0, 1), so that a bad value is refused with its path instead
    of failing inside ``torch.optim.Adam``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lr: float = Field(1e-4, gt=0, allow_inf_nan=False)
    betas: tuple[AdamBeta, AdamBeta] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0, allow_inf_nan=False)


@dataclass
class MethodContext:
    """What a method needs to know about its data and model when it is built."""

    observation_shape: tuple[int, int, int]
    latent_dim: int
    recon: ReconLoss
    dataset_size: int
    generator: torch.Generator
    base_channels: int = 32
    architecture: Architecture = "dlib"


@dataclass(frozen=True)
class Posterior:
    """One batch's Gaussian posterior and its sample, as ``VAEMethod.regularizer`` receives it.

    Attributes:
        mean: posterior means mu(x), (N, d).
        logvar: posterior log-variances, (N, d).
        z: the sample z = mean + exp(logvar / 2) * eps that the decoder read, (N, d).
        kl_per_dim: batch-mean KL(q(z_d|x) || N(0, 1)) of each latent dimension, (d,).
        step: the global step (VAE updates so far) that schedules and controllers read.
    """

    mean: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    kl_per_dim: torch.Tensor
    step: int

    @property
    def kl(self) -> torch.Tensor:
        """The total KL, ``kl_per_dim.sum()`` (a scalar)."""
        return self.kl_per_dim.sum()


class Method(nn.Module, abc.ABC):
    """Interface every method implements (see the module docstring)."""

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]]
    provenance: ClassVar[str] = REIMPLEMENTATION
    """``reimplementation`` (of a paper with its authors' or disentanglement_lib's code) or
    ``reconstruction`` (rebuilt from a paper's outline, no public code); recorded with every result."""
    loss_terms: ClassVar[tuple[str, ...]]
    """The keys of every dict that ``loss`` returns (always ``"loss"`` and ``information_term``);
    ``term_names()`` adds those that depend on the config."""
    information_term: ClassVar[str] = "kl_per_dim"
    """The key of ``loss``'s (d,) vector of the information in each latent dimension."""
    information_name: ClassVar[str] = "KL"
    """What that vector measures, for labels and result keys ("KL", "info")."""
    schedule_names: ClassVar[tuple[str, ...]] = ()
    """The keys of ``schedules()``."""

    def __init__(self, config: MethodConfig, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        self.context = context

    def term_names(self) -> tuple[str, ...]:
        """The keys of this instance's ``loss`` dicts: ``loss_terms`` unless the config adds some."""
        return self.loss_terms

    @abc.abstractmethod
    def loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The terms ``term_names()`` on a batch ``x`` (N, C, H, W) in [0, 1] at global ``step``.

        Args:
            x: a training batch (N, C, H, W), float in [0, 1].
            step: the global step (VAE optimiser updates so far).

        Returns:
            Exactly the keys ``term_names()``: scalar terms, with ``"loss"`` the total the first
            optimiser minimises, and the (d,) vector named ``information_term``.
        """

    @abc.abstractmethod
    def optimizers(self, optim: OptimConfig) -> list[tuple[str, torch.optim.Optimizer]]:
        """(loss key, optimizer) pairs in the order the trainer steps them; the first is the VAE's.

        Args:
            optim: the Adam settings of the VAE optimiser.

        Returns:
            (key of a ``loss`` term, optimizer minimising it) pairs, in stepping order.
        """

    def schedules(self) -> dict[str, ScheduledValue]:
        """Every schedule whose value enters a loss, keyed by ``schedule_names``."""
        return {}

    def lr_factors(self, step: int) -> dict[str, list[float]]:
        """Learning-rate factors at ``step``: one per parameter group of the optimiser of each loss
        key listed; optimisers not listed keep factor 1 (the default lists none). The trainer applies
        them before the step (``train.set_learning_rates``); they must be a function of ``step``
        alone, so that resuming is exact.

        Args:
            step: the global step (VAE optimiser updates so far).

        Returns:
            {loss key: one factor per parameter group of that key's optimiser}; empty here.
        """
        return {}

    @abc.abstractmethod
    @torch.no_grad()
    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The code (N, d) that the metrics score.

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            Codes (N, d).
        """

    @classmethod
    def has_posterior(cls) -> bool:
        """True when the method defines ``posterior`` (so it has a sampled representation)."""
        return cls.posterior is not Method.posterior

    @torch.no_grad()
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian posterior q(z|x) whose mean is ``representation(x)``.

        Args:
            x: observations (N, C, H, W) in [0, 1].

        Returns:
            (mean, logvar), each (N, d).

        Raises:
            MetricError: the method has no posterior (this default), so it has no sampled
                representation.
        """
        raise MetricError(
            f"method {self.name!r} has no posterior q(z|x) to sample a representation from; "
            "score its 'mean' representation instead"
        )


class GaussianAutoencoder(Method):
    """A Gaussian encoder ``encoder(x) -> (mean, logvar)`` and a decoder of ``z`` to logits.

    The networks come from ``build_encoder`` and ``build_decoder`` (the dlib conv pair by default),
    built in that order (the order of weight initialisation); subclasses override them to change a
    network and keep the rest of the template.
    """

    def __init__(self, config: MethodConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.encoder = self.build_encoder(context)
        self.decoder = self.build_decoder(context)

    def build_encoder(self, context: MethodContext) -> nn.Module:
        """The encoder, x (N, C, H, W) -> (mean, logvar), each (N, d); ``self.config`` is set.

        Args:
            context: observation shape, latent dimension d, base channels and architecture.

        Returns:
            The encoder module (here a ``ConvEncoder``).
        """
        channels, d, b = context.observation_shape[0], context.latent_dim, context.base_channels
        return ConvEncoder(channels, d, b, context.architecture)

    def build_decoder(self, context: MethodContext) -> nn.Module:
        """The decoder, z (N, d) -> logits (N, C, H, W); built after the encoder.

        Args:
            context: observation shape, latent dimension d, base channels and architecture.

        Returns:
            The decoder module (here a ``DeconvDecoder``).
        """
        channels, d, b = context.observation_shape[0], context.latent_dim, context.base_channels
        return DeconvDecoder(d, channels, b, context.architecture)

    def sample(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) from the method's generator.

        Args:
            mean: posterior means (N, d).
            logvar: posterior log-variances (N, d).

        Returns:
            z (N, d), in ``mean``'s dtype and device.
        """
        return reparameterize(mean, logvar, self.context.generator)

    # --- LatentModel (disent_core.latents): what figures read ---------------------------------
    reconstruction_name: ClassVar[str] = "recon."
    code_bound: ClassVar[float | None] = None

    @torch.no_grad()
    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean (N, d): the representation.

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            The posterior means (N, d).
        """
        return self.representation(x)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """sigmoid(decoder(z)): the Bernoulli mean, or the image the squared error compares.

        Args:
            z: codes (N, d).

        Returns:
            Images (N, C, H, W), float in [0, 1].
        """
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def latent_information(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The batch-mean KL of each dimension (nats); ``generator`` is not drawn from.

        Args:
            x: observations (N, C, H, W), float in [0, 1].
            generator: unused (the KL is closed-form).

        Returns:
            (d,) float tensor: KL(q(z_d|x) || N(0, 1)) averaged over the batch, in nats.
        """
        return gaussian_kl_per_dim(*self.encoder(x))

    def reconstruction_loss(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The training reconstruction term of ``decoder(z)`` against ``x``.

        Args:
            x: observations (N, C, H, W) in [0, 1].
            z: codes (N, d).

        Returns:
            The loss ``context.recon`` summed over pixels, averaged over the batch (a scalar).
        """
        return reconstruction_loss(self.decoder(z), x, self.context.recon)

    def vae_parameters(self) -> list[nn.Parameter]:
        """The parameters the VAE optimiser trains (encoder and decoder)."""
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def optimizers(self, optim: OptimConfig) -> list[tuple[str, torch.optim.Optimizer]]:
        """One Adam over the encoder and decoder, minimising ``"loss"``.

        Args:
            optim: the Adam settings (lr, betas, eps).

        Returns:
            ``[("loss", adam)]``.
        """
        adam = torch.optim.Adam(self.vae_parameters(), lr=optim.lr, betas=optim.betas, eps=optim.eps)
        return [("loss", adam)]

    @torch.no_grad()
    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean, the code the metrics score.

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            The posterior means (N, d).
        """
        return self.encoder(x)[0]

    @torch.no_grad()
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's (mean, logvar), each (N, d), of observations ``x`` (N, C, H, W).

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            (mean, logvar), each (N, d).
        """
        return self.encoder(x)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction sigmoid(decoder(mean)) in [0, 1].

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            Reconstructions (N, C, H, W), float in [0, 1].
        """
        return torch.sigmoid(self.decoder(self.encoder(x)[0]))


VAE_TERMS: tuple[str, ...] = ("loss", "recon", "kl", "regularizer", "kl_per_dim")
"""The terms of every ``VAEMethod`` loss; subclasses append their regularizer's components."""


class VAEMethod(GaussianAutoencoder):
    """Gaussian VAE with the dlib conv encoder/decoder; subclasses implement ``regularizer``."""

    loss_terms: ClassVar[tuple[str, ...]] = VAE_TERMS

    @abc.abstractmethod
    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """Return ``{"regularizer": total, **components}``; it is added to the reconstruction.

        Args:
            posterior: the batch's posterior, its sample, per-dimension KL and the global step.

        Returns:
            ``"regularizer"``, the scalar added to the reconstruction loss, and any scalar
            components the subclass logs (its ``loss_terms`` beyond ``VAE_TERMS``).
        """

    def loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Encode, sample, decode: reconstruction + ``regularizer``.

        Args:
            x: a training batch (N, C, H, W), float in [0, 1].
            step: the global step (VAE optimiser updates so far).

        Returns:
            ``"loss"`` (recon + regularizer), ``"recon"``, ``"kl"`` (total, nats), ``"regularizer"``,
            the regularizer's components (scalars) and ``"kl_per_dim"`` (d,).
        """
        mean, logvar = self.encoder(x)
        z = self.sample(mean, logvar)
        recon = self.reconstruction_loss(x, z)
        posterior = Posterior(mean, logvar, z, gaussian_kl_per_dim(mean, logvar), step)
        return self.vae_terms(recon, posterior, self.regularizer(posterior))

    def vae_terms(
        self, recon: torch.Tensor, posterior: Posterior, regularizer_terms: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The terms ``loss`` returns, from the reconstruction, the posterior and the regularizer.

        ``loss`` is encode, ``sample``, decode, then this; a caller that runs the networks itself
        (``disent_core.population``, which runs many members' networks as one) calls ``sample``,
        ``regularizer`` and this on each member's slice.

        Args:
            recon: the reconstruction term (a scalar).
            posterior: the batch's posterior, its sample, per-dimension KL and the global step.
            regularizer_terms: what ``regularizer(posterior)`` returned (not modified).

        Returns:
            ``"loss"`` (recon + regularizer), ``"recon"``, ``"kl"`` (total, nats), ``"regularizer"``,
            the regularizer's components (scalars) and ``"kl_per_dim"`` (d,).
        """
        terms = dict(regularizer_terms)
        reg = terms.pop("regularizer")
        return {
            "loss": recon + reg,
            "recon": recon,
            "kl": posterior.kl,
            "regularizer": reg,
            **terms,
            "kl_per_dim": posterior.kl_per_dim,
        }
