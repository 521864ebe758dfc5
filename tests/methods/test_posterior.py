"""``posterior``: the Gaussian q(z|x) behind the sampled representation, ``reparameterize``, the
``Posterior`` that ``VAEMethod.regularizer`` reads, and the abstract method contract."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from disent_core.errors import MetricError
from disent_core.methods.base import Method, MethodConfig, Posterior, VAEMethod, reparameterize

POSTERIOR_CONFIGS = {
    "beta_vae": {"name": "beta_vae", "beta": 4},
    "factor_vae": {"name": "factor_vae", "gamma": 10},
    "deft": {"name": "deft", "betas": [4, 1], "stage_steps": 2},
    "devae": {"name": "devae", "betas": [1, 4, 10], "scale": 1.0},
}


@pytest.mark.parametrize("name", list(POSTERIOR_CONFIGS))
def test_posterior_is_the_encoders_and_its_mean_the_representation(build, batch, name: str) -> None:
    model = build(POSTERIOR_CONFIGS[name]).eval()
    mean, logvar = model.posterior(batch)
    expected_mean, expected_logvar = model.encoder(batch)
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(logvar, expected_logvar)
    torch.testing.assert_close(model.representation(batch), mean)


def test_devae_samples_space_zero(build, batch) -> None:
    model = build(POSTERIOR_CONFIGS["devae"]).eval()
    with torch.no_grad():
        model.hierarchy.log_scale.fill_(1.0)  # spaces 1 and 2 differ from space 0
        means, logvars = model.hierarchy(*model.encoder(batch))
    mean, logvar = model.posterior(batch)
    torch.testing.assert_close(mean, means[0])
    torch.testing.assert_close(logvar, logvars[0])
    assert not torch.allclose(mean, means[1])


def test_did_has_no_posterior(build, batch) -> None:
    model = build({"name": "did"})
    with pytest.raises(MetricError, match=r"method 'did' has no posterior.*'mean' representation"):
        model.posterior(batch)


def test_reparameterize_draws_from_the_generator(build, batch) -> None:
    mean, logvar = torch.randn(6, 3), torch.randn(6, 3)
    z = reparameterize(mean, logvar, torch.Generator().manual_seed(4))
    eps = torch.randn(6, 3, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(z, mean + torch.exp(0.5 * logvar) * eps)
    model = build(POSTERIOR_CONFIGS["beta_vae"])
    assert isinstance(model, VAEMethod)
    model.context.generator.manual_seed(4)
    torch.testing.assert_close(model.sample(mean, logvar), z)


def test_posterior_is_frozen_and_its_kl_is_the_sum() -> None:
    mean, logvar = torch.randn(4, 3), torch.randn(4, 3)
    kl_per_dim = torch.tensor([0.5, 1.0, 2.0])
    posterior = Posterior(mean, logvar, mean, kl_per_dim, step=7)
    assert torch.equal(posterior.kl, kl_per_dim.sum()) and posterior.step == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        posterior.step = 8  # type: ignore[misc]


def test_the_contract_is_abstract(context) -> None:
    class NoRegularizer(VAEMethod):
        name = "no_regularizer"
        config_class = MethodConfig

    with pytest.raises(TypeError, match="abstract"):
        Method(MethodConfig(), context)  # type: ignore[abstract]
    with pytest.raises(TypeError, match="regularizer"):
        NoRegularizer(MethodConfig(), context)  # type: ignore[abstract]
