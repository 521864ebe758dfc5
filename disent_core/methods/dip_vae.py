"""DIP-VAE-I and DIP-VAE-II (Kumar et al., "Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations", ICLR 2018).

    loss = R(x) + KL + lambda_od * sum_{i != j} M_ij^2 + lambda_d * sum_i (M_ii - 1)^2
    DIP-VAE-I:  M = Cov_batch[mu(x)]
    DIP-VAE-II: M = Cov_batch[mu(x)] + diag(mean_batch sigma^2(x))

Cov_batch is the biased (1/B) covariance E[mu mu^T] - E[mu] E[mu]^T, as in disentanglement_lib
(numpy: ``np.cov(mu, rowvar=False, bias=True)``). Defaults follow disentanglement_lib's grid:
lambda_d = 10 * lambda_od for DIP-VAE-I and lambda_d = lambda_od for DIP-VAE-II. Deviation from the
erow PyTorch port (none from disentanglement_lib): the port's DIP-II encoder covariance takes
``torch.diag`` of the batch x d log-variance matrix; here it is diag(mean_batch sigma^2) as in the
paper.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

import torch
from pydantic import Field, ValidationInfo, field_validator

from disent_core.methods.base import VAE_TERMS, MethodConfig, Posterior, VAEMethod


class _DIPConfig(MethodConfig):
    diag_factor: ClassVar[float]
    lambda_od: float = Field(1.0, ge=0, description="weight of the squared off-diagonal entries of M")
    lambda_d: float = Field(
        None,
        ge=0,
        validate_default=True,
        description="weight of the squared deviation of diag(M) from 1 (default: a multiple of lambda_od)",
    )

    @field_validator("lambda_d", mode="before")
    @classmethod
    def _default_lambda_d(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None:
            return value
        # lambda_od is absent from info.data only when it failed validation, which is reported
        # already; the placeholder keeps that the only error.
        return cls.diag_factor * info.data.get("lambda_od", 1.0)


class DIPVAEIConfig(_DIPConfig):
    diag_factor: ClassVar[float] = 10.0
    name: Literal["dip_vae_i"] = "dip_vae_i"


class DIPVAEIIConfig(_DIPConfig):
    diag_factor: ClassVar[float] = 1.0
    name: Literal["dip_vae_ii"] = "dip_vae_ii"


def batch_covariance(x: torch.Tensor) -> torch.Tensor:
    """Biased covariance (1/N) of the rows of x (N, d): (d, d).

    Args:
        x: rows (N, d), float.

    Returns:
        The (d, d) covariance, in ``x``'s dtype (also under ``torch.autocast``, which would
        compute the product in reduced precision).
    """
    centred = x - x.mean(0, keepdim=True)
    with torch.autocast(x.device.type, enabled=False):
        return centred.T @ centred / x.shape[0]


def dip_penalties(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_{i != j} M_ij^2, sum_i (M_ii - 1)^2).

    Args:
        m: a square matrix M (d, d).

    Returns:
        (off-diagonal penalty, diagonal penalty), scalar tensors.
    """
    diag = m.diagonal()
    off_diag = m - torch.diag(diag)
    return off_diag.square().sum(), (diag - 1).square().sum()


class _DIPVAE(VAEMethod):
    config: _DIPConfig
    loss_terms = (*VAE_TERMS, "dip_off_diag", "dip_diag")

    @abc.abstractmethod
    def covariance(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The matrix M (d, d) whose off-diagonal and diagonal the penalties read."""

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        off_diag, diag = dip_penalties(self.covariance(posterior.mean, posterior.logvar))
        dip = self.config.lambda_od * off_diag + self.config.lambda_d * diag
        return {"regularizer": posterior.kl + dip, "dip_off_diag": off_diag, "dip_diag": diag}


class DIPVAEI(_DIPVAE):
    name = "dip_vae_i"
    config_class = DIPVAEIConfig

    def covariance(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """M = Cov_batch[mu(x)].

        Args:
            mean: posterior means (N, d).
            logvar: posterior log-variances (N, d); unused.

        Returns:
            M (d, d).
        """
        return batch_covariance(mean)


class DIPVAEII(_DIPVAE):
    name = "dip_vae_ii"
    config_class = DIPVAEIIConfig

    def covariance(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """M = Cov_batch[mu(x)] + diag(mean_batch exp(logvar)).

        Args:
            mean: posterior means (N, d).
            logvar: posterior log-variances (N, d).

        Returns:
            M (d, d).
        """
        return batch_covariance(mean) + torch.diag(logvar.exp().mean(0))
