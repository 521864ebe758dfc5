"""DIP-VAE-I/II: R + KL + lambda_od * sum_{i!=j} M_ij^2 + lambda_d * sum_i (M_ii - 1)^2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disent_core.methods.base import Posterior
from disent_core.methods.dip_vae import DIPVAEIConfig, DIPVAEIIConfig

RNG = np.random.default_rng(5)
MEAN = RNG.normal(size=(7, 5)) * np.array([0.5, 1.0, 1.5, 2.0, 0.2])
LOGVAR = RNG.normal(size=(7, 5))
KL_PER_DIM = np.array([0.1, 0.2, 0.3, 0.4, 0.5])


def penalties(m: np.ndarray) -> tuple[float, float]:
    d = m.shape[0]
    off_diag = sum(m[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    diag = sum((m[i, i] - 1) ** 2 for i in range(d))
    return off_diag, diag


def regularize(model) -> dict[str, torch.Tensor]:
    mean, logvar = torch.from_numpy(MEAN), torch.from_numpy(LOGVAR)
    return model.regularizer(Posterior(mean, logvar, mean, torch.from_numpy(KL_PER_DIM), step=0))


def test_dip_i_uses_the_biased_covariance_of_the_means(build) -> None:
    model = build({"name": "dip_vae_i", "lambda_od": 2.0})
    off_diag, diag = penalties(np.cov(MEAN, rowvar=False, bias=True))
    terms = regularize(model)
    assert terms["dip_off_diag"].item() == pytest.approx(off_diag, rel=1e-10)
    assert terms["dip_diag"].item() == pytest.approx(diag, rel=1e-10)
    assert terms["regularizer"].item() == pytest.approx(1.5 + 2.0 * off_diag + 20.0 * diag, rel=1e-10)


def test_dip_ii_adds_the_mean_encoder_variance_on_the_diagonal(build) -> None:
    model = build({"name": "dip_vae_ii", "lambda_od": 5.0})
    m = np.cov(MEAN, rowvar=False, bias=True) + np.diag(np.exp(LOGVAR).mean(0))
    off_diag, diag = penalties(m)
    terms = regularize(model)
    assert terms["dip_off_diag"].item() == pytest.approx(off_diag, rel=1e-10)
    assert terms["dip_diag"].item() == pytest.approx(diag, rel=1e-10)
    assert terms["regularizer"].item() == pytest.approx(1.5 + 5.0 * off_diag + 5.0 * diag, rel=1e-10)


def test_lambda_d_defaults_follow_disentanglement_lib_grid() -> None:
    assert DIPVAEIConfig().lambda_d == 10.0
    assert DIPVAEIConfig(lambda_od=5).lambda_d == 50.0
    assert DIPVAEIIConfig(lambda_od=5).lambda_d == 5.0
    assert DIPVAEIConfig(lambda_od=5, lambda_d=0.5).lambda_d == 0.5
    assert DIPVAEIIConfig.model_validate(DIPVAEIIConfig(lambda_od=3).model_dump()).lambda_d == 3.0


def test_explicit_lambda_d_is_used(build) -> None:
    model = build({"name": "dip_vae_i", "lambda_od": 1.0, "lambda_d": 0.0})
    off_diag, _ = penalties(np.cov(MEAN, rowvar=False, bias=True))
    assert regularize(model)["regularizer"].item() == pytest.approx(1.5 + off_diag, rel=1e-10)
