"""``LatentModel``: what the figures read of a trained model, whatever its method.

A latent model maps observations to codes and codes back to images, and says how much information
each code dimension carries. A Gaussian VAE (``GaussianAutoencoder``, DeVAE) gives its posterior
mean, the decoded Bernoulli mean and the KL of each dimension; DiD, a GAN without a posterior,
gives its samples encoder's code, its generator's images and a per-dimension information bound.
Figures depend on this protocol, not on method classes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class LatentModel(Protocol):
    """Encode, decode and measure the information of each latent dimension.

    Attributes:
        information_name: what ``latent_information`` measures, for labels ("KL", "info").
        reconstruction_name: what ``decode(code(x))`` is, for labels ("recon.", "G(E(x))").
        code_bound: the largest absolute code value worth decoding (a bounded prior), or None.
    """

    information_name: str
    reconstruction_name: str
    code_bound: float | None

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (N, d) of observations ``x`` (N, C, H, W) in [0, 1]."""
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] of codes ``z`` (N, d)."""
        ...

    def latent_information(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(d,) nats per code dimension on the batch ``x``, drawing any randomness from ``generator``."""
        ...
