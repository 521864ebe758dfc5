"""ControlVAE, DynamicVAE (closed-loop beta) and CascadeVAE-C (per-dimension beta by stage)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from disent_core.methods.base import Posterior
from disent_core.methods.controllers import IncrementalPIControl, PIControl
from disent_core.methods.registry import AnyMethodConfig
from disent_core.train import CHECKPOINT_NAME, train

ADAPTER = TypeAdapter(AnyMethodConfig)
KL_PER_DIM = torch.tensor([0.5, 1.25, 0.0, 2.0, 0.25], dtype=torch.float64)  # sum 4.0
MEAN = torch.zeros(3, 5, dtype=torch.float64)


def dynamic(**overrides) -> IncrementalPIControl:
    """target(t) = 2 * floor(min(t, 4) / 2): 0, 0, 2, 2, 4, 4 ..."""
    settings = dict(c=4.0, total_steps=4, period=2, alpha=0.5, k_p=1.0, k_i=0.5, beta_init=10.0,
                    beta_min=1.0, proportional_on="overshoot")
    return IncrementalPIControl(**{**settings, **overrides})


def control(**overrides) -> PIControl:
    """C(t) = min(2, 0.5 + 0.5 * (floor(t / 2) + 1)): 1, 1, 1.5, 1.5, 2, 2 ..."""
    settings = dict(c=2.0, init_c=0.5, c_step=0.5, period=2, k_p=0.01, k_i=-0.5, beta_min=1.0)
    return PIControl(**{**settings, **overrides})


def run(controller, kls: list[float]) -> list[float]:
    return [controller.update(kl, step) for step, kl in enumerate(kls)]


# --- DynamicVAE --------------------------------------------------------------------------------


def test_dynamic_target_is_a_staircase() -> None:
    assert [dynamic().target(t) for t in range(7)] == [0, 0, 2, 2, 4, 4, 4]
    linear = dynamic(c=11.0, total_steps=100, period=1)
    assert linear.target(50) == pytest.approx(5.5) and linear.target(500) == pytest.approx(11.0)


def test_dynamic_update_rule_overshoot() -> None:
    # y: 1, 0.5, 0.75, 0.375; e = y - target: 1, 0.5, -1.25, -1.625; f(e) = max(e, 0)
    # dP = f(e) - f(e_prev): 1, -0.5, -0.5, 0;  dI = 0.5 * e: 0.5, 0.25, -0.625, -0.8125
    controller = dynamic()
    assert run(controller, [2.0, 0.0, 1.0, 0.0]) == pytest.approx([11.5, 11.25, 10.125, 9.3125])
    assert controller.state == pytest.approx({"kl_ema": 0.375, "error": -1.625, "beta": 9.3125})
    assert controller.last_value == pytest.approx(9.3125)


def test_dynamic_update_rule_undershoot() -> None:
    # same errors, f(e) = min(e, 0): dP = 0, 0, -1.25, -0.375
    assert run(dynamic(proportional_on="undershoot"), [2.0, 0.0, 1.0, 0.0]) == pytest.approx(
        [10.5, 10.75, 8.875, 7.6875]
    )


def test_dynamic_default_rule_is_the_authors_staircase_version(build) -> None:
    # DeVAE's DynamicVAE: C = 18, K_p = 0.01, K_i = 0.001, beta_init 150; the target is 0 in the
    # first period, so e = y: 28.5, 29.925, 1.97125, 0.5735625 and f(e) = min(e, 0) = 0 (no P term)
    model = build({"name": "dynamic_vae", "c": 18, "k_p": 0.01, "k_i": 0.001, "total_steps": 200_000})
    controller = model.schedules()["beta"]
    betas = [controller.update(kl, step) for step, kl in enumerate([30.0, 30.0, 0.5, 0.5])]
    assert [round(b, 4) for b in betas] == [150.0285, 150.0584, 150.0604, 150.0610]


def test_dynamic_beta_is_clipped_at_beta_min() -> None:
    # step 0: y = 0, e = 0, beta 2; step 2: y = 0, e = -2, dI = 0.5 * -2 * 2 = -2 -> max(0, 1)
    controller = dynamic(beta_init=2.0, k_i=1.0)
    assert run(controller, [0.0, 0.0, 0.0]) == pytest.approx([2.0, 2.0, 1.0])


def test_dynamic_anti_windup_freezes_the_integral_while_beta_prev_is_below_beta_min() -> None:
    # beta_prev = 0.5 < 1: dI = 0, dP = max(1, 0) - 0 = 1 -> beta = 1.5; then dI = 0.5 * 0.5
    controller = dynamic(beta_init=0.5)
    assert run(controller, [2.0, 0.0]) == pytest.approx([1.5, 1.5 - 0.5 + 0.25])
    # without the freeze the first beta would have been 0.5 + 1 + 0.5 = 2
    assert run(dynamic(beta_init=1.0), [2.0]) == pytest.approx([2.5])


# --- ControlVAE --------------------------------------------------------------------------------


def test_control_target_rises_every_period_from_step_0() -> None:
    assert [control().target(t) for t in range(7)] == [1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 2.0]


def p_term(error: float, k_p: float = 0.01) -> float:
    return k_p / (1 + math.exp(error)) + 1


def test_control_update_rule_with_anti_windup() -> None:
    controller = control()
    # step 0: e = 1 - 3 = -2, I = 0 - 0.5 * -2 = 1 (W_prev = 1 >= 1), W = P + 1
    # step 1: e = 1 - 0 = 1, I = 1 - 0.5 = 0.5;  step 2: e = 1.5, I = 0.5 - 0.75 = -0.25 -> W < 1
    # step 3: W_prev < 1 -> I frozen at -0.25;  step 4: still frozen (W_prev = P - 0.25 < 1)
    betas = run(controller, [3.0, 0.0, 0.0, 0.0, 5.0])
    outputs = [p_term(-2) + 1, p_term(1) + 0.5, p_term(1.5) - 0.25, p_term(1.5) - 0.25, p_term(-3) - 0.25]
    assert betas == pytest.approx([max(w, 1.0) for w in outputs])
    assert betas[2:] == [1.0, 1.0, 1.0]
    assert controller.state == pytest.approx({"integral": -0.25, "output": outputs[-1]})


def test_control_p_term_does_not_overflow() -> None:
    controller = control(k_i=0.0)
    assert controller.update(1e6, 0) == pytest.approx(1.01)
    assert controller.update(-1e6, 1) == pytest.approx(1.0)


# --- the closed-loop schedule protocol ---------------------------------------------------------


@pytest.mark.parametrize("make", [dynamic, control], ids=["dynamic", "control"])
def test_a_step_is_applied_once_however_often_the_loss_is_evaluated(make) -> None:
    once, twice = make(), make()
    for step, kl in enumerate([3.0, 0.5, 1.0]):
        twice.update(kl + 10, step)  # an earlier evaluation of the same step is replaced
        assert twice.update(kl, step) == once.update(kl, step)
    assert twice.state == once.state


@pytest.mark.parametrize("make", [dynamic, control], ids=["dynamic", "control"])
def test_state_dict_round_trip_continues_exactly(make) -> None:
    original = make()
    run(original, [3.0, 0.5])
    restored = make()
    restored.load_state_dict(original.state_dict())
    assert restored.last_value == original.last_value
    for step, kl in [(2, 1.0), (3, 0.25), (4, 2.0)]:
        assert restored.update(kl, step) == original.update(kl, step)


def test_state_dict_rejects_another_controller_kind() -> None:
    with pytest.raises(ValueError, match="dynamic_vae_pi"):
        control().load_state_dict(dynamic().state_dict())
    assert not callable(dynamic())  # closed loop: no value from the step alone


# --- the methods -------------------------------------------------------------------------------


def test_dynamic_vae_regularizer_uses_the_controlled_beta(build) -> None:
    model = build({"name": "dynamic_vae", "c": 4, "total_steps": 4, "period": 2, "alpha": 0.5,
                   "k_p": 1, "k_i": 0.5, "beta_init": 10})
    # KL 4: y = 2, e = 2, dP = min(2, 0) - 0 = 0 (default undershoot), dI = 1 -> beta 11
    terms = model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=0))
    assert terms["regularizer"].item() == pytest.approx(11 * 4.0)
    assert terms["kl_target"].item() == 0.0 and terms["kl_ema"].item() == pytest.approx(2.0)
    assert model.schedules()["beta"].last_value == pytest.approx(11.0)


def test_control_vae_regularizer_uses_the_controlled_beta(build) -> None:
    model = build({"name": "control_vae", "c": 2, "init_c": 0.5, "c_step": 0.5, "period": 2, "k_i": -0.5})
    terms = model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=0))
    beta = p_term(1 - 4) + 1.5  # e = 1 - 4 = -3, I = 1.5
    assert terms["regularizer"].item() == pytest.approx(beta * 4.0)
    assert terms["kl_target"].item() == 1.0
    assert model.schedules()["beta"].last_value == pytest.approx(beta)


def test_controller_defaults(build) -> None:
    dyn = build({"name": "dynamic_vae"}).config
    assert (dyn.c, dyn.k_p, dyn.k_i, dyn.alpha) == (11, 0.01, 0.005, 0.95)
    assert (dyn.beta_init, dyn.beta_min, dyn.total_steps, dyn.period) == (150, 1, 100_000, 5000)
    assert dyn.proportional_on == "undershoot"
    ctl = build({"name": "control_vae"}).config
    assert (ctl.c, ctl.k_p, ctl.k_i, ctl.beta_min) == (16, 0.01, -0.001, 1)
    assert (ctl.init_c, ctl.c_step, ctl.period) == (0.5, 0.15, 5000)
    cas = build({"name": "cascade_vae_c"}).config
    assert (cas.beta_min, cas.beta_max, cas.stage_steps) == (1, 10, 6000)


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "dynamic_vae", "total_steps": 10, "period": 20},
        {"name": "dynamic_vae", "alpha": 0},
        {"name": "dynamic_vae", "proportional_on": "both"},
        {"name": "control_vae", "period": 0},
        {"name": "cascade_vae_c", "stage_steps": 0},
    ],
)
def test_invalid_controller_configs_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(bad)


# --- CascadeVAE-C ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step, betas",
    [
        (0, [1, 10, 10, 10, 10]),
        (2, [1, 10, 10, 10, 10]),
        (3, [1, 1, 10, 10, 10]),
        (8, [1, 1, 1, 10, 10]),
        (12, [1, 1, 1, 1, 1]),
        (10**6, [1, 1, 1, 1, 1]),
    ],
)
def test_cascade_relieves_one_dimension_per_stage(build, step: int, betas: list[float]) -> None:
    model = build({"name": "cascade_vae_c", "beta_min": 1, "beta_max": 10, "stage_steps": 3})
    assert model.betas(step).tolist() == betas
    assert model.schedules()["stage"].last_value == min(step // 3, 4)
    terms = model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=step))
    assert terms["regularizer"].item() == pytest.approx(float(np.dot(betas, KL_PER_DIM.numpy())))


# --- training through the trainer --------------------------------------------------------------


def _config(method: dict, steps: int) -> dict:
    return {
        "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
        "method": method,
        "model": {"latent_dim": 4},
        "train": {"steps": steps, "batch_size": 8, "seed": 3, "report_every": 10, "prefetch": 0},
    }


METHODS = {
    "dynamic_vae": {"name": "dynamic_vae", "c": 5, "total_steps": 30, "period": 5, "k_i": 0.05},
    # a fresh VAE's KL is ~0.001-0.1: a zero set point keeps the error negative, so beta moves
    "control_vae": {"name": "control_vae", "c": 0, "init_c": 0, "c_step": 0, "k_i": -10},
    "cascade_vae_c": {"name": "cascade_vae_c", "stage_steps": 8},
}


@pytest.mark.parametrize("name", ["dynamic_vae", "control_vae"])
def test_controller_methods_train_and_resume_bit_exactly(tmp_path, name: str) -> None:
    method = METHODS[name]
    straight = train(_config(method, steps=40))
    betas = [r.schedules["beta"] for r in straight.reports]
    assert len(set(betas)) == len(betas)  # the controller moved beta
    train(_config(method, steps=20), checkpoint_dir=tmp_path)
    resumed = train(_config(method, steps=40), resume_from=tmp_path / CHECKPOINT_NAME)
    a, b = straight.method.state_dict(), resumed.method.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert straight.last_report.terms == resumed.last_report.terms
    assert straight.last_report.schedules == resumed.last_report.schedules
    assert straight.method.controller.state_dict() == resumed.method.controller.state_dict()


def test_cascade_trains_through_the_stages() -> None:
    result = train(_config(METHODS["cascade_vae_c"], steps=30))
    assert [r.schedules["stage"] for r in result.reports] == [1.0, 2.0, 3.0]
    assert all(np.isfinite(r.terms["loss"]) for r in result.reports)
