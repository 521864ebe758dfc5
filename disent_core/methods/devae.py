"""DeVAE (Wu, Mo, Awais, Atito, Zhang, Wang, Yang, "Variational Autoencoders with Decremental
Information Bottleneck for Disentanglement", arXiv 2303.12959, 2023, ICLR 2023 submission; code:
erow/disentanglement_lib, ``examples/devae.py``).

K = len(betas) latent spaces: one encoder gives space 0, q(z_0|x) = N(mu_0, diag exp(logvar_0)),
and space i+1 follows from space i by a disentanglement-invariant transformation with learnable
w1_i, w2_i initialised at 0; a shared decoder reads [z_i ; e_i], e_i a learnable layer embedding:

    mu_{i+1} = exp(w1_i) * mu_i,   logvar_{i+1} = logvar_i + w2_i
    L_i = R(x, Dec([z_i ; e_i])) + beta_i * KL_i,   beta_0 < beta_1 < ... (default [1, 10, 40])
    weighted_sum (released code, default):  loss = sum_i s^i * L_i
    sample_one (paper Eq. 7, Algorithm 1):  loss = L_i, one space i per batch, p(i) ~ s^i

The representation is mu_0; the sampled representation a draw from space 0's posterior.

Deviations:
- p(i) is normalised by (1 - s^K) (the paper prints (1 - s^{i+1}), which does not sum to 1);
- the architecture is the project's conv64 pair with a 2d-wide decoder input (the paper's is unknown);
- betas must be strictly ascending (the decremental bottleneck the paper requires, enforced here);
- in ``sample_one`` the noise is drawn before the space index, so s = 0 reproduces a plain VAE's sample.

docs/methods.md ("DeVAE") gives the closed form and the KL of each space, the reported terms and
what is confirmed or inferred; docs/provenance.md ("DeVAE") the sources.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from disent_core.methods.base import VAE_TERMS, GaussianAutoencoder, MethodConfig, MethodContext
from disent_core.methods.losses import gaussian_kl_per_dim, reconstruction_loss
from disent_core.models.conv64 import Architecture, DeconvDecoder

LayerSampling = Literal["weighted_sum", "sample_one"]


class DeVAEConfig(MethodConfig):
    """The options of ``devae``; each field's ``description`` says what it sets.

    Raises:
        pydantic.ValidationError: when ``betas`` are not strictly ascending.
    """

    name: Literal["devae"] = "devae"
    betas: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [1.0, 10.0, 40.0],
        min_length=1,
        description="KL weight of each space, strictly ascending (the decremental bottleneck); K = len",
    )
    scale: float = Field(1.0, ge=0, description="s: space i's objective has weight / probability ~ s**i")
    layer_sampling: LayerSampling = Field(
        "weighted_sum",
        description="weighted_sum: sum_i s^i L_i every step (released code); "
        "sample_one: one space per batch with p(i) ~ s^i (paper, Algorithm 1)",
    )

    @field_validator("betas")
    @classmethod
    def _ascending(cls, betas: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(betas)):
            raise ValueError(f"betas must be strictly ascending (beta_0 < beta_1 < ...), got {betas}")
        return betas


def space_weights(scale: float, spaces: int) -> torch.Tensor:
    """The weight s**i of each space's objective (0**0 = 1, so s = 0 keeps only space 0).

    Args:
        scale: s, at least 0.
        spaces: K, the number of spaces.

    Returns:
        (K,) float64 tensor of s**i for i < K.
    """
    return torch.tensor([scale**i for i in range(spaces)], dtype=torch.float64)


class DiTHierarchy(nn.Module):
    """Spaces 1..K-1 from space 0 by per-dimension positive rescaling of the mean and shift of the
    log-variance; ``log_scale[i]`` is w1_i and ``logvar_shift[i]`` is w2_i (tau_i: space i -> i+1).

    Args:
        spaces: K, the number of spaces (K - 1 transformations, all initialised at 0).
        latent_dim: d, the dimensions of every space.
    """

    def __init__(self, spaces: int, latent_dim: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(spaces - 1, latent_dim))
        self.logvar_shift = nn.Parameter(torch.zeros(spaces - 1, latent_dim))

    def cumulative(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformations of space 0 into each space, in closed form.

        Returns:
            (A, B), each (K, d): A_i = sum_{j<i} w1_j, B_i = sum_{j<i} w2_j (row 0 is zero).
        """
        zero = self.log_scale.new_zeros(1, self.log_scale.shape[1])
        a = torch.cat([zero, self.log_scale.cumsum(0)])
        b = torch.cat([zero, self.logvar_shift.cumsum(0)])
        return a, b

    def forward(self, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior of every space from space 0's.

        Args:
            mean: mu_0, (N, d).
            logvar: logvar_0, (N, d).

        Returns:
            (means, logvars), each (K, N, d): mu_i = exp(A_i) * mu_0, logvar_i = logvar_0 + B_i.
        """
        a, b = self.cumulative()
        return a.exp()[:, None] * mean, logvar + b[:, None]


class LayerDecoder(nn.Module):
    """The shared decoder on [z ; e_space]: z (N, d), ``space`` an index or (N,) indices -> logits.

    Args:
        spaces: K, the number of layer embeddings.
        latent_dim: d, the width of z and of each embedding (the network reads 2d).
        out_channels: channels of the decoded images.
        base_channels: base width of the deconvolution network.
        architecture: which conv pair (``dlib`` or ``erow``).
    """

    def __init__(
        self, spaces: int, latent_dim: int, out_channels: int, base_channels: int, architecture: Architecture
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(spaces, latent_dim)
        self.net = DeconvDecoder(2 * latent_dim, out_channels, base_channels, architecture)

    def forward(self, z: torch.Tensor, space: int | torch.Tensor = 0) -> torch.Tensor:
        """Decode codes with their space's layer embedding.

        Args:
            z: codes, (N, d).
            space: one space index for the whole batch, or (N,) indices.

        Returns:
            Logits, (N, C, H, W).
        """
        if isinstance(space, int):
            e = self.embedding.weight[space].expand(z.shape[0], -1)
        else:
            e = self.embedding(space)
        return self.net(torch.cat([z, e], dim=1))


class DeVAE(GaussianAutoencoder):
    """The template's encoder, sampling, ``representation``, ``posterior`` (space 0's (mu_0,
    logvar_0): the representation is mu_0, the sampled representation a draw from
    N(mu_0, exp(logvar_0))) and ``reconstruct`` (space 0's, sigmoid(decoder([mu_0 ; e_0]))), with
    the ``LayerDecoder``, the ``DiTHierarchy`` and its own loss over the K spaces.

    Args:
        config: the method's options.
        context: the data's shape, the latent dimensions, the reconstruction loss and the generator.
    """

    name = "devae"
    config_class = DeVAEConfig
    config: DeVAEConfig
    loss_terms = VAE_TERMS
    """Plus, per ``term_names``: ``kl_space_i`` for each space, and ``recon_space_i`` for each space
    (``weighted_sum``) or ``space`` (``sample_one``)."""

    def __init__(self, config: DeVAEConfig, context: MethodContext) -> None:
        super().__init__(config, context)  # the dlib encoder, then build_decoder's LayerDecoder
        d, k = context.latent_dim, len(config.betas)
        self.spaces = k
        self.hierarchy = DiTHierarchy(k, d)
        weights = space_weights(config.scale, k)
        self.register_buffer("betas", torch.tensor(config.betas), persistent=False)
        self.register_buffer("objective_weights", weights.float(), persistent=False)
        self.register_buffer("probabilities", (weights / weights.sum()).float(), persistent=False)

    def build_decoder(self, context: MethodContext) -> nn.Module:
        """The shared decoder (space 0 unless told otherwise).

        Args:
            context: the data's shape, the latent dimensions and the architecture.

        Returns:
            A ``LayerDecoder`` on [z ; e_space] with K embeddings.
        """
        channels, spaces = context.observation_shape[0], len(self.config.betas)
        return LayerDecoder(spaces, context.latent_dim, channels, context.base_channels, context.architecture)

    def term_names(self) -> tuple[str, ...]:
        """The names of the terms ``loss`` returns, in order.

        Returns:
            The VAE terms, then ``recon_space_i`` for each space (``weighted_sum``) or ``space``
            (``sample_one``), then ``kl_space_i`` for each space.
        """
        k = self.spaces
        if self.config.layer_sampling == "weighted_sum":
            per_space = tuple(f"recon_space_{i}" for i in range(k))
        else:
            per_space = ("space",)
        return (*self.loss_terms, *per_space, *(f"kl_space_{i}" for i in range(k)))

    def vae_parameters(self) -> list[nn.Parameter]:
        """The parameters the Adam trains.

        Returns:
            Encoder, hierarchy and decoder parameters, in this order (the order of the Adam's
            parameters in checkpoints).
        """
        return [*self.encoder.parameters(), *self.hierarchy.parameters(), *self.decoder.parameters()]

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.context.generator, device=like.device, dtype=like.dtype)

    def sample_space(self) -> torch.Tensor:
        """Draw the space optimised on a batch (``sample_one``) from the context's generator.

        Returns:
            One space index, shape (1,), with p(i) = s^i / sum_j s^j.
        """
        return torch.multinomial(self.probabilities, 1, generator=self.context.generator)

    def loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The objective of one batch over the K spaces (``layer_sampling`` says how they combine).

        Args:
            x: observations, (N, C, H, W) in [0, 1].
            step: the global step (unused: DeVAE's betas are constant).

        Returns:
            ``loss``, ``recon``, ``kl`` (space 0's), ``regularizer``, the per-space terms of
            ``term_names`` and ``kl_per_dim`` (space 0's, (d,)).
        """
        means, logvars = self.hierarchy(*self.encoder(x))
        z, space = self.decoder_inputs(means, logvars)
        return self.space_terms(x, means, logvars, self.decoder(z, space), space)

    def decoder_inputs(self, means: torch.Tensor, logvars: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes the decoder reads and their spaces, drawn from the context's generator.

        ``loss`` is encode, ``hierarchy``, this, decode, ``space_terms``; ``disent_core.population``
        runs many members' networks as one and calls this and ``space_terms`` on each member's slice.

        Args:
            means: every space's posterior means, (K, N, d) (``hierarchy``'s output).
            logvars: every space's posterior log-variances, (K, N, d).

        Returns:
            (z, space): ``weighted_sum``: a sample of every space, (K * N, d), space-major, and
            each row's space index, (K * N,); ``sample_one``: a sample of one drawn space, (N, d),
            and its index repeated, (N,) (the noise is drawn before the space).
        """
        k, n = means.shape[:2]
        if self.config.layer_sampling == "weighted_sum":
            eps = torch.stack([self._noise(means[0]) for _ in range(k)])
            z = means + torch.exp(0.5 * logvars) * eps
            return z.flatten(0, 1), torch.arange(k, device=means.device).repeat_interleave(n)
        eps = self._noise(means[0])
        i = self.sample_space()
        return means[i][0] + torch.exp(0.5 * logvars[i][0]) * eps, i.expand(n)

    def space_terms(
        self, x: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, logits: torch.Tensor,
        space: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``loss``'s terms from the decoder's logits of ``decoder_inputs``.

        Args:
            x: observations, (N, C, H, W) in [0, 1].
            means: every space's posterior means, (K, N, d).
            logvars: every space's posterior log-variances, (K, N, d).
            logits: the decoder's output for ``decoder_inputs``' codes and spaces.
            space: the spaces ``decoder_inputs`` returned.

        Returns:
            As ``loss``.
        """
        kl = gaussian_kl_per_dim(means.transpose(0, 1), logvars.transpose(0, 1))  # (K, d)
        kl_totals = kl.sum(1)
        n, k = x.shape[0], self.spaces
        terms: dict[str, torch.Tensor] = {}
        if self.config.layer_sampling == "weighted_sum":
            logits = logits.unflatten(0, (k, n))
            recons = torch.stack([reconstruction_loss(logits[i], x, self.context.recon) for i in range(k)])
            recon = (self.objective_weights * recons).sum()
            reg = (self.objective_weights * self.betas * kl_totals).sum()
            terms.update({f"recon_space_{i}": recons[i] for i in range(k)})
        else:
            i = space[:1]
            recon = reconstruction_loss(logits, x, self.context.recon)
            reg = (self.betas[i] * kl_totals[i]).sum()
            terms["space"] = i[0].to(kl.dtype)
        terms.update({f"kl_space_{j}": kl_totals[j] for j in range(k)})
        return {
            "loss": recon + reg,
            "recon": recon,
            "kl": kl_totals[0],
            "regularizer": reg,
            **terms,
            "kl_per_dim": kl[0],
        }
