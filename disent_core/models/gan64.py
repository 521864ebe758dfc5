"""64x64 GAN networks: a DCGAN-style generator and a deterministic conv net (critic, encoders).

- ``DCGANGenerator`` (Radford et al. 2016): code (N, d) -> transposed conv 8b k4 (1x1 -> 4x4), then
  four transposed convs k4 s2 p1 halving the width (8b -> 4b -> 2b -> b -> C), BatchNorm + ReLU
  after every layer but the last, which gives logits. With b = base_channels = 32 the widths are
  256, 128, 64, 32 (DCGAN's own are twice that). BatchNorm matters here: without it, PyTorch's
  default initialisation makes the output of a 64x64 transposed-conv stack almost independent of the
  code (the dlib ``DeconvDecoder`` at init: per-pixel spread of the logits across codes ~1e-3); a VAE's
  reconstruction loss pulls a decoder out of that, an adversarial loss barely does.
- ``ConvNet``: the trunk of disentanglement_lib's ``conv_encoder`` (conv b k4 s2 -> conv b k4 s2 ->
  conv 2b k2 s2 -> conv 2b k2 s2, flatten, dense 256) with one linear head instead of the Gaussian
  mean / log-variance pair. ``negative_slope`` = 0 gives ReLU as in the dlib encoder; WGAN critics
  usually use LeakyReLU(0.2). No normalisation layers: a WGAN-GP critic must not use batch norm (the
  gradient penalty is taken per sample).
"""

from __future__ import annotations

import torch
from torch import nn

from disent_core.models.outputs import full_precision


class DCGANGenerator(nn.Module):
    """c (N, latent_dim) -> logits (N, C, 64, 64)."""

    def __init__(self, latent_dim: int, out_channels: int, base_channels: int = 32) -> None:
        super().__init__()
        b = base_channels
        self.net = nn.Sequential(
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, 8 * b, 4, bias=False), nn.BatchNorm2d(8 * b), nn.ReLU(),
            nn.ConvTranspose2d(8 * b, 4 * b, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * b), nn.ReLU(),
            nn.ConvTranspose2d(4 * b, 2 * b, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * b), nn.ReLU(),
            nn.ConvTranspose2d(2 * b, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
            nn.ConvTranspose2d(b, out_channels, 4, 2, 1),
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """The image logits of a batch of codes (BatchNorm: batch statistics in training mode).

        Args:
            codes: codes (N, latent_dim).

        Returns:
            Logits (N, C, 64, 64) (sigmoid gives images in [0, 1]), at least fp32 under autocast.
        """
        return full_precision(self.net(codes))


class ConvNet(nn.Module):
    """x (N, C, 64, 64) -> (N, out_features)."""

    def __init__(
        self, in_channels: int, out_features: int, base_channels: int = 32, negative_slope: float = 0.0
    ) -> None:
        super().__init__()
        b = base_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, b, 4, stride=2, padding=1), nn.LeakyReLU(negative_slope),
            nn.Conv2d(b, b, 4, stride=2, padding=1), nn.LeakyReLU(negative_slope),
            nn.Conv2d(b, 2 * b, 2, stride=2), nn.LeakyReLU(negative_slope),
            nn.Conv2d(2 * b, 2 * b, 2, stride=2), nn.LeakyReLU(negative_slope),
            nn.Flatten(),
            nn.Linear(2 * b * 4 * 4, 256), nn.LeakyReLU(negative_slope),
            nn.Linear(256, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output of a batch of images.

        Args:
            x: images (N, C, 64, 64), float.

        Returns:
            (N, out_features), at least fp32 under autocast.
        """
        return full_precision(self.net(x))
