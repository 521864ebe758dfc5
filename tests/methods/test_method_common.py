"""Properties every registered method has: finite loss, learning, representation, RNG use."""

from __future__ import annotations

import inspect

import pytest
import torch

from disent_core.methods.base import OptimConfig
from disent_core.methods.registry import METHODS

CONFIGS = {
    "beta_vae": {"name": "beta_vae", "beta": 4},
    "annealed_vae": {"name": "annealed_vae", "c_max": 5, "iteration_threshold": 10},
    "factor_vae": {"name": "factor_vae", "gamma": 10},
    "beta_tc_vae": {"name": "beta_tc_vae", "beta": 6},
    "dip_vae_i": {"name": "dip_vae_i", "lambda_od": 2},
    "dip_vae_ii": {"name": "dip_vae_ii", "lambda_od": 2},
    "devae": {"name": "devae", "betas": [1, 4, 10], "scale": 1.0},
    "dynamic_vae": {"name": "dynamic_vae", "total_steps": 100, "period": 10},
    "control_vae": {"name": "control_vae", "c": 5, "period": 10},
    "cascade_vae_c": {"name": "cascade_vae_c", "stage_steps": 2},
    "deft": {"name": "deft", "betas": [4, 1], "stage_steps": 2},
    "did": {"name": "did"},
}
# The loss terms and schedule names are the classes' declarations (Method.loss_terms, term_names(),
# schedule_names). Methods that declare no recon / KL / regularizer terms are not VAEs (DiD is a
# WGAN-GP with encoders; its information_per_dim is an information bound, checked with its loss identities in
# its own test module). For them the learning check follows LEARNED_TERM (the generator side's total
# need not fall while the critic learns; on a fixed real batch the critic's loss does) and the
# representation is REPRESENTATION's network.
VAE_TERMS = {"recon", "kl", "regularizer"}
LEARNED_TERM = {"did": "critic_loss"}
REPRESENTATION = {"did": lambda model, x: model.samples_encoder(x)}

pytestmark = pytest.mark.parametrize("name", list(CONFIGS))


def test_every_registered_method_is_covered(name: str) -> None:
    assert set(CONFIGS) == set(METHODS)
    assert METHODS[name].name == name


def test_every_method_declares_its_contract(name: str) -> None:
    cls = METHODS[name]
    assert not inspect.isabstract(cls)
    assert {"loss", cls.information_term} <= set(cls.loss_terms)
    assert len(set(cls.loss_terms)) == len(cls.loss_terms)
    assert all(isinstance(s, str) for s in cls.schedule_names)


def test_loss_terms_are_the_declared_ones_finite_and_consistent(build, batch, name: str) -> None:
    model = build(CONFIGS[name])
    terms = model.loss(batch, step=3)
    assert set(terms) == set(model.term_names())
    assert set(type(model).loss_terms) <= set(terms)
    assert all(torch.isfinite(t).all() for t in terms.values())
    assert terms[model.information_term].shape == (model.context.latent_dim,)
    if VAE_TERMS <= set(type(model).loss_terms):
        torch.testing.assert_close(terms["kl"], terms["kl_per_dim"].sum())
        torch.testing.assert_close(terms["loss"], terms["recon"] + terms["regularizer"])
    assert all(t.ndim == 0 for key, t in terms.items() if key != model.information_term)


def test_loss_draws_only_from_the_context_generator(build, batch, name: str) -> None:
    model = build(CONFIGS[name])
    global_state = torch.get_rng_state()
    model.context.generator.manual_seed(3)
    first = model.loss(batch, step=0)
    model.context.generator.manual_seed(3)
    second = model.loss(batch, step=0)
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(first["loss"], second["loss"])


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(build, batch, name: str) -> None:
    model = build(CONFIGS[name])

    def evaluate() -> float:
        model.context.generator.manual_seed(0)
        with torch.no_grad():
            return model.loss(batch, step=0)[LEARNED_TERM.get(name, "loss")].item()

    start = evaluate()
    optimizers = model.optimizers(OptimConfig(lr=1e-3))
    assert optimizers[0][0] == "loss"
    for _ in range(5):
        terms = model.loss(batch, step=0)
        for key, optimizer in optimizers:
            optimizer.zero_grad()
            terms[key].backward()
            optimizer.step()
    assert evaluate() < start


def test_representation_is_the_posterior_mean(build, batch, name: str) -> None:
    model = build(CONFIGS[name])
    code = model.representation(batch)
    assert code.shape == (batch.shape[0], model.context.latent_dim)
    assert not code.requires_grad
    expected = REPRESENTATION[name](model, batch) if name in REPRESENTATION else model.encoder(batch)[0]
    torch.testing.assert_close(code, expected)


def test_schedules_are_the_declared_ones(build, name: str) -> None:
    model = build(CONFIGS[name])
    assert set(model.schedules()) == set(type(model).schedule_names)
    assert len(set(type(model).schedule_names)) == len(type(model).schedule_names)
