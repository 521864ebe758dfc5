"""Loss terms shared by the methods, at disentanglement_lib's scale.

Reconstruction is summed over pixels and averaged over the batch; the Gaussian KL is computed per
latent dimension and averaged over the batch, so the total KL is the sum over dimensions. With this
convention beta = 4 means what the papers mean.

- bernoulli: sum_pixels BCEWithLogits(logits, x)    (x in [0, 1])
- l2:        sum_pixels (x - sigmoid(logits))^2
- KL_d = 0.5 * mean_batch(mu_d^2 + exp(logvar_d) - logvar_d - 1)

``scale_gradient`` weighs a term's gradient without changing its value (DEFT's per-group gradient
factors, DiD's loss weights on shared inputs).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

ReconLoss = Literal["bernoulli", "l2"]


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: ReconLoss) -> torch.Tensor:
    """Per-image sum over pixels, averaged over the batch.

    Args:
        logits: decoder outputs (N, C, H, W), pre-sigmoid.
        x: targets (N, C, H, W), float in [0, 1].
        kind: ``"bernoulli"`` (BCE with logits, nats) or ``"l2"`` (squared error of sigmoid(logits)).

    Returns:
        A scalar tensor.

    Raises:
        ValueError: ``kind`` is neither.
    """
    if kind == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif kind == "l2":
        per_pixel = (x - torch.sigmoid(logits)).square()
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}; use 'bernoulli' or 'l2'")
    return per_pixel.flatten(1).sum(1).mean()


def gaussian_kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per dimension, averaged over the batch: (d,).

    Args:
        mean: posterior means (N, d).
        logvar: posterior log-variances (N, d).

    Returns:
        (d,) tensor of KLs in nats.
    """
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1).mean(0)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mean, exp(logvar)), broadcasting.

    Args:
        z: points, any shape broadcast against ``mean``.
        mean: means.
        logvar: log-variances.

    Returns:
        Log-densities (nats) of the broadcast shape, in ``z``'s dtype.
    """
    return -0.5 * (torch.log(torch.tensor(2 * torch.pi, dtype=z.dtype, device=z.device)) + logvar
                   + (z - mean).square() * torch.exp(-logvar))


def scale_gradient(t: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Identity in the forward pass (exactly); multiplies the gradient flowing back by ``scale``.

    Args:
        t: any tensor.
        scale: a number, or a tensor broadcast against ``t``.

    Returns:
        A tensor equal to ``t`` whose gradient is ``scale`` times the incoming one.
    """
    frozen = t.detach()
    return frozen + scale * (t - frozen)
