"""DeVAE: DiT hierarchy, closed-form KL per space, both layer-sampling rules, plain-VAE limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from disent_core.methods.base import MethodContext, OptimConfig
from disent_core.methods.devae import DeVAE, DeVAEConfig
from disent_core.methods.losses import reconstruction_loss
from disent_core.methods.registry import AnyMethodConfig
from disent_core.train import CHECKPOINT_NAME, train

RNG = np.random.default_rng(5)
ADAPTER = TypeAdapter(AnyMethodConfig)


def perturb_hierarchy(model: DeVAE) -> None:
    """Non-zero w1, w2 drawn from a fixed numpy generator."""
    with torch.no_grad():
        for p in (model.hierarchy.log_scale, model.hierarchy.logvar_shift):
            p.copy_(torch.from_numpy(RNG.normal(scale=0.5, size=tuple(p.shape))))


def test_defaults_follow_the_released_code(build) -> None:
    config = build({"name": "devae"}).config
    assert (config.betas, config.scale, config.layer_sampling) == ([1.0, 10.0, 40.0], 1.0, "weighted_sum")


@pytest.mark.parametrize(
    "bad",
    [
        {"betas": [1, 10, 10]},
        {"betas": [10, 1]},
        {"betas": []},
        {"betas": [-1, 1]},
        {"scale": -0.5},
        {"layer_sampling": "sum"},
    ],
)
def test_invalid_configs_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"name": "devae", **bad})


def test_at_initialisation_every_space_equals_space_0(build, batch) -> None:
    model = build({"name": "devae", "betas": [1, 10, 40, 80]})
    mean, logvar = model.encoder(batch)
    means, logvars = model.hierarchy(mean, logvar)
    assert means.shape == logvars.shape == (4, *mean.shape)
    for i in range(4):
        torch.testing.assert_close(means[i], mean, rtol=0, atol=0)
        torch.testing.assert_close(logvars[i], logvar, rtol=0, atol=0)
    terms = model.loss(batch, step=0)
    for i in range(1, 4):
        torch.testing.assert_close(terms[f"kl_space_{i}"], terms["kl_space_0"])


def test_closed_form_kl_of_each_space_matches_numpy(build, batch) -> None:
    model = build({"name": "devae", "betas": [1, 10, 40]}).double()
    perturb_hierarchy(model)
    x = batch.double()
    terms = model.loss(x, step=0)

    mean0, logvar0 = (t.detach().numpy() for t in model.encoder(x))
    w1 = model.hierarchy.log_scale.detach().numpy()
    w2 = model.hierarchy.logvar_shift.detach().numpy()
    mean, var = mean0, np.exp(logvar0)
    for i in range(3):
        if i > 0:  # tau_{i-1}: rescale the mean by exp(w1), the variance by exp(w2)
            mean, var = np.exp(w1[i - 1]) * mean, np.exp(w2[i - 1]) * var
        kl = 0.5 * np.sum(np.mean(mean**2 + var - np.log(var) - 1, axis=0))
        a, b = w1[:i].sum(0), w2[:i].sum(0)  # methods.md's closed form in A_i, B_i
        per_dim = np.exp(2 * a) * mean0**2 + np.exp(b) * np.exp(logvar0) - b - logvar0 - 1
        closed = 0.5 * np.sum(np.mean(per_dim, axis=0))
        assert terms[f"kl_space_{i}"].item() == pytest.approx(kl, rel=1e-10)
        assert closed == pytest.approx(kl, rel=1e-10)
    kl0 = 0.5 * np.mean(mean0**2 + np.exp(logvar0) - logvar0 - 1, axis=0)
    np.testing.assert_allclose(terms["kl_per_dim"].detach().numpy(), kl0, rtol=1e-10)
    assert terms["kl"].item() == pytest.approx(kl0.sum(), rel=1e-10)


def test_weighted_sum_is_sum_of_s_to_the_i_times_each_space_objective(build, batch) -> None:
    model = build({"name": "devae", "betas": [1, 4, 10], "scale": 0.5})
    perturb_hierarchy(model)
    terms = model.loss(batch, step=0)
    recon = sum(0.5**i * terms[f"recon_space_{i}"] for i in range(3))
    reg = sum(0.5**i * b * terms[f"kl_space_{i}"] for i, b in enumerate([1, 4, 10]))
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["regularizer"], reg)
    torch.testing.assert_close(terms["loss"], recon + reg)
    assert "space" not in terms


def test_weighted_sum_decodes_each_space_with_its_own_sample_and_embedding(build, batch) -> None:
    model = build({"name": "devae", "betas": [1, 10]}).double()
    perturb_hierarchy(model)
    x = batch.double()
    model.context.generator.manual_seed(4)
    terms = model.loss(x, step=0)

    model.context.generator.manual_seed(4)
    mean, logvar = model.encoder(x)
    means, logvars = model.hierarchy(mean, logvar)
    for i in range(2):
        eps = torch.randn(mean.shape, generator=model.context.generator, dtype=torch.float64)
        z = means[i] + torch.exp(0.5 * logvars[i]) * eps
        e = model.decoder.embedding.weight[i].expand(len(x), -1)
        recon = reconstruction_loss(model.decoder.net(torch.cat([z, e], 1)), x, "bernoulli")
        torch.testing.assert_close(terms[f"recon_space_{i}"], recon)


def test_sample_one_probabilities_follow_s_to_the_i(build) -> None:
    s, k = 0.5, 3
    model = build({"name": "devae", "betas": [1, 10, 40], "scale": s, "layer_sampling": "sample_one"})
    expected = np.array([(1 - s) * s**i / (1 - s**k) for i in range(k)])  # paper, normaliser 1 - s^K
    np.testing.assert_allclose(model.probabilities.numpy(), expected, rtol=1e-6)
    model.context.generator.manual_seed(0)
    draws = np.array([model.sample_space().item() for _ in range(4000)])
    freq = np.bincount(draws, minlength=k) / len(draws)
    np.testing.assert_allclose(freq, expected, atol=0.03)

    uniform = build({"name": "devae", "betas": [1, 10, 40], "scale": 1.0, "layer_sampling": "sample_one"})
    np.testing.assert_allclose(uniform.probabilities.numpy(), [1 / 3] * 3, rtol=1e-6)


def test_sample_one_optimises_only_the_drawn_space(build, batch) -> None:
    betas = [1.0, 10.0, 40.0]
    model = build({"name": "devae", "betas": betas, "scale": 1.0, "layer_sampling": "sample_one"}).double()
    perturb_hierarchy(model)
    x = batch.double()
    seen = set()
    for seed in range(12):
        model.context.generator.manual_seed(seed)
        terms = model.loss(x, step=0)
        i = int(terms["space"].item())
        seen.add(i)

        model.context.generator.manual_seed(seed)  # noise first, then the space index
        mean, logvar = model.encoder(x)
        means, logvars = model.hierarchy(mean, logvar)
        eps = torch.randn(mean.shape, generator=model.context.generator, dtype=torch.float64)
        assert model.sample_space().item() == i
        z = means[i] + torch.exp(0.5 * logvars[i]) * eps
        recon = reconstruction_loss(model.decoder(z, i), x, "bernoulli")
        torch.testing.assert_close(terms["recon"], recon)
        torch.testing.assert_close(terms["regularizer"], betas[i] * terms[f"kl_space_{i}"])
        torch.testing.assert_close(terms["loss"], recon + betas[i] * terms[f"kl_space_{i}"])
        assert not any(key.startswith("recon_space") for key in terms)
    assert seen == {0, 1, 2}


def test_sample_one_gradient_reaches_only_the_transforms_below_the_drawn_space(build, batch) -> None:
    model = build({"name": "devae", "betas": [1, 10, 40], "scale": 1.0, "layer_sampling": "sample_one"})
    perturb_hierarchy(model)
    for seed in range(20):
        model.zero_grad()
        model.context.generator.manual_seed(seed)
        terms = model.loss(batch, step=0)
        if terms["space"].item() == 1:
            break
    terms["loss"].backward()
    for grad in (model.hierarchy.log_scale.grad, model.hierarchy.logvar_shift.grad):
        assert grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0  # tau_0 used, tau_1 not
    embedding_grad = model.decoder.embedding.weight.grad
    assert embedding_grad[1].abs().sum() > 0 and embedding_grad[[0, 2]].abs().sum() == 0


def _plain_vae_twin(model: DeVAE, context: MethodContext, beta: float, build):
    """A beta-VAE computing the same function as DeVAE's space 0: the layer-0 embedding is folded
    into the first decoder layer's bias."""
    twin = build({"name": "beta_vae", "beta": beta}).double()
    twin.encoder.load_state_dict(model.encoder.state_dict())
    net_state = model.decoder.net.state_dict()
    d = context.latent_dim
    weight, bias = net_state.pop("dense.0.weight"), net_state.pop("dense.0.bias")
    e0 = model.decoder.embedding.weight[0].detach()
    net_state["dense.0.weight"] = weight[:, :d]
    net_state["dense.0.bias"] = bias + weight[:, d:] @ e0
    twin.decoder.load_state_dict(net_state)
    return twin


@pytest.mark.parametrize("layer_sampling", ["weighted_sum", "sample_one"])
def test_s_zero_is_a_plain_vae_on_space_0(build, batch, context, layer_sampling: str) -> None:
    model = build({"name": "devae", "betas": [2, 10, 40], "scale": 0.0, "layer_sampling": layer_sampling})
    model = model.double()
    perturb_hierarchy(model)  # spaces 1, 2 differ from space 0 but have weight 0
    twin = _plain_vae_twin(model, context, beta=2.0, build=build)
    x = batch.double()
    for seed in (0, 1):
        model.context.generator.manual_seed(seed)
        twin.context.generator.manual_seed(seed)
        got, want = model.loss(x, step=0), twin.loss(x, step=0)
        for key in ("loss", "recon", "kl", "regularizer", "kl_per_dim"):
            torch.testing.assert_close(got[key], want[key], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.reconstruct(x), twin.reconstruct(x), rtol=1e-10, atol=1e-10)


def test_representation_and_reconstruction_use_space_0(build, batch) -> None:
    model = build({"name": "devae"})
    perturb_hierarchy(model)
    mean = model.encoder(batch)[0]
    torch.testing.assert_close(model.representation(batch), mean)
    torch.testing.assert_close(model.reconstruct(batch), torch.sigmoid(model.decoder(mean, 0)))


def test_single_space_is_allowed(build, batch) -> None:
    model = build({"name": "devae", "betas": [4]})
    terms = model.loss(batch, step=0)
    assert model.hierarchy.log_scale.shape == (0, 5)
    torch.testing.assert_close(terms["loss"], terms["recon_space_0"] + 4 * terms["kl"])


def test_optimizer_covers_the_transforms_and_the_embedding(build) -> None:
    model = build({"name": "devae"})
    [(key, adam)] = model.optimizers(OptimConfig())
    ids = {id(p) for group in adam.param_groups for p in group["params"]}
    assert key == "loss" and ids == {id(p) for p in model.parameters()}
    assert id(model.hierarchy.log_scale) in ids and id(model.decoder.embedding.weight) in ids


@pytest.mark.parametrize("layer_sampling", ["weighted_sum", "sample_one"])
def test_forward_backward_with_1024_latents(layer_sampling: str) -> None:
    context = MethodContext((1, 64, 64), 1024, "bernoulli", 100, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = DeVAE(DeVAEConfig(layer_sampling=layer_sampling), context)
    x = (torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    terms = model.loss(x, step=0)
    assert terms["kl_per_dim"].shape == (1024,)
    terms["loss"].backward()
    assert torch.isfinite(model.hierarchy.log_scale.grad).all()
    assert model.encoder.mean.weight.grad.abs().sum() > 0
    assert model.representation(x).shape == (2, 1024)


def _config(method: dict, steps: int) -> dict:
    return {
        "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
        "method": method,
        "model": {"latent_dim": 4},
        "train": {"steps": steps, "batch_size": 8, "seed": 3, "report_every": 10, "prefetch": 0},
    }


@pytest.mark.parametrize("layer_sampling", ["weighted_sum", "sample_one"])
def test_trains_and_resumes_bit_exactly(tmp_path, layer_sampling: str) -> None:
    method = {"name": "devae", "betas": [1, 10, 40], "scale": 1.0, "layer_sampling": layer_sampling}
    straight = train(_config(method, steps=40))
    assert all(np.isfinite(r.terms["loss"]) for r in straight.reports)
    assert {"kl_space_0", "kl_space_1", "kl_space_2"} <= straight.last_report.terms.keys()
    assert len(straight.last_report.latent_information) == 4
    train(_config(method, steps=20), checkpoint_dir=tmp_path)
    resumed = train(_config(method, steps=40), resume_from=tmp_path / CHECKPOINT_NAME)
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert straight.last_report.terms == resumed.last_report.terms
