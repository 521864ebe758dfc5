"""The shared loss terms against formulas written out independently with numpy/scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from disent_core.methods.losses import gaussian_kl_per_dim, gaussian_log_density, reconstruction_loss

RNG = np.random.default_rng(0)


def test_bernoulli_reconstruction_is_pixel_sum_batch_mean() -> None:
    logits = RNG.normal(size=(3, 2, 4, 4))
    x = RNG.uniform(size=(3, 2, 4, 4))
    p = 1 / (1 + np.exp(-logits))
    expected = (-(x * np.log(p) + (1 - x) * np.log(1 - p))).reshape(3, -1).sum(1).mean()
    got = reconstruction_loss(torch.from_numpy(logits), torch.from_numpy(x), "bernoulli")
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_l2_reconstruction_is_pixel_sum_batch_mean() -> None:
    logits = RNG.normal(size=(3, 1, 4, 4))
    x = RNG.uniform(size=(3, 1, 4, 4))
    expected = ((x - 1 / (1 + np.exp(-logits))) ** 2).reshape(3, -1).sum(1).mean()
    got = reconstruction_loss(torch.from_numpy(logits), torch.from_numpy(x), "l2")
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_unknown_reconstruction_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="bernoulli"):
        reconstruction_loss(torch.zeros(1, 1), torch.zeros(1, 1), "gaussian")  # type: ignore[arg-type]


def test_gaussian_kl_per_dim_matches_closed_form() -> None:
    mean = RNG.normal(size=(6, 3))
    logvar = RNG.normal(size=(6, 3))
    std = np.exp(0.5 * logvar)
    # KL(N(m, s^2) || N(0, 1)) = log(1 / s) + (s^2 + m^2) / 2 - 1/2, averaged over the batch
    expected = (np.log(1 / std) + (std**2 + mean**2) / 2 - 0.5).mean(0)
    got = gaussian_kl_per_dim(torch.from_numpy(mean), torch.from_numpy(logvar))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_gaussian_log_density_matches_scipy() -> None:
    z, mean, logvar = RNG.normal(size=(3, 4, 2))
    got = gaussian_log_density(torch.from_numpy(z), torch.from_numpy(mean), torch.from_numpy(logvar))
    np.testing.assert_allclose(got.numpy(), norm.logpdf(z, mean, np.exp(0.5 * logvar)), rtol=1e-12)
