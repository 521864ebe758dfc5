"""The standard 64x64 convolutional Gaussian encoder and deconvolutional decoder, in two versions.

``architecture="dlib"`` (the default): disentanglement_lib's ``conv_encoder`` / ``deconv_decoder``
(Locatello et al. 2019, the beta-VAE "chairs" architecture; google-research/disentanglement_lib
86a644d, ``methods/shared/architectures.py``):

- encoder: conv 32 k4 s2 -> conv 32 k4 s2 -> conv 64 k2 s2 -> conv 64 k2 s2 (ReLU, TF "same"
  padding), flatten (64*4*4), dense 256 + ReLU, then two dense heads for the mean and the
  log-variance of q(z|x);
- decoder: dense 256 + ReLU, dense 1024 + ReLU, reshape to 64x4x4, deconv 64 k4 s2 -> deconv 32
  k4 s2 -> deconv 32 k4 s2 (ReLU) -> deconv C k4 s2, giving logits of p(x|z).

``architecture="erow"``: the PyTorch port in which the DeVAE and DEFT authors ran all their
experiments (erow/disentanglement_lib fd8a9af, ``methods/shared/architectures.py``):

- encoder: four convs k4 s2 p1 (32, 32, 64, 64; ReLU) down to 4x4, a 4x4 "valid" conv to 256 + ReLU
  (the dense 256 as a convolution), then the mean and log-variance heads (one linear layer to 2d,
  split, in the port: two heads here, the same function);
- decoder: dense 256 + ReLU, reshape to 256x1x1, deconv 64 k4 (to 4x4), then deconv 64, 32, 32, C
  k4 s2 p1 (ReLU between): no dense 1024 layer.

Deliberate deviations: none in shape. TF's "same" padding for even kernels pads (0, 1); for the
stride-2 k4 layers PyTorch's symmetric padding 1 gives the same output size and an equivalent
function up to a one-pixel shift of the receptive field. ``base_channels`` scales every conv width
(32 -> base, 64 -> 2 * base, 256 -> 8 * base in the erow version), as DEFT's small sub-encoders
need; the port's own decoder has fixed widths, which ``base_channels`` = 32 reproduces.

Both networks return at least fp32 (``outputs.full_precision``) whatever ``torch.autocast``
computes inside them (``train.precision``), so that the losses built on their outputs (KL,
reconstruction, the methods' regularisers) run in full precision.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from disent_core.models.outputs import full_precision

Architecture = Literal["dlib", "erow"]
ARCHITECTURES: tuple[Architecture, ...] = ("dlib", "erow")


def _check(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")


class ConvEncoder(nn.Module):
    """x (N, C, 64, 64) -> (mean, logvar), each (N, latent_dim)."""

    def __init__(
        self, in_channels: int, latent_dim: int, base_channels: int = 32, architecture: Architecture = "dlib"
    ) -> None:
        super().__init__()
        _check(architecture)
        b = base_channels
        if architecture == "dlib":
            width = 256
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, b, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(b, b, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(b, 2 * b, 2, stride=2), nn.ReLU(),
                nn.Conv2d(2 * b, 2 * b, 2, stride=2), nn.ReLU(),
                nn.Flatten(),
                nn.Linear(2 * b * 4 * 4, width), nn.ReLU(),
            )
        else:
            width = 8 * b
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, b, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(b, b, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(b, 2 * b, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(2 * b, 2 * b, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(2 * b, width, 4), nn.ReLU(),
                nn.Flatten(),
            )
        self.mean = nn.Linear(width, latent_dim)
        self.logvar = nn.Linear(width, latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian posterior's parameters of a batch of images.

        Args:
            x: images (N, C, 64, 64), float (observations in [0, 1]).

        Returns:
            (mean, logvar), each (N, latent_dim), at least fp32 under autocast (``outputs.full_precision``).
        """
        h = self.features(x)
        return full_precision(self.mean(h)), full_precision(self.logvar(h))


class DeconvDecoder(nn.Module):
    """z (N, latent_dim) -> logits (N, C, 64, 64)."""

    def __init__(
        self, latent_dim: int, out_channels: int, base_channels: int = 32, architecture: Architecture = "dlib"
    ) -> None:
        super().__init__()
        _check(architecture)
        b = base_channels
        if architecture == "dlib":
            self.dense = nn.Sequential(
                nn.Linear(latent_dim, 256), nn.ReLU(),
                nn.Linear(256, 2 * b * 4 * 4), nn.ReLU(),
                nn.Unflatten(1, (2 * b, 4, 4)),
            )
        else:
            self.dense = nn.Sequential(
                nn.Linear(latent_dim, 8 * b), nn.ReLU(),
                nn.Unflatten(1, (8 * b, 1, 1)),
                nn.ConvTranspose2d(8 * b, 2 * b, 4), nn.ReLU(),
            )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * b, 2 * b, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * b, b, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(b, b, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(b, out_channels, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The logits of p(x|z) of a batch of codes.

        Args:
            z: codes (N, latent_dim).

        Returns:
            Logits (N, C, 64, 64) (sigmoid gives images in [0, 1]), at least fp32 under autocast.
        """
        return full_precision(self.deconv(self.dense(z)))
