"""DiD (reconstruction): WGAN-GP terms, the difference InfoNCE, gradient routing, training, resume."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from disent_core.methods.base import MethodContext, OptimConfig
from disent_core.methods.did import DiD, DiDConfig, difference_infonce, gradient_penalty
from disent_core.methods.losses import scale_gradient
from disent_core.train import CHECKPOINT_NAME, train

RNG = np.random.default_rng(5)
SMALL_GRID = {"sizes": [3, 2, 4, 4, 4]}


@pytest.fixture
def make(context: MethodContext) -> Callable[..., DiD]:
    """A DiD with narrow convolutions (base_channels 4 unless given) so that the tests stay fast."""

    def _make(base_channels: int = 4, **options: object) -> DiD:
        torch.manual_seed(0)
        return DiD(DiDConfig(**options), dataclasses.replace(context, base_channels=base_channels))

    return _make


def _params(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def _main_params(model: DiD) -> list[nn.Parameter]:
    """The parameters of the first optimiser: generator, Samples Encoder, Difference Encoder."""
    return _params(model.generator, model.samples_encoder, model.difference_encoder)


def _train_config(steps: int, **method: object) -> dict:
    return {
        "dataset": {"name": "dsprites_procedural", "options": SMALL_GRID},
        "method": {"name": "did", **method},
        "model": {"latent_dim": 4, "base_channels": 8},
        "train": {"steps": steps, "batch_size": 8, "seed": 3, "report_every": 12, "prefetch": 0},
    }


@pytest.mark.parametrize("step", [0, 4], ids=["critic_only_step", "generator_step"])
def test_loss_terms_are_finite(make, batch, step: int) -> None:
    model = make()
    terms = model.loss(batch, step=step)
    assert {"loss", "critic_loss", "adversarial", "difference", "enc", "gradient_penalty",
            "wasserstein", "information", "information_per_dim"} <= set(terms)
    assert all(torch.isfinite(t).all() for t in terms.values())
    assert terms["information_per_dim"].shape == (model.context.latent_dim,)
    assert (terms["information_per_dim"] >= 0).all()
    torch.testing.assert_close(terms["information"], terms["information_per_dim"].sum())
    torch.testing.assert_close(terms["loss"], terms["adversarial"] + terms["difference"] + terms["enc"])
    torch.testing.assert_close(
        terms["critic_loss"], -terms["wasserstein"] + 10.0 * terms["gradient_penalty"]
    )


def test_gradient_penalty_on_a_linear_critic() -> None:
    weight, bias = RNG.normal(size=(1, 6)), RNG.normal(size=1)
    critic = nn.Linear(6, 1).double()
    with torch.no_grad():
        critic.weight.copy_(torch.from_numpy(weight))
        critic.bias.copy_(torch.from_numpy(bias))
    real, fake = torch.from_numpy(RNG.normal(size=(4, 6))), torch.from_numpy(RNG.normal(size=(4, 6)))
    mix = torch.from_numpy(RNG.uniform(size=4))

    penalty = gradient_penalty(critic, real, fake, mix)

    norm = np.linalg.norm(weight)
    assert penalty.item() == pytest.approx((norm - 1) ** 2, rel=1e-12)
    penalty.backward()  # the penalty is differentiable in the critic's weights (create_graph)
    np.testing.assert_allclose(critic.weight.grad.numpy(), 2 * (norm - 1) * weight / norm, rtol=1e-10)


def test_gradient_penalty_is_taken_at_the_mixed_points() -> None:
    a = RNG.normal(size=(3, 2, 2))  # D(x) = 1/2 |A vec(x)|^2, so grad D(x) = A^T A vec(x)
    critic = QuadraticCritic(torch.from_numpy(a.reshape(3, 4)))
    real, fake = RNG.normal(size=(5, 1, 2, 2)), RNG.normal(size=(5, 1, 2, 2))
    mix = RNG.uniform(size=5)

    penalty = gradient_penalty(critic, torch.from_numpy(real), torch.from_numpy(fake), torch.from_numpy(mix))

    a = a.reshape(3, 4)
    points = (mix[:, None] * real.reshape(5, 4) + (1 - mix[:, None]) * fake.reshape(5, 4))
    norms = np.linalg.norm(points @ a.T @ a, axis=1)
    assert penalty.item() == pytest.approx(np.mean((norms - 1) ** 2), rel=1e-12)


class QuadraticCritic(nn.Module):
    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x.flatten(1) @ self.a.T).square().sum(1, keepdim=True)


def test_difference_infonce_matches_a_hand_computation() -> None:
    v1, v2 = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    dims = [0, 1, 0, 2]
    tau = 0.3

    loss, accuracy = difference_infonce(torch.from_numpy(v1), torch.from_numpy(v2), torch.tensor(dims), tau)

    u1 = v1 / np.linalg.norm(v1, axis=1, keepdims=True)
    u2 = v2 / np.linalg.norm(v2, axis=1, keepdims=True)

    def one_direction(anchors: np.ndarray, others: np.ndarray) -> tuple[float, int]:
        total, hits = 0.0, 0
        for a in range(4):
            allowed = [b for b in range(4) if b == a or dims[b] != dims[a]]
            scores = {b: float(anchors[a] @ others[b]) / tau for b in allowed}
            total += -scores[a] + math.log(sum(math.exp(s) for s in scores.values()))
            hits += max(scores, key=scores.get) == a
        return total / 4, hits

    forward, hits = one_direction(u1, u2)
    backward, _ = one_direction(u2, u1)
    assert loss.item() == pytest.approx(0.5 * (forward + backward), rel=1e-12)
    assert accuracy.item() == pytest.approx(hits / 4)


def test_scale_gradient_is_exact_forward_and_scales_the_gradient() -> None:
    x = torch.from_numpy(RNG.normal(size=7)).requires_grad_(True)
    y = scale_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y.square().sum()).backward()
    torch.testing.assert_close(x.grad, 0.25 * 2 * x.detach())


@pytest.mark.parametrize("prior", ["uniform", "normal"])
def test_perturb_moves_only_the_chosen_dimension(make, prior: str) -> None:
    model = make(prior=prior, shift_range=(0.3, 0.9))
    codes = model.sample_prior(500, torch.zeros(1))
    dims = torch.randint(model.context.latent_dim, (500,), generator=torch.Generator().manual_seed(1))
    moved = model.perturb(codes, dims)
    delta = moved - codes
    chosen = torch.nn.functional.one_hot(dims, model.context.latent_dim).bool()
    assert torch.equal(delta[~chosen], torch.zeros_like(delta[~chosen]))
    shift = delta[chosen].abs()
    assert (shift >= 0.3 - 1e-6).all() and (shift <= 0.9 + 1e-6).all()
    assert (delta[chosen] > 0).any() and (delta[chosen] < 0).any()
    if prior == "uniform":
        assert moved.abs().max() <= 1 and codes.abs().max() <= 1


def test_critic_loss_reaches_only_the_critic(make, batch) -> None:
    model = make(critic_steps=1)
    model.loss(batch, step=0)["critic_loss"].backward()
    assert all(p.grad is None for p in _main_params(model))
    assert all(p.grad is not None for p in model.critic.parameters())
    assert all(p.grad.any() for p in model.critic.net[-1:].parameters() if p.dim() > 1)  # bias cancels


def test_generator_gets_gradient_only_on_generator_steps(make, batch) -> None:
    model = make(critic_steps=3)
    for step, generator_step in [(0, False), (1, False), (2, True), (5, True)]:
        model.zero_grad(set_to_none=True)
        model.loss(batch, step=step)["loss"].backward()
        reached = [p.grad is not None and bool(p.grad.any()) for p in model.generator.parameters()]
        assert all(reached) if generator_step else not any(reached), step
        assert all(p.grad is not None for p in _params(model.samples_encoder, model.difference_encoder))


def test_lambdas_scale_only_the_generators_share(make, batch) -> None:
    grads = {}
    for lam in (1.0, 0.25):
        model = make(critic_steps=1, lambda_enc=lam, lambda_h=lam).double()
        model.context.generator.manual_seed(0)
        terms = model.loss(batch.double(), step=0)
        for key in ("enc", "difference"):
            own = model.samples_encoder if key == "enc" else model.difference_encoder
            grads[lam, key] = torch.autograd.grad(
                terms[key], [*model.generator.parameters(), *own.parameters()], retain_graph=True
            )
    for key in ("enc", "difference"):
        n_generator = len(list(model.generator.parameters()))
        for i, (full, scaled) in enumerate(zip(grads[1.0, key], grads[0.25, key], strict=True)):
            torch.testing.assert_close(scaled, (0.25 if i < n_generator else 1.0) * full)


def test_optimizers_split_the_parameters(make) -> None:
    model = make(critic_lr=2e-4, critic_betas=[0.0, 0.9])
    (main_key, main_opt), (critic_key, critic_opt) = model.optimizers(OptimConfig(lr=3e-4))
    assert (main_key, critic_key) == ("loss", "critic_loss")
    main_ids = {id(p) for group in main_opt.param_groups for p in group["params"]}
    critic_ids = {id(p) for group in critic_opt.param_groups for p in group["params"]}
    assert main_ids == {id(p) for p in _main_params(model)}
    assert critic_ids == {id(p) for p in model.critic.parameters()}
    assert main_opt.param_groups[0]["lr"] == 3e-4 and main_opt.param_groups[0]["betas"] == (0.5, 0.9)
    assert critic_opt.param_groups[0]["lr"] == 2e-4 and critic_opt.param_groups[0]["betas"] == (0.0, 0.9)
    _, from_train_config = make(generator_betas=None).optimizers(OptimConfig())[0]
    assert from_train_config.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("step", [0, 4], ids=["critic_only_step", "generator_step"])
def test_trainer_style_step_moves_each_network_with_its_own_gradient(make, batch, step: int) -> None:
    model = make()
    optimizers = model.optimizers(OptimConfig())
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.context.generator.manual_seed(7)
    reference = model.loss(batch, step=step)
    expected_critic = torch.autograd.grad(reference["critic_loss"], list(model.critic.parameters()))

    model.context.generator.manual_seed(7)
    terms = model.loss(batch, step=step)
    for key, optimizer in optimizers:
        optimizer.zero_grad()
        terms[key].backward()
        optimizer.step()

    for name, p in model.named_parameters():
        if name == "critic.net.11.bias":  # the Wasserstein estimate does not depend on it: no gradient
            continue
        moved = not torch.equal(p.detach(), before[name])
        assert moved == (step == 4 or not name.startswith("generator.")), name
    for got, want in zip(model.critic.parameters(), expected_critic, strict=True):
        torch.testing.assert_close(got.grad, want)  # the generator term's critic gradient was cleared


def test_samples_encoder_learns_to_recover_codes(make) -> None:
    model = make(base_channels=8, critic_steps=1)
    real = (torch.rand(16, 1, 64, 64, generator=torch.Generator().manual_seed(2)) < 0.2).float()
    codes = model.sample_prior(64, real)

    def recovery_error() -> float:
        with torch.no_grad():
            return (model.representation(model.generate(codes)) - codes).square().sum(1).mean().item()

    start = recovery_error()
    optimizers = model.optimizers(OptimConfig(lr=1e-3))
    for step in range(50):
        terms = model.loss(real, step=step)
        for key, optimizer in optimizers:
            optimizer.zero_grad()
            terms[key].backward()
            optimizer.step()
    assert recovery_error() < 0.5 * start


def test_trains_through_the_trainer() -> None:
    reports = []
    result = train(_train_config(36), on_report=reports.append)
    assert result.step == 36 and [r.step for r in reports] == [12, 24, 36]
    report = reports[-1]
    assert {"loss", "critic_loss", "enc", "difference", "information"} <= report.terms.keys()
    assert len(report.latent_information) == 4 and report.information_name == "info"
    assert report.schedules["lr.loss"] == pytest.approx(1e-4)
    assert report.schedules["lr.critic_loss"] == pytest.approx(1e-4)
    assert all(math.isfinite(v) for v in report.terms.values())


def test_resume_is_bit_exact(tmp_path) -> None:
    straight = train(_train_config(24))  # generator updates at steps 4, 9, 14, 19: the cut at 12 is mid-cycle
    train(_train_config(12), checkpoint_dir=tmp_path)
    resumed = train(_train_config(24), resume_from=tmp_path / CHECKPOINT_NAME)
    assert resumed.step == straight.step == 24
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert straight.last_report.terms == resumed.last_report.terms


def test_representation_is_the_samples_encoder_on_real_images(make, batch) -> None:
    model = make()
    code = model.representation(batch)
    assert code.shape == (batch.shape[0], model.context.latent_dim)
    assert not code.requires_grad
    torch.testing.assert_close(code, model.samples_encoder(batch))


def test_defaults() -> None:
    config = DiDConfig()
    assert (config.prior, config.lambda_h, config.lambda_enc, config.lambda_gp, config.critic_steps) == (
        "uniform", 1.0, 1.0, 10.0, 5
    )
    assert (config.temperature, config.shift_range, config.difference_dim) == (0.1, (0.5, 1.0), None)
    assert (config.critic_lr, config.critic_betas, config.generator_betas) == (1e-4, (0.5, 0.9), (0.5, 0.9))


@pytest.mark.parametrize(
    "bad",
    [
        {"shift_range": [0.8, 0.2]},
        {"shift_range": [0.5, 1.5]},
        {"shift_range": [0.0, 0.5]},
        {"critic_steps": 0},
        {"temperature": 0},
        {"lambda_h": -1},
        {"prior": "laplace"},
    ],
)
def test_rejects_bad_configs(bad: dict) -> None:
    with pytest.raises(ValidationError):
        DiDConfig(**bad)


def test_normal_prior_allows_large_shifts() -> None:
    assert DiDConfig(prior="normal", shift_range=(0.5, 2.0)).shift_range == (0.5, 2.0)
