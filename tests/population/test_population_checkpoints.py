"""Population checkpoints: step-exact resume, and each member's state is a single model's checkpoint."""

from __future__ import annotations

import pytest
import torch
from population_helpers import assert_same_parameters, config, members

from disent_core.errors import CheckpointError
from disent_core.population import (
    POPULATION_CHECKPOINT_NAME,
    extract_member_checkpoint,
    load_population_checkpoint,
    member_checkpoint,
    train_population,
)
from disent_core.train import CHECKPOINT_NAME, load_checkpoint, load_trained, train

BETA = {"kind": "stages", "values": [1.0, 8.0], "boundaries": [30]}
LR = {"kind": "stages", "values": [1.0, 0.5], "boundaries": [35]}
POPULATIONS = {
    "beta_vae": [{"name": "beta_vae", "beta": b} for b in (1, BETA, 4, 8)],
    "devae_sample_one": [{"name": "devae", "betas": [b, 10], "layer_sampling": "sample_one"}
                         for b in (1, 2, 4, 8)],
}


def _configs(name: str, steps: int) -> list[dict]:
    return members(POPULATIONS[name], steps, prefetch=2, lr_multiplier=LR)


@pytest.mark.parametrize("name", list(POPULATIONS))
def test_resume_is_step_exact(tmp_path, name):
    straight = train_population(_configs(name, 50))
    half = train_population(_configs(name, 25), checkpoint_dir=tmp_path)
    assert half.checkpoint == tmp_path / POPULATION_CHECKPOINT_NAME
    assert all(m.last_report.checkpoint == half.checkpoint for m in half.members)
    resumed = train_population(_configs(name, 50), resume_from=tmp_path)
    assert resumed.step == straight.step == 50
    for got, want in zip(resumed.members, straight.members, strict=True):
        a, b = got.method.state_dict(), want.method.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in b)
        assert got.last_report.terms == want.last_report.terms
        assert got.last_report.schedules == want.last_report.schedules
        assert [r.step for r in got.reports] == [50] and got.last_report.images_per_sec > 0


def test_a_member_checkpoint_is_a_single_models_checkpoint(tmp_path):
    configs = _configs("beta_vae", 25)
    population = train_population(configs, checkpoint_dir=tmp_path / "population")
    member = 2  # shares member 0's seed, and so its data stream
    path = extract_member_checkpoint(tmp_path / "population", member, tmp_path / "member")
    assert path == tmp_path / "member" / CHECKPOINT_NAME
    single = train(configs[member], checkpoint_dir=tmp_path / "single")
    got, want = load_checkpoint(path), load_checkpoint(tmp_path / "single")
    assert got.keys() == want.keys()
    assert got["config"] == want["config"] and got["step"] == want["step"] == 25
    assert got["stream"] == want["stream"] and got["schedules"] == want["schedules"]
    assert got["lr_schedule"] == want["lr_schedule"] and got["scaler"] == want["scaler"]
    assert torch.equal(got["generator"], want["generator"])  # the same random draws, in the same order
    assert got["method"].keys() == want["method"].keys()
    for key, opt in want["optimizers"].items():
        assert got["optimizers"][key]["param_groups"] == opt["param_groups"]
        assert got["optimizers"][key]["state"].keys() == opt["state"].keys()
        for index, entries in opt["state"].items():
            assert got["optimizers"][key]["state"][index].keys() == entries.keys()
            assert torch.equal(got["optimizers"][key]["state"][index]["step"], entries["step"])
    assert_same_parameters(population.members[member].method, single.method)

    released = population.members[member].method  # a plain Method again: each parameter owns its storage
    assert not released.training
    assert all(p.untyped_storage().nbytes() == p.numel() * p.element_size() for p in released.parameters())
    method, loaded_config = load_trained(path, device="cpu")
    assert loaded_config.train.seed == configs[member]["train"]["seed"]
    a, b = method.state_dict(), population.members[member].method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)

    straight = train_population(_configs("beta_vae", 50))
    resumed = train({**configs[member], "train": {**configs[member]["train"], "steps": 50}}, resume_from=path)
    assert_same_parameters(resumed.method, straight.members[member].method)


def test_resume_refuses_a_checkpoint_of_other_members(tmp_path):
    configs = members([{"name": "beta_vae", "beta": b} for b in (1, 4)], steps=2)
    train_population(configs, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="member 1"):
        other = members([{"name": "beta_vae", "beta": b} for b in (1, 5)], steps=4)
        train_population(other, resume_from=tmp_path)
    with pytest.raises(CheckpointError, match="2 members"):
        train_population([*configs, config({"name": "beta_vae"}, 9, steps=2)], resume_from=tmp_path)
    with pytest.raises(CheckpointError, match="members 0 to 1, not 2"):
        member_checkpoint(tmp_path, 2)
    train(configs[0], checkpoint_dir=tmp_path / "single")
    with pytest.raises(CheckpointError, match="not a population checkpoint"):
        load_population_checkpoint(tmp_path / "single" / CHECKPOINT_NAME)
