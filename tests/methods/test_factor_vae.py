"""FactorVAE: TC and discriminator losses, permutation, and the two-optimiser step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from disent_core.methods import factor_vae
from disent_core.methods.base import OptimConfig, Posterior

RNG = np.random.default_rng(11)


def roll_columns(z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A known 'permutation': column k rolled by k + 1 rows."""
    return torch.stack([z[:, k].roll(k + 1) for k in range(z.shape[1])], dim=1)


def np_roll_columns(z: np.ndarray) -> np.ndarray:
    return np.stack([np.roll(z[:, k], k + 1) for k in range(z.shape[1])], axis=1)


def linear_discriminator(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], 2).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        layer.bias.copy_(torch.from_numpy(bias))
    return layer


def np_log_softmax_clipped(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return np.log(np.clip(p, 1e-6, 1 - 1e-6))


def test_tc_and_discriminator_loss_match_numpy(build, monkeypatch) -> None:
    model = build({"name": "factor_vae", "gamma": 30})
    weight, bias = RNG.normal(size=(2, 5)), RNG.normal(size=2)
    model.discriminator = linear_discriminator(weight, bias)
    monkeypatch.setattr(factor_vae, "permute_dims", roll_columns)
    z = RNG.normal(size=(6, 5))
    kl_per_dim = np.array([0.5, 0.5, 1.0, 0.0, 2.0])

    terms = model.regularizer(Posterior(torch.from_numpy(z), torch.from_numpy(z), torch.from_numpy(z),
                                        torch.from_numpy(kl_per_dim), step=0))

    real_logits = z @ weight.T + bias
    fake_logits = np_roll_columns(z) @ weight.T + bias
    tc = np.mean(real_logits[:, 0] - real_logits[:, 1])
    disc = (-0.5 * np_log_softmax_clipped(real_logits)[:, 0].mean()
            - 0.5 * np_log_softmax_clipped(fake_logits)[:, 1].mean())
    correct = np.concatenate([real_logits[:, 0] > real_logits[:, 1], fake_logits[:, 1] > fake_logits[:, 0]])
    assert terms["tc"].item() == pytest.approx(tc, rel=1e-10)
    assert terms["regularizer"].item() == pytest.approx(4.0 + 30 * tc, rel=1e-10)
    assert terms["discriminator_loss"].item() == pytest.approx(disc, rel=1e-10)
    assert terms["discriminator_accuracy"].item() == pytest.approx(correct.mean())


def test_discriminator_probabilities_are_clipped_like_dlib(build) -> None:
    model = build({"name": "factor_vae"})
    model.discriminator = linear_discriminator(np.zeros((2, 5)), np.array([50.0, -50.0]))
    z = torch.from_numpy(RNG.normal(size=(4, 5)))
    terms = model.regularizer(Posterior(z, z, z, torch.zeros(5, dtype=torch.float64), step=0))
    expected = -0.5 * math.log(1 - 1e-6) - 0.5 * math.log(1e-6)
    assert terms["discriminator_loss"].item() == pytest.approx(expected)
    assert terms["tc"].item() == pytest.approx(100.0)


def test_permute_dims_permutes_each_column_independently() -> None:
    z = torch.arange(64 * 5, dtype=torch.float32).reshape(64, 5)
    g = torch.Generator().manual_seed(0)
    global_state = torch.get_rng_state()
    perm = factor_vae.permute_dims(z, g)
    assert torch.equal(torch.get_rng_state(), global_state)
    torch.testing.assert_close(perm.sort(0).values, z)  # each column is a permutation of itself
    orders = [tuple(((perm[:, k] - k) / 5).long().tolist()) for k in range(5)]
    assert len(set(orders)) == 5  # the columns got different permutations
    assert torch.equal(perm, factor_vae.permute_dims(z, torch.Generator().manual_seed(0)))


def _encoder_grads(model) -> list[torch.Tensor | None]:
    return [p.grad for p in model.encoder.parameters()]


def test_discriminator_loss_reaches_only_the_discriminator(build, batch) -> None:
    model = build({"name": "factor_vae"})
    model.loss(batch, step=0)["discriminator_loss"].backward()
    assert all(g is None or not g.any() for g in _encoder_grads(model))
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is not None and p.grad.any() for p in model.discriminator.parameters())


def test_tc_term_reaches_the_encoder(build, batch) -> None:
    model = build({"name": "factor_vae"})
    model.loss(batch, step=0)["tc"].backward()
    assert all(g is not None and g.any() for g in _encoder_grads(model))
    assert all(p.grad is None for p in model.decoder.parameters())


def test_optimizers_split_the_parameters(build) -> None:
    model = build({"name": "factor_vae", "discriminator_lr": 2e-4, "discriminator_betas": [0.4, 0.8]})
    (vae_key, vae_opt), (disc_key, disc_opt) = model.optimizers(OptimConfig())
    assert (vae_key, disc_key) == ("loss", "discriminator_loss")
    vae_ids = {id(p) for group in vae_opt.param_groups for p in group["params"]}
    disc_ids = {id(p) for group in disc_opt.param_groups for p in group["params"]}
    assert vae_ids == {id(p) for p in [*model.encoder.parameters(), *model.decoder.parameters()]}
    assert disc_ids == {id(p) for p in model.discriminator.parameters()}
    assert disc_opt.param_groups[0]["lr"] == 2e-4
    assert disc_opt.param_groups[0]["betas"] == (0.4, 0.8)
    assert vae_opt.param_groups[0]["lr"] == 1e-4
    assert vae_opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_defaults_follow_disentanglement_lib(build) -> None:
    config = build({"name": "factor_vae"}).config
    assert (config.gamma, config.discriminator_lr, config.discriminator_betas) == (10.0, 1e-4, (0.5, 0.9))


def test_trainer_style_step_updates_both_networks_with_their_own_gradients(build, batch) -> None:
    model = build({"name": "factor_vae"})
    optimizers = model.optimizers(OptimConfig())
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    model.context.generator.manual_seed(7)
    reference = model.loss(batch, step=0)
    encoder, discriminator = list(model.encoder.parameters()), list(model.discriminator.parameters())
    expected_vae = torch.autograd.grad(reference["loss"], encoder, retain_graph=True)
    expected_disc = torch.autograd.grad(reference["discriminator_loss"], discriminator)

    model.context.generator.manual_seed(7)
    terms = model.loss(batch, step=0)
    for key, optimizer in optimizers:
        optimizer.zero_grad()
        terms[key].backward()
        optimizer.step()

    for name, p in model.named_parameters():
        assert not torch.equal(p.detach(), before[name]), f"{name} was not updated"
    for got, want in zip(model.discriminator.parameters(), expected_disc, strict=True):
        torch.testing.assert_close(got.grad, want)  # the TC gradient was cleared before this backward
    for got, want in zip(model.encoder.parameters(), expected_vae, strict=True):
        torch.testing.assert_close(got.grad, want)
