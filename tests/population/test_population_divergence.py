"""A member whose terms stop being finite fails alone: the others go on as their single trainings."""

from __future__ import annotations

import math

import pytest
import torch
from population_helpers import assert_same_parameters, members

from disent_core.errors import Diverged
from disent_core.methods.factor_vae import FactorVAE
from disent_core.population import extract_member_checkpoint, member_checkpoint, train_population
from disent_core.train import load_trained, train

EXPLODING = {"kind": "stages", "values": [4.0, 1e39], "boundaries": [10]}
"""beta = 1e39 from step 10: beta * KL overflows fp32, so the loss is inf at step 10."""


def _with_steps(config: dict, steps: int) -> dict:
    return {**config, "train": {**config["train"], "steps": steps}}


def test_a_diverging_member_is_masked_out_and_the_others_equal_their_single_trainings(tmp_path):
    methods = [{"name": "beta_vae", "beta": b} for b in (1, EXPLODING, 4, 8)]
    configs = members(methods, steps=30, report_every=10)
    failures = []
    result = train_population(configs, on_failure=lambda i, e: failures.append((i, e)),
                              checkpoint_dir=tmp_path / "population")
    with pytest.raises(Diverged) as single_failure:
        train(configs[1])
    expected = single_failure.value
    assert (expected.step, expected.term, expected.value) == (10, "loss", math.inf)
    assert [(i, e.step, e.term, e.value) for i, e in failures] == [(1, 10, "loss", math.inf)]
    failed = result.members[1]
    assert failed.failure is failures[0][1] and failed.step == 10
    assert [r.step for r in failed.reports] == [10]
    assert result.step == 30
    for i in (0, 2, 3):
        assert result.members[i].failure is None and result.members[i].step == 30
        assert [r.step for r in result.members[i].reports] == [10, 20, 30]
        assert_same_parameters(result.members[i].method, train(configs[i]).method)

    # the failed member is kept as it was at the start of its failing step: its single training's
    # state after 10 steps, and a checkpoint that resumes into the same divergence
    assert_same_parameters(failed.method, train(_with_steps(configs[1], 10)).method)
    state = member_checkpoint(tmp_path / "population", 1)
    assert state["step"] == 10 and state["stream"]["position"] == 10
    path = extract_member_checkpoint(tmp_path / "population", 1, tmp_path / "member")
    method, _ = load_trained(path, device="cpu")
    a, b = method.state_dict(), failed.method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)
    with pytest.raises(Diverged) as resumed:
        train(configs[1], resume_from=path)
    assert (resumed.value.step, resumed.value.term) == (10, "loss")

    # resuming the population keeps the member failed and the others going
    more = train_population([_with_steps(c, 35) for c in configs], resume_from=tmp_path / "population")
    assert more.members[1].failure.step == 10 and more.members[1].step == 10
    assert [m.step for m in more.members] == [35, 10, 35, 35]


def test_a_population_whose_members_all_fail_stops():
    bad = {"kind": "stages", "values": [1.0, 1e39], "boundaries": [3]}
    configs = members([{"name": "beta_vae", "beta": bad}] * 2, steps=10)
    result = train_population(configs)
    assert result.step == 3
    assert [(m.failure.step, m.failure.term, m.step) for m in result.members] == [(3, "loss", 3)] * 2
    assert all(m.reports == [] for m in result.members)


def test_a_member_with_a_nan_term_fails_naming_that_term(monkeypatch):
    """A NaN forced into one member's FactorVAE TC terms: that member fails with the term the single
    trainer would name; the others train on."""
    configs = members([{"name": "factor_vae", "gamma": g} for g in (1, 10, 20)], steps=3)
    original = FactorVAE.tc_terms

    def poisoned(self, posterior, logits, d_logits):
        terms = original(self, posterior, logits, d_logits)
        if self.config.gamma == 10 and posterior.step == 1:
            terms["tc"] = terms["tc"] * math.nan
        return terms

    monkeypatch.setattr(FactorVAE, "tc_terms", poisoned)
    result = train_population(configs)
    assert [m.step for m in result.members] == [3, 1, 3]
    failure = result.members[1].failure
    assert (failure.step, failure.term) == (1, "tc") and math.isnan(failure.value)
