"""DeVAE (Wu et al., "Variational Autoencoders with Decremental Information Bottleneck for
Disentanglement", arXiv 2303.12959, ICLR 2023 submission; code: erow/disentanglement_lib,
``examples/devae.py``).

One encoder gives space 0, q(z_0|x) = N(mu_0, diag exp(logvar_0)). Spaces 1..K-1 (K = len(betas))
follow by disentanglement-invariant transformations tau_i with learnable w1_i, w2_i in R^d,
initialised at 0 so that every space equals space 0 at initialisation:

    mu_{i+1} = exp(w1_i) * mu_i,   logvar_{i+1} = logvar_i + w2_i
    (closed form: mu_i = exp(A_i) * mu_0, logvar_i = logvar_0 + B_i, A_i = sum_{j<i} w1_j,
     B_i = sum_{j<i} w2_j)

A shared decoder reads [z_i ; e_i], z_i ~ N(mu_i, exp(logvar_i)) and e_i a learnable layer
embedding (nn.Embedding(K, d), default N(0, 1) init). Per space

    L_i = R(x, Dec([z_i ; e_i])) + beta_i * KL_i,
    KL_i = 0.5 * sum_d mean_batch(exp(2 A_i) mu_0^2 + exp(B_i) sigma_0^2 - B_i - logvar_0 - 1)

with the decremental bottleneck beta_0 < beta_1 < ... (default [1, 10, 40]) and the objective

- ``weighted_sum`` (released code, default): loss = sum_i s^i * L_i, every space with its own fresh
  sample, one shared encoder pass;
- ``sample_one`` (paper Eq. 7 / Algorithm 1): per batch draw one space i with p(i) proportional to
  s^i, i.e. (1 - s) s^i / (1 - s^K) for s != 1 and 1/K for s = 1, and minimise L_i alone.

s = 0 is a plain VAE on space 0 (beta_0), decoded with the layer-0 embedding. The representation
is mu_0; the sampled representation draws from space 0's posterior (``posterior``). R and KL follow
disentanglement_lib's scale (sum over pixels / dimensions, batch mean).

Confirmed (paper and code): shared encoder; K = len(betas); DiT parametrisation with w2 added to
the log-variance (the code's convention; the paper writes h(w2) * sigma); zero init of w1, w2;
shared decoder on [z_i ; e_i] with nn.Embedding(K, d); the betas list and s (defaults [1, 10, 40],
s = 1); both combination rules (they disagree, hence ``layer_sampling``); mu_0 as representation.
Inferred: the normaliser (1 - s^K) of p(i) (the paper prints (1 - s^{i+1}), which does not sum to 1);
the architecture (the paper's appendix is unknown; the released script uses conv_encoder /
deconv_decoder; here the project's conv64 pair, the decoder 2d wide). Added here: betas must be
strictly ascending, the decremental bottleneck the paper requires.

Reported terms: ``recon`` and ``regularizer`` are the reconstruction and beta * KL parts of the
loss (weighted by s^i, or of the sampled space); ``kl`` / ``kl_per_dim`` are space 0's;
``kl_space_i`` is space i's total KL; ``recon_space_i`` (weighted_sum) space i's reconstruction;
``space`` (sample_one) the index optimised on the batch. Deviation: in ``sample_one`` the noise is
drawn before the space index, so s = 0 reproduces a plain VAE's sample exactly.
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
    """s**i for i < K, as float64 (0**0 = 1, so s = 0 keeps only space 0)."""
    return torch.tensor([scale**i for i in range(spaces)], dtype=torch.float64)


class DiTHierarchy(nn.Module):
    """Spaces 1..K-1 from space 0 by per-dimension positive rescaling of the mean and shift of the
    log-variance; ``log_scale[i]`` is w1_i and ``logvar_shift[i]`` is w2_i (tau_i: space i -> i+1)."""

    def __init__(self, spaces: int, latent_dim: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(spaces - 1, latent_dim))
        self.logvar_shift = nn.Parameter(torch.zeros(spaces - 1, latent_dim))

    def cumulative(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B), each (K, d): A_i = sum_{j<i} w1_j, B_i = sum_{j<i} w2_j (row 0 is zero)."""
        zero = self.log_scale.new_zeros(1, self.log_scale.shape[1])
        a = torch.cat([zero, self.log_scale.cumsum(0)])
        b = torch.cat([zero, self.logvar_shift.cumsum(0)])
        return a, b

    def forward(self, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, d) space-0 posterior -> means and log-variances of every space, each (K, N, d)."""
        a, b = self.cumulative()
        return a.exp()[:, None] * mean, logvar + b[:, None]


class LayerDecoder(nn.Module):
    """The shared decoder on [z ; e_space]: z (N, d), ``space`` an index or (N,) indices -> logits."""

    def __init__(
        self, spaces: int, latent_dim: int, out_channels: int, base_channels: int, architecture: Architecture
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(spaces, latent_dim)
        self.net = DeconvDecoder(2 * latent_dim, out_channels, base_channels, architecture)

    def forward(self, z: torch.Tensor, space: int | torch.Tensor = 0) -> torch.Tensor:
        if isinstance(space, int):
            e = self.embedding.weight[space].expand(z.shape[0], -1)
        else:
            e = self.embedding(space)
        return self.net(torch.cat([z, e], dim=1))


class DeVAE(GaussianAutoencoder):
    """The template's encoder, sampling, ``representation``, ``posterior`` (space 0's (mu_0,
    logvar_0): the representation is mu_0, the sampled representation a draw from
    N(mu_0, exp(logvar_0))) and ``reconstruct`` (space 0's, sigmoid(decoder([mu_0 ; e_0]))), with
    the ``LayerDecoder``, the ``DiTHierarchy`` and its own loss over the K spaces."""

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
        """The shared ``LayerDecoder`` on [z ; e_space] (space 0 unless told otherwise)."""
        channels, spaces = context.observation_shape[0], len(self.config.betas)
        return LayerDecoder(spaces, context.latent_dim, channels, context.base_channels, context.architecture)

    def term_names(self) -> tuple[str, ...]:
        k = self.spaces
        if self.config.layer_sampling == "weighted_sum":
            per_space = tuple(f"recon_space_{i}" for i in range(k))
        else:
            per_space = ("space",)
        return (*self.loss_terms, *per_space, *(f"kl_space_{i}" for i in range(k)))

    def vae_parameters(self) -> list[nn.Parameter]:
        """Encoder, hierarchy and decoder (the order of the Adam's parameters in checkpoints)."""
        return [*self.encoder.parameters(), *self.hierarchy.parameters(), *self.decoder.parameters()]

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.context.generator, device=like.device, dtype=like.dtype)

    def sample_space(self) -> torch.Tensor:
        """One space index, shape (1,), with p(i) = s^i / sum_j s^j (``sample_one``)."""
        return torch.multinomial(self.probabilities, 1, generator=self.context.generator)

    def loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        mean, logvar = self.encoder(x)
        means, logvars = self.hierarchy(mean, logvar)
        kl = gaussian_kl_per_dim(means.transpose(0, 1), logvars.transpose(0, 1))  # (K, d)
        kl_totals = kl.sum(1)
        n, k = x.shape[0], self.spaces
        terms: dict[str, torch.Tensor] = {}
        if self.config.layer_sampling == "weighted_sum":
            eps = torch.stack([self._noise(mean) for _ in range(k)])
            z = means + torch.exp(0.5 * logvars) * eps
            index = torch.arange(k, device=x.device).repeat_interleave(n)
            logits = self.decoder(z.flatten(0, 1), index).unflatten(0, (k, n))
            recons = torch.stack([reconstruction_loss(logits[i], x, self.context.recon) for i in range(k)])
            recon = (self.objective_weights * recons).sum()
            reg = (self.objective_weights * self.betas * kl_totals).sum()
            terms.update({f"recon_space_{i}": recons[i] for i in range(k)})
        else:
            eps = self._noise(mean)
            i = self.sample_space()
            z = means[i][0] + torch.exp(0.5 * logvars[i][0]) * eps
            logits = self.decoder(z, i.expand(n))
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
