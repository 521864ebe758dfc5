"""beta-VAE: R + beta(t) * KL."""

from __future__ import annotations

import pytest
import torch

from disent_core.methods.base import Posterior

KL_PER_DIM = torch.tensor([0.5, 1.25, 0.0, 2.0, 0.25], dtype=torch.float64)  # sum 4.0
MEAN = torch.zeros(3, 5, dtype=torch.float64)


def test_regularizer_is_beta_times_kl(build) -> None:
    model = build({"name": "beta_vae", "beta": 4})
    terms = model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=123))
    assert terms["regularizer"].item() == pytest.approx(16.0)
    assert model.schedules()["beta"].last_value == 4.0


def test_scheduled_beta_is_read_at_the_global_step(build) -> None:
    model = build({"name": "beta_vae", "beta": {"kind": "linear", "start": 0, "end": 4, "steps": 10}})
    assert set(model.schedules()) == {"beta"}
    for step, beta in [(0, 0.0), (5, 2.0), (10, 4.0), (50, 4.0), (5, 2.0)]:
        terms = model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=step))
        assert model.schedules()["beta"].last_value == pytest.approx(beta)
        assert terms["regularizer"].item() == pytest.approx(beta * 4.0)


def test_loss_adds_the_regularizer_to_the_reconstruction(build, batch) -> None:
    model = build({"name": "beta_vae", "beta": 3})
    terms = model.loss(batch, step=0)
    assert terms["loss"].item() == pytest.approx(terms["recon"].item() + 3 * terms["kl"].item(), rel=1e-6)
