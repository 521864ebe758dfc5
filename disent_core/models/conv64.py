"""The standard 64x64 convolutional Gaussian encoder and deconvolutional decoder.

disentanglement_lib's ``conv_encoder`` / ``deconv_decoder`` (Locatello et al. 2019, the beta-VAE
"chairs" architecture):

- encoder: conv 32 k4 s2 -> conv 32 k4 s2 -> conv 64 k2 s2 -> conv 64 k2 s2 (ReLU, TF "same"
  padding), flatten (64*4*4), dense 256 + ReLU, then two dense heads for the mean and the
  log-variance of q(z|x);
- decoder: dense 256 + ReLU, dense 1024 + ReLU, reshape to 64x4x4, deconv 64 k4 s2 -> deconv 32
  k4 s2 -> deconv 32 k4 s2 (ReLU) -> deconv C k4 s2, giving logits of p(x|z).

Deliberate deviations: none in shape. TF's "same" padding for even kernels pads (0, 1); for the
stride-2 k4 layers PyTorch's symmetric padding 1 gives the same output size and an equivalent
function up to a one-pixel shift of the receptive field. ``base_channels`` scales every conv width
(32 -> base, 64 -> 2 * base), as DEFT's small sub-encoders need.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvEncoder(nn.Module):
    """x (N, C, 64, 64) -> (mean, logvar), each (N, latent_dim)."""

    def __init__(self, in_channels: int, latent_dim: int, base_channels: int = 32) -> None:
        super().__init__()
        b = base_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, b, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(b, b, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(b, 2 * b, 2, stride=2), nn.ReLU(),
            nn.Conv2d(2 * b, 2 * b, 2, stride=2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * b * 4 * 4, 256), nn.ReLU(),
        )
        self.mean = nn.Linear(256, latent_dim)
        self.logvar = nn.Linear(256, latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.logvar(h)


class DeconvDecoder(nn.Module):
    """z (N, latent_dim) -> logits (N, C, 64, 64)."""

    def __init__(self, latent_dim: int, out_channels: int, base_channels: int = 32) -> None:
        super().__init__()
        b = base_channels
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(),
            nn.Linear(256, 2 * b * 4 * 4), nn.ReLU(),
            nn.Unflatten(1, (2 * b, 4, 4)),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * b, 2 * b, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * b, b, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(b, b, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(b, out_channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.dense(z))
