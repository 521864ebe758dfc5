"""beta-TCVAE: R + KL + (beta - 1) * TC, MWS estimator with the log(N * B) constants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disent_core.methods.base import Posterior
from disent_core.methods.beta_tcvae import total_correlation

RNG = np.random.default_rng(3)


def log_normal(x: float, mean: float, logvar: float) -> float:
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 / math.exp(logvar))


def brute_force_tc(z: np.ndarray, mean: np.ndarray, logvar: np.ndarray, n: int) -> float:
    """mean_j [log q(z_j) - sum_d log q(z_jd)] with q(.) = 1/(N B) sum_i q(. | x_i), by loops."""
    b, d = z.shape
    total = 0.0
    for j in range(b):
        joint = 0.0
        for i in range(b):
            joint += math.exp(sum(log_normal(z[j, k], mean[i, k], logvar[i, k]) for k in range(d)))
        log_q_joint = math.log(joint / (n * b))
        log_q_marginals = 0.0
        for k in range(d):
            marginal = sum(math.exp(log_normal(z[j, k], mean[i, k], logvar[i, k])) for i in range(b))
            log_q_marginals += math.log(marginal / (n * b))
        total += log_q_joint - log_q_marginals
    return total / b


def sample_posterior(b: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = RNG.normal(size=(b, d))
    mean[:, 1] += 0.8 * mean[:, 0]  # correlated codes: a clearly non-zero TC
    logvar = RNG.uniform(-1.5, 0.0, size=(b, d))
    z = mean + np.exp(0.5 * logvar) * RNG.normal(size=(b, d))
    return z, mean, logvar


@pytest.mark.parametrize(("b", "d", "n"), [(4, 3, 10), (6, 2, 737_280), (3, 4, 1)])
def test_mws_estimator_matches_brute_force(b: int, d: int, n: int) -> None:
    z, mean, logvar = sample_posterior(b, d)
    got = total_correlation(*(torch.from_numpy(a) for a in (z, mean, logvar)), dataset_size=n)
    expected = brute_force_tc(z, mean, logvar, n)
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_constants_shift_tc_by_d_minus_1_log_n_and_keep_the_gradient() -> None:
    z, mean, logvar = sample_posterior(5, 3)
    values, grads = [], []
    for n in (1, 100):
        tensors = [torch.from_numpy(a).requires_grad_() for a in (z, mean, logvar)]
        tc = total_correlation(*tensors, dataset_size=n)
        values.append(tc.item())
        grads.append(torch.autograd.grad(tc, tensors))
    assert values[1] - values[0] == pytest.approx((3 - 1) * math.log(100), rel=1e-9)
    for g1, g100 in zip(*grads, strict=True):
        torch.testing.assert_close(g1, g100)


def test_regularizer_uses_context_dataset_size(build) -> None:
    model = build({"name": "beta_tc_vae", "beta": 6})
    assert model.context.dataset_size == 1000
    z, mean, logvar = sample_posterior(4, 5)
    kl_per_dim = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)
    posterior = Posterior(*(torch.from_numpy(a) for a in (mean, logvar, z)), kl_per_dim, step=7)
    terms = model.regularizer(posterior)
    tc = brute_force_tc(z, mean, logvar, n=1000)
    assert terms["tc"].item() == pytest.approx(tc, rel=1e-9)
    assert model.schedules()["beta"].last_value == 6.0
    assert terms["regularizer"].item() == pytest.approx(1.5 + 5 * tc, rel=1e-9)


def test_scheduled_beta(build) -> None:
    model = build({"name": "beta_tc_vae", "beta": {"kind": "stages", "values": [1, 4], "boundaries": [3]}})
    assert set(model.schedules()) == {"beta"}
    z, mean, logvar = (torch.from_numpy(a) for a in sample_posterior(4, 5))
    kl_per_dim = torch.ones(5, dtype=torch.float64)
    terms = model.regularizer(Posterior(mean, logvar, z, kl_per_dim, step=2))
    assert terms["regularizer"].item() == pytest.approx(5.0)
    model.regularizer(Posterior(mean, logvar, z, kl_per_dim, step=3))
    assert model.schedules()["beta"].last_value == 4.0
