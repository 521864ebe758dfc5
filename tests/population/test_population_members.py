"""Which member lists form one population, and the message for those that do not."""

from __future__ import annotations

import pytest
from population_helpers import config, members

from disent_core.config import load_config
from disent_core.errors import ConfigError
from disent_core.population import check_population, population_key, supported_methods, train_population

LOCATELLO = ("beta_vae", "annealed_vae", "factor_vae", "beta_tc_vae", "dip_vae_i", "dip_vae_ii")


def _check(configs: list[dict]) -> None:
    check_population([load_config(c) for c in configs])


def _changed(base: dict, section: str, **values: object) -> dict:
    return {**base, section: {**base[section], **values}}


def test_the_locatello_methods_and_devae_are_supported():
    assert set(LOCATELLO) | {"devae"} <= set(supported_methods())


def test_members_may_differ_in_seed_and_loss_weights():
    schedule = {"kind": "linear", "start": 1, "end": 8, "steps": 10}
    _check(members([{"name": "beta_vae", "beta": b} for b in (1, schedule, 4, 8)]))
    _check(members([{"name": "annealed_vae", "c_max": 5}, {"name": "annealed_vae", "gamma": 10,
                                                              "capacity": schedule}]))
    _check(members([{"name": "factor_vae", "gamma": g} for g in (1, 40)]))
    _check(members([{"name": "devae", "betas": [1, 10, 40]},
                    {"name": "devae", "betas": [2, 4, 8], "scale": 0.5}]))
    _check(members([{"name": "dip_vae_ii", "lambda_od": 1}, {"name": "dip_vae_ii", "lambda_d": 3}]))
    noted = _changed(config({"name": "beta_vae"}, 2), "train", steps_note="x")
    _check([config({"name": "beta_vae"}, 1), noted])


@pytest.mark.parametrize(
    ("section", "change", "field"),
    [
        ("model", {"base_channels": 8}, "model.base_channels: member 0 has 4, member 1 has 8"),
        ("model", {"latent_dim": 6}, "model.latent_dim: member 0 has 4, member 1 has 6"),
        ("model", {"architecture": "erow"}, "model.architecture: member 0 has 'dlib', member 1 has 'erow'"),
        ("model", {"recon": "l2"}, "model.recon"),
        ("train", {"batch_size": 16}, "train.batch_size: member 0 has 8, member 1 has 16"),
        ("train", {"optimizer": {"lr": 1e-3}}, "train.optimizer.lr: member 0 has 0.0001, member 1 has 0.001"),
        ("train", {"steps": 60}, "train.steps"),
        ("train", {"lr_multiplier": {"kind": "constant", "value": 0.5}}, "train.lr_multiplier"),
        ("dataset", {"options": {"sizes": [3, 2, 4, 4, 2]}}, "dataset.options.sizes"),
    ],
)
def test_a_member_changing_the_graph_optimiser_or_data_is_refused_naming_the_field(section, change, field):
    first = config({"name": "beta_vae", "beta": 1}, 0)
    second = _changed(config({"name": "beta_vae", "beta": 4}, 1), section, **change)
    with pytest.raises(ConfigError, match="member 1 cannot train in one population") as error:
        _check([first, second])
    assert field in str(error.value)
    assert "may differ only in train.seed, train.steps_note, method.beta" in str(error.value)
    with pytest.raises(ValueError, match="member 1 cannot train"):  # before anything is built
        train_population([first, second])


@pytest.mark.parametrize(
    ("methods", "field"),
    [
        ([{"name": "factor_vae"}, {"name": "factor_vae", "discriminator_lr": 1e-3}],
         "method.discriminator_lr"),
        ([{"name": "devae"}, {"name": "devae", "layer_sampling": "sample_one"}], "method.layer_sampling"),
        ([{"name": "devae", "betas": [1, 10]}, {"name": "devae", "betas": [1, 10, 40]}],
         "the number of spaces, len(method.betas): member 0 has 2, member 1 has 3"),
    ],
)
def test_method_options_that_change_the_graph_or_optimiser_are_refused(methods, field):
    with pytest.raises(ConfigError, match="cannot train in one population") as error:
        _check(members(methods))
    assert field in str(error.value)


def test_other_refusals_say_why():
    with pytest.raises(ConfigError, match="trains method 'beta_tc_vae' and member 0 'beta_vae'"):
        _check(members([{"name": "beta_vae"}, {"name": "beta_tc_vae"}]))
    with pytest.raises(ConfigError, match="method 'did' does not train as a population; methods that do: "
                                          "annealed_vae, beta_tc_vae, beta_vae"):
        _check(members([{"name": "did"}]))
    with pytest.raises(ConfigError, match="at least one member"):
        _check([])
    with pytest.raises(ConfigError, match="channels_last"):
        _check(members([{"name": "beta_vae"}], channels_last=True))
    with pytest.raises(ConfigError, match="fp16"):
        _check(members([{"name": "beta_vae"}], precision="fp16"))


def test_population_key_is_equal_exactly_for_configs_that_train_together():
    def key(c: dict) -> str | None:
        return population_key(load_config(c))

    schedule = {"kind": "linear", "start": 1, "end": 8, "steps": 10}
    together = members([{"name": "beta_vae", "beta": b} for b in (1, schedule, 4, 8)])
    assert len({key(c) for c in together}) == 1
    noted = _changed(config({"name": "beta_vae", "beta": 2}, 9), "train", steps_note="x")
    assert key(noted) == key(together[0])
    apart = [
        _changed(together[1], "train", batch_size=16),
        _changed(together[1], "model", latent_dim=6),
        config({"name": "beta_tc_vae"}, 3),
        *members([{"name": "devae", "betas": [1, 10]}, {"name": "devae", "betas": [1, 10, 40]}]),
    ]
    assert len({key(c) for c in [together[0], *apart]}) == len(apart) + 1
    for separate in (members([{"name": "did"}]), members([{"name": "beta_vae"}], channels_last=True),
                     members([{"name": "beta_vae"}], precision="fp16")):
        assert key(separate[0]) is None
