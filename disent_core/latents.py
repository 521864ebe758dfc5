"""What metrics and figures read of a trained model, whatever its method: four protocols.

- ``Encoder``: ``representation(x)``, the code the metrics score (every method).
- ``GaussianEncoder``: an ``Encoder`` with a Gaussian posterior q(z|x) = N(mean, diag exp(logvar)),
  ``posterior(x) -> (mean, logvar)``, whose mean is the representation. disentanglement_lib's
  sampled representation draws ``reparameterize(mean, logvar, generator)`` from it; a method
  without a posterior (DiD) raises ``MetricError`` there.
- ``Autoencoder``: a ``GaussianEncoder`` whose decoder is trained with a reconstruction loss,
  ``reconstruction_loss(x, z)``; the reconstruction metric reads it.
- ``LatentModel``: codes, their decoded images and the information of each code dimension, which
  the figures draw. A Gaussian VAE gives its posterior mean, the decoded Bernoulli mean and the KL
  of each dimension; DiD, a GAN without a posterior, gives its samples encoder's code, its
  generator's images and a per-dimension information bound.

Metrics and figures depend on these protocols, not on method classes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


def reparameterize(
    mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """A sample of N(mean, diag exp(logvar)): z = mean + exp(logvar / 2) * eps.

    Args:
        mean: posterior means (N, d).
        logvar: posterior log-variances (N, d).
        generator: where eps ~ N(0, I) is drawn from, on ``mean``'s device, in its dtype.

    Returns:
        z (N, d), in ``mean``'s dtype and device.
    """
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


@runtime_checkable
class Encoder(Protocol):
    """A model whose ``representation`` the metrics score."""

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (N, d) of observations ``x`` (N, C, H, W) in [0, 1].

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            The codes (N, d) that the metrics score.
        """
        ...


@runtime_checkable
class GaussianEncoder(Encoder, Protocol):
    """An encoder with a Gaussian posterior whose mean is its representation."""

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar), each (N, d), of q(z|x) for observations ``x`` (N, C, H, W) in [0, 1].

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            (mean, logvar), each (N, d): the means and log-variances of q(z|x).
        """
        ...


@runtime_checkable
class Autoencoder(GaussianEncoder, Protocol):
    """A Gaussian encoder with a decoder trained by a reconstruction loss."""

    def reconstruction_loss(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The training reconstruction term of decoding ``z`` (N, d) against ``x``.

        Args:
            x: observations (N, C, H, W), float in [0, 1].
            z: codes (N, d) to decode.

        Returns:
            The loss summed over pixels, averaged over the batch (a scalar tensor).
        """
        ...


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
        """Codes (N, d) of observations ``x`` (N, C, H, W) in [0, 1].

        Args:
            x: observations (N, C, H, W), float in [0, 1].

        Returns:
            Codes (N, d).
        """
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] of codes ``z`` (N, d).

        Args:
            z: codes (N, d).

        Returns:
            Images (N, C, H, W), float in [0, 1].
        """
        ...

    def latent_information(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The information of each code dimension on the batch ``x``.

        Args:
            x: observations (N, C, H, W), float in [0, 1].
            generator: where any randomness the estimate needs is drawn from.

        Returns:
            (d,) float tensor: nats per code dimension.
        """
        ...
