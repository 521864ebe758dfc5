"""AnnealedVAE: R + gamma * |KL - C(t)|, C(t) = min(c_max, c_max * t / T) from the global step."""

from __future__ import annotations

import pytest
import torch

from disent_core.methods.base import Posterior

KL_PER_DIM = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0], dtype=torch.float64)  # sum 10.0
MEAN = torch.zeros(3, 5, dtype=torch.float64)


@pytest.mark.parametrize(
    ("step", "capacity"),
    [(0, 0.0), (1, 25e-5), (40_000, 10.0), (50_000, 12.5), (100_000, 25.0), (250_000, 25.0)],
)
def test_capacity_ramp_and_loss(build, step: int, capacity: float) -> None:
    model = build({"name": "annealed_vae", "c_max": 25, "gamma": 1000, "iteration_threshold": 100_000})
    expected_c = min(25.0, 25.0 * step / 100_000)
    assert expected_c == pytest.approx(capacity)
    terms = model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=step))
    assert model.schedules()["capacity"].last_value == pytest.approx(capacity)
    assert terms["regularizer"].item() == pytest.approx(1000 * abs(10.0 - capacity))


def test_capacity_depends_on_the_step_only_not_on_calls(build) -> None:
    model = build({"name": "annealed_vae", "c_max": 10, "iteration_threshold": 100})
    values = [model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=s))["regularizer"].item()
              for s in (50, 50, 50, 20, 80)]
    values = [10.0 - v / 1000 for v in values]  # |KL - C| with KL = 10 > C
    assert values == pytest.approx([5.0, 5.0, 5.0, 2.0, 8.0])


def test_loss_reads_the_step_it_is_given(build, batch) -> None:
    model = build({"name": "annealed_vae"})
    model.loss(batch, step=50_000)
    assert model.schedules()["capacity"].last_value == pytest.approx(12.5)


def test_capacity_schedule_overrides_the_ramp(build) -> None:
    model = build(
        {"name": "annealed_vae", "capacity": {"kind": "stages", "values": [1, 6], "boundaries": [10]}}
    )
    assert set(model.schedules()) == {"capacity"}
    low = model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=9))
    high = model.regularizer(Posterior(MEAN, MEAN, MEAN, KL_PER_DIM, step=10))
    assert low["regularizer"].item() == pytest.approx(1000 * 9.0)
    assert high["regularizer"].item() == pytest.approx(1000 * 4.0)
