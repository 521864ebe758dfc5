"""The discriminated config union and the name lookup."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from disent_core.errors import UnknownNameError
from disent_core.methods.base import MethodContext
from disent_core.methods.beta_vae import BetaVAE, BetaVAEConfig
from disent_core.methods.registry import METHODS, AnyMethodConfig, build_method, method_class
from disent_core.schedules import LinearConfig

ADAPTER = TypeAdapter(AnyMethodConfig)


def test_validates_a_beta_vae_config() -> None:
    config = ADAPTER.validate_python({"name": "beta_vae", "beta": 4})
    assert isinstance(config, BetaVAEConfig)
    assert config.beta == 4.0


def test_beta_may_be_a_schedule() -> None:
    config = ADAPTER.validate_python(
        {"name": "beta_vae", "beta": {"kind": "linear", "start": 0, "end": 4, "steps": 10}}
    )
    assert isinstance(config.beta, LinearConfig)


@pytest.mark.parametrize("name", list(METHODS))
def test_defaults_round_trip(name: str) -> None:
    config = ADAPTER.validate_python({"name": name})
    assert ADAPTER.validate_python(config.model_dump()) == config
    assert type(config) is METHODS[name].config_class


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "beta_vea", "beta": 4},
        {"beta": 4},
        {"name": "beta_vae", "beta": -1},
        {"name": "beta_vae", "beta": 4, "gamma": 1},
        {"name": "beta_vae", "beta": {"kind": "stages", "values": [1, 2], "boundaries": []}},
        {"name": "annealed_vae", "c_max": -5},
        {"name": "annealed_vae", "gamma": -1},
        {"name": "annealed_vae", "iteration_threshold": 0},
        {"name": "factor_vae", "gamma": -10},
        {"name": "factor_vae", "discriminator_lr": 0},
        {"name": "factor_vae", "discriminator_betas": [1.5, 0.9]},
        {"name": "beta_tc_vae", "beta": -1},
        {"name": "dip_vae_i", "lambda_od": -1},
        {"name": "dip_vae_ii", "lambda_d": -1},
    ],
)
def test_rejects_unknown_names_and_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(bad)


def test_invalid_lambda_od_is_the_only_error() -> None:
    with pytest.raises(ValidationError) as info:
        ADAPTER.validate_python({"name": "dip_vae_i", "lambda_od": "x"})
    assert [e["loc"][-1] for e in info.value.errors()] == ["lambda_od"]


def test_method_class_suggests_close_names() -> None:
    assert method_class("beta_vae") is BetaVAE
    with pytest.raises(UnknownNameError, match="did you mean beta_vae"):
        method_class("beta_vea")


@pytest.mark.parametrize("name", list(METHODS))
def test_build_method(name: str, context: MethodContext) -> None:
    method = build_method(ADAPTER.validate_python({"name": name}), context)
    assert type(method) is METHODS[name]
