"""DEFT: stages, piecewise beta, gamma as gradient or learning-rate factor, freezing, beta-triggered
stages, resume."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from disent_core.errors import ConfigError
from disent_core.methods.base import OptimConfig
from disent_core.methods.deft import DEFTConfig, GroupedEncoder, SharedEncoder, threshold_boundaries
from disent_core.methods.registry import AnyMethodConfig
from disent_core.schedules import ExponentialConfig
from disent_core.train import CHECKPOINT_NAME, set_learning_rates, train

ADAPTER = TypeAdapter(AnyMethodConfig)
LR = 1e-3


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor, step: int) -> dict:
    set_learning_rates(model, [("loss", optimizer)], step)  # as train() does before each step
    terms = model.loss(batch, step)
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    optimizer.step()
    return terms


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# --- config ------------------------------------------------------------------------------------
def test_defaults_are_the_2021_dsprites_settings_and_variant_b() -> None:
    config = ADAPTER.validate_python({"name": "deft"})
    assert isinstance(config, DEFTConfig)
    assert (config.variant, config.betas, config.stage_steps) == ("B", [70, 30, 12, 1], 15_000)
    assert (config.group_size, config.gamma, config.sub_encoder_channels) == (2, 0.1, 8)
    assert config.gamma_mode == "grad_scale"  # the authors' grad_modify
    d = ADAPTER.validate_python({"name": "deft", "variant": "D"})
    assert d.betas == [70, 30, 15, 1]
    assert (d.beta_max, d.beta_decay, d.anneal_steps, d.beta_min) == (150, 20, 200_000, 1)
    assert ADAPTER.validate_python(d.model_dump()) == d


@pytest.mark.parametrize(
    "bad",
    [
        {"variant": "E"},
        {"betas": []},
        {"betas": [4, -1]},
        {"betas": [4, 2, 1], "stage_steps": [10]},
        {"stage_steps": 0},
        {"gamma": -0.1},
        {"variant": "D", "betas": [30, 70]},
        {"variant": "D", "betas": [200, 1]},
        {"group_size": 0},
        {"gamma_mode": "adam"},
    ],
)
def test_invalid_configs_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"name": "deft", **bad})


@pytest.mark.parametrize("variant", ["A", "C", "D"])
def test_gamma_mode_lr_is_rejected_outside_variant_b(variant: str) -> None:
    with pytest.raises(ValidationError, match="gamma_mode 'lr' applies to variant B only"):
        ADAPTER.validate_python({"name": "deft", "variant": variant, "gamma_mode": "lr"})
    config = ADAPTER.validate_python({"name": "deft", "variant": variant, "gamma_mode": "grad_scale"})
    assert config.gamma_mode == "grad_scale"
    assert ADAPTER.validate_python({"name": "deft", "gamma_mode": "lr"}).gamma_mode == "lr"


def test_gamma_list_needs_one_factor_per_group(build) -> None:
    with pytest.raises(ConfigError, match="3 groups"):  # 5 latents in groups of 2
        build({"name": "deft", "gamma": [0.1, 0.1]})


# --- stages and beta ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stage_steps, boundaries", [(10, [10, 20]), ([5, 12], [5, 17])], ids=["int", "list"]
)
def test_stage_boundaries_at_the_configured_steps(build, batch, stage_steps, boundaries) -> None:
    model = build({"name": "deft", "betas": [8, 4, 1], "stage_steps": stage_steps})
    first, second = boundaries
    expected = {
        0: (0, 8), first - 1: (0, 8), first: (1, 4), second - 1: (1, 4), second: (2, 1), 10**6: (2, 1)
    }
    for step, (stage, beta) in expected.items():
        assert model.schedules()["stage"](step) == stage
        assert model.schedules()["beta"](step) == beta
    model.loss(batch, second)
    assert int(model.encoder.active) == 2


def test_more_stages_than_groups_keep_the_last_group_active(build) -> None:
    model = build({"name": "deft", "group_size": 5, "betas": [8, 4, 1], "stage_steps": 1})
    assert [model.active_group(t) for t in range(4)] == [0, 0, 0, 0]
    model = build({"name": "deft", "group_size": 3, "betas": [8, 4, 1], "stage_steps": 1})
    assert [model.active_group(t) for t in range(4)] == [0, 1, 1, 1]


# --- variant B ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode, slow_lr, slow_grad", [("grad_scale", 1.0, 0.25), ("lr", 0.25, 1.0)], ids=["grad_scale", "lr"]
)
def test_variant_b_parameter_groups_follow_the_stage(build, batch, mode, slow_lr, slow_grad) -> None:
    model = build({"name": "deft", "betas": [8, 4, 1], "stage_steps": 2, "gamma": 0.25, "gamma_mode": mode})
    assert isinstance(model.encoder, GroupedEncoder) and len(model.encoder.encoders) == 3
    (key, adam), = model.optimizers(OptimConfig(lr=LR))
    assert key == "loss"
    groups = adam.param_groups
    assert [g["deft_group"] for g in groups] == [-1, 0, 1, 2]
    for i, encoder in enumerate(model.encoder.encoders):
        assert {id(p) for p in groups[i + 1]["params"]} == {id(p) for p in encoder.parameters()}
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.decoder.parameters()}

    def lrs() -> list[float]:
        return [g["lr"] for g in groups]

    def grad_factors() -> list[float]:
        return [g["grad_factor"] for g in groups]

    assert lrs() == pytest.approx([LR, LR, 0, 0])
    assert grad_factors() == [1, 1, 1, 1]
    _step(model, adam, batch, 2)
    assert lrs() == pytest.approx([LR, slow_lr * LR, LR, 0])
    assert grad_factors() == [1, slow_grad, 1, 1]
    _step(model, adam, batch, 4)
    assert lrs() == pytest.approx([LR, slow_lr * LR, slow_lr * LR, LR])
    assert grad_factors() == [1, slow_grad, slow_grad, 1]
    assert [LR * f for f in model.lr_factors(4)["loss"]] == pytest.approx(lrs())
    assert [g["base_lr"] for g in groups] == pytest.approx([LR] * 4)


@pytest.mark.parametrize(
    "mode, lr_factors, grad_factors",
    [("grad_scale", [1, 1, 1, 1], [1, 0.5, 0.1, 1]), ("lr", [1, 0.5, 0.1, 1], [1, 1, 1, 1])],
    ids=["grad_scale", "lr"],
)
def test_per_group_gamma_list_and_the_trainer_multiplier(
    build, batch, mode: str, lr_factors: list[float], grad_factors: list[float]
) -> None:
    config = {"betas": [8, 4, 1], "stage_steps": 2, "gamma": [0.5, 0.1, 0.3], "gamma_mode": mode}
    model = build({"name": "deft", **config})
    (_, adam), = model.optimizers(OptimConfig(lr=LR))
    set_learning_rates(model, [("loss", adam)], 4, multiplier=0.5)  # train() with a multiplier of 0.5
    model.loss(batch, 4)
    assert [g["lr"] for g in adam.param_groups] == pytest.approx([0.5 * f * LR for f in lr_factors])
    assert [g["grad_factor"] for g in adam.param_groups] == grad_factors


Grads = list[list[torch.Tensor]]


def _stage_two_step(build, batch, config: dict) -> tuple[Grads, Grads, list[dict]]:
    """One step in stage 2 of 3 (groups 0 and 1 earlier, 2 active): each sub-encoder's gradients
    right after backward and as Adam used them (after ``step``), and the parameter groups."""
    model = build({"name": "deft", "betas": [8, 4, 1], "stage_steps": 2, **config})
    (_, adam), = model.optimizers(OptimConfig(lr=LR))
    set_learning_rates(model, [("loss", adam)], 4)
    terms = model.loss(batch, 4)
    adam.zero_grad(set_to_none=True)
    terms["loss"].backward()
    encoders = model.encoder.encoders
    after_backward = [[p.grad.clone() for p in encoder.parameters()] for encoder in encoders]
    adam.step()
    used = [[p.grad for p in encoder.parameters()] for encoder in encoders]
    return after_backward, used, adam.param_groups


@pytest.mark.parametrize("gamma", [0.25, [0.25, 0.1, 0.5]], ids=["float", "list"])
def test_variant_b_grad_scale_multiplies_earlier_gradients_before_the_adam_step(build, batch, gamma) -> None:
    gammas = gamma if isinstance(gamma, list) else [gamma] * 3
    backward, used, groups = _stage_two_step(build, batch, {"gamma": gamma})  # the default mode
    _, plain, _ = _stage_two_step(build, batch, {"gamma": gamma, "gamma_mode": "lr"})
    for i in range(3):
        factor = gammas[i] if i < 2 else 1.0  # the active group 2 is not scaled
        assert all(torch.equal(g, factor * p) for g, p in zip(used[i], plain[i], strict=True)), i
        assert all(torch.equal(b, p) for b, p in zip(backward[i], plain[i], strict=True)), i
    assert any(p.abs().sum() > 0 for p in plain[0])
    assert [g["lr"] for g in groups] == pytest.approx([LR] * 4)  # earlier groups at the full lr


def test_variant_b_lr_mode_leaves_gradients_and_slows_the_learning_rate(build, batch) -> None:
    backward, used, groups = _stage_two_step(build, batch, {"gamma": [0.25, 0.1, 0.5], "gamma_mode": "lr"})
    for i in range(3):
        assert all(torch.equal(b, u) for b, u in zip(backward[i], used[i], strict=True)), i
    assert [g["lr"] for g in groups] == pytest.approx([LR, 0.25 * LR, 0.1 * LR, LR])


def test_variant_b_later_groups_get_no_gradient_and_no_information(build, batch) -> None:
    model = build({"name": "deft", "betas": [8, 4, 1], "stage_steps": 2})
    (_, adam), = model.optimizers(OptimConfig(lr=LR))
    later = _params(model.encoder.encoders[2])
    terms = _step(model, adam, batch, 2)  # stage 1: group 0 earlier, 1 active, 2 later
    assert all(p.grad is not None for p in model.encoder.encoders[0].parameters())
    assert all(p.grad is not None for p in model.encoder.encoders[1].parameters())
    assert all(p.grad is None for p in model.encoder.encoders[2].parameters())
    assert _same(later, _params(model.encoder.encoders[2]))
    assert terms["kl_per_dim"][4] == 0
    mean, logvar = model.encoder(batch)
    assert torch.equal(mean[:, 4:], torch.zeros_like(mean[:, 4:]))
    assert torch.equal(logvar[:, 4:], torch.zeros_like(logvar[:, 4:]))
    assert not torch.equal(mean[:, :4], torch.zeros_like(mean[:, :4]))


# --- variant C ---------------------------------------------------------------------------------
def test_variant_c_freezes_earlier_groups_and_trains_the_projection(build, batch) -> None:
    model = build({"name": "deft", "variant": "C", "betas": [8, 4, 1], "stage_steps": [2, 100]})
    (_, adam), = model.optimizers(OptimConfig(lr=LR))
    _step(model, adam, batch, 0)
    _step(model, adam, batch, 1)  # group 0 trained in stage 0, building Adam moments
    frozen, active = _params(model.encoder.encoders[0]), _params(model.encoder.encoders[1])
    projection = model.encoder.projection_log_scale.detach().clone()
    for step in range(2, 5):
        _step(model, adam, batch, step)
        assert all(p.grad is None for p in model.encoder.encoders[0].parameters())
    assert _same(frozen, _params(model.encoder.encoders[0]))
    assert not _same(active, _params(model.encoder.encoders[1]))
    assert not torch.equal(projection[:2], model.encoder.projection_log_scale[:2].detach())
    assert torch.equal(projection[2:], model.encoder.projection_log_scale[2:].detach())
    assert [g["lr"] for g in adam.param_groups] == pytest.approx([LR, 0, LR, 0])


def test_variant_c_projection_starts_as_the_identity(build, batch) -> None:
    model = build({"name": "deft", "variant": "C", "betas": [8, 4, 1], "stage_steps": 2})
    model.loss(batch, 0)
    before = model.representation(batch)[:, :2]
    model.loss(batch, 2)
    torch.testing.assert_close(model.representation(batch)[:, :2], before)


# --- variant D ---------------------------------------------------------------------------------
def test_variant_d_advances_when_beta_crosses_each_threshold(build) -> None:
    thresholds = [70.0, 30.0, 15.0, 1.0]
    model = build({"name": "deft", "variant": "D", "group_size": 1, "anneal_steps": 100})
    beta, stage = model.schedules()["beta"], model.schedules()["stage"]
    expected = 0
    for t in range(200):
        b = max(150 * math.exp(-20 * t / 100), 1.0)
        assert beta(t) == pytest.approx(b)
        if expected < len(thresholds) and b <= thresholds[expected]:
            expected += 1  # the authors' rule: at most one stage per step
        assert stage(t) == expected, t
    assert expected == 4


def test_variant_d_switch_steps_at_200k() -> None:
    """Variant D (erow/disentanglement_lib examples/deft.py; docs/provenance.md, "DEFT"): switches at
    about 7.6k, 16.1k, 23.0k and 50.1k steps."""
    beta = ExponentialConfig(start=150, rate=math.exp(-20), every=200_000, end=1).build()
    steps = threshold_boundaries(beta, [70, 30, 15, 1])
    assert [round(s / 100) / 10 for s in steps] == [7.6, 16.1, 23.0, 50.1]
    assert beta(steps[0]) <= 70 < beta(steps[0] - 1)


# --- variant A ---------------------------------------------------------------------------------
def test_variant_a_scales_the_gradient_per_group(build, batch) -> None:
    def grads(gamma: float) -> torch.Tensor:
        model = build({"name": "deft", "variant": "A", "betas": [8, 4, 1], "stage_steps": 2, "gamma": gamma})
        assert isinstance(model.encoder, SharedEncoder)
        model.loss(batch, 2)["loss"].backward()  # stage 1: dims 0-1 earlier, 2-3 active, 4 later
        return model.encoder.body.mean.weight.grad

    scaled, plain = grads(0.1), grads(1.0)
    torch.testing.assert_close(scaled[:2], 0.1 * plain[:2])
    torch.testing.assert_close(scaled[2:4], plain[2:4])
    assert torch.equal(scaled[4:], torch.zeros_like(scaled[4:]))
    assert plain[:4].abs().sum() > 0


def test_variant_a_forward_is_unchanged_by_the_scaling(build, batch) -> None:
    model = build({"name": "deft", "variant": "A", "betas": [8, 4, 1], "stage_steps": 2})
    model.loss(batch, 2)
    mean, logvar = model.encoder(batch)
    body_mean, body_logvar = model.encoder.body(batch)
    assert torch.equal(mean, body_mean) and torch.equal(logvar, body_logvar)


# --- training through train() and resume ------------------------------------------------------
def _config(method: dict, steps: int) -> dict:
    return {
        "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
        "method": {"name": "deft", **method},
        "model": {"latent_dim": 4},
        "train": {"steps": steps, "batch_size": 8, "seed": 3, "report_every": 10, "prefetch": 0,
                  "optimizer": {"lr": 1e-3}},
    }


METHODS = {
    "A": {"variant": "A", "betas": [8, 1], "stage_steps": 12},
    "B": {"betas": [8, 1], "stage_steps": 12, "gamma_mode": "grad_scale"},
    "B-lr": {"betas": [8, 1], "stage_steps": 12, "gamma_mode": "lr"},
    "C": {"variant": "C", "betas": [8, 1], "stage_steps": 12},
    "D": {"variant": "D", "betas": [4], "beta_max": 8, "beta_decay": 5, "anneal_steps": 30},
}


def test_trains_through_train_and_reports_stage_and_beta() -> None:
    result = train(_config(METHODS["B"], 30))
    reports = result.reports
    assert [r.step for r in reports] == [10, 20, 30]
    assert [r.schedules["stage"] for r in reports] == [0, 1, 1]
    assert [r.schedules["beta"] for r in reports] == [8, 1, 1]
    assert reports[-1].schedules["lr.loss"] == pytest.approx(1e-3)
    assert all(math.isfinite(v) for r in reports for v in r.terms.values())
    assert reports[0].latent_information[2:] == [0.0, 0.0]  # group 1 is switched off in stage 0


@pytest.mark.parametrize("variant", list(METHODS))
def test_resume_across_a_stage_switch_is_bit_exact(tmp_path, variant: str) -> None:
    method = METHODS[variant]
    straight = train(_config(method, 24))
    train(_config(method, 10), checkpoint_dir=tmp_path)
    resumed = train(_config(method, 24), resume_from=tmp_path / CHECKPOINT_NAME)
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.last_report.terms == resumed.last_report.terms
    assert straight.last_report.schedules == resumed.last_report.schedules
    assert straight.last_report.schedules["stage"] >= 1


def test_resume_inside_a_grad_scale_stage_is_bit_exact(tmp_path) -> None:
    method = METHODS["B"]
    straight = train(_config(method, 24))
    train(_config(method, 16), checkpoint_dir=tmp_path)  # stage 1: group 0 gradients scaled by gamma
    resumed = train(_config(method, 24), resume_from=tmp_path / CHECKPOINT_NAME)
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.last_report.terms == resumed.last_report.terms


def test_gamma_modes_differ_only_after_the_stage_switch() -> None:
    def encoder_0(mode: str, steps: int) -> list[torch.Tensor]:
        result = train(_config({**METHODS["B"], "gamma_mode": mode}, steps))
        return _params(result.method.encoder.encoders[0])

    assert _same(encoder_0("grad_scale", 12), encoder_0("lr", 12))  # stage 0: no earlier group
    assert not _same(encoder_0("grad_scale", 24), encoder_0("lr", 24))


def test_stage_is_saved_with_the_weights(build, batch) -> None:
    model = build({"name": "deft", "betas": [8, 4, 1], "stage_steps": 2})
    model.loss(batch, 5)
    fresh = build({"name": "deft", "betas": [8, 4, 1], "stage_steps": 2})
    fresh.load_state_dict(model.state_dict())
    assert int(fresh.encoder.active) == 2
    torch.testing.assert_close(fresh.representation(batch), model.representation(batch))


def test_lr_factors_follow_the_stage_and_survive_a_reload(build) -> None:
    model = build({"name": "deft", "betas": [8, 4, 1], "stage_steps": 2, "gamma": 0.25, "gamma_mode": "lr"})
    assert model.lr_factors(0) == {"loss": [1, 1, 0, 0]}
    assert model.lr_factors(4) == {"loss": [1, 0.25, 0.25, 1]}
    (_, adam), = model.optimizers(OptimConfig(lr=LR))
    set_learning_rates(model, [("loss", adam)], 4)
    adam.load_state_dict(adam.state_dict())
    assert [g["base_lr"] for g in adam.param_groups] == [LR] * 4
    set_learning_rates(model, [("loss", adam)], 4)
    assert [g["lr"] for g in adam.param_groups] == pytest.approx([LR, 0.25 * LR, 0.25 * LR, LR])
    assert build({"name": "deft", "variant": "A"}).lr_factors(10**6) == {}
