import copy
import os

import pytest
import torch

from disent_core.config import load_config
from disent_core.errors import CheckpointError, ConfigError, Diverged
from disent_core.methods.beta_vae import BetaVAE
from disent_core.train import (
    CHECKPOINT_NAME,
    check_resumable,
    check_runnable,
    load_checkpoint,
    load_trained,
    set_learning_rates,
    train,
)

SMALL_GRID = {"sizes": [3, 2, 4, 4, 4]}


def _config(method=None, steps=20, **train):
    return {
        "dataset": {"name": "dsprites_procedural", "options": SMALL_GRID},
        "method": method or {"name": "beta_vae", "beta": 4},
        "model": {"latent_dim": 4},
        "train": {"steps": steps, "batch_size": 8, "seed": 3, "report_every": 10, "prefetch": 0, **train},
    }


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize(
    "method",
    [
        {"name": "beta_vae", "beta": 4},
        {"name": "factor_vae", "gamma": 10},
        {"name": "annealed_vae", "c_max": 5, "iteration_threshold": 50},
    ],
    ids=["beta_vae", "factor_vae", "annealed_vae"],
)
def test_resume_is_bit_exact(tmp_path, method):
    steps = 200 if method["name"] == "beta_vae" else 60
    straight = train(_config(method, steps=steps, prefetch=2))
    half = _config(method, steps=steps // 2, prefetch=2)
    train(half, checkpoint_dir=tmp_path)
    resumed = train(_config(method, steps=steps, prefetch=2), resume_from=tmp_path / CHECKPOINT_NAME)
    assert resumed.step == straight.step == steps
    _assert_same_state(straight.method, resumed.method)
    assert straight.last_report.terms == resumed.last_report.terms


def test_reports_carry_terms_kl_per_dim_schedules_and_speed():
    reports = []
    result = train(_config(steps=20), on_report=reports.append)
    assert [r.step for r in reports] == [10, 20]
    report = reports[-1]
    assert {"loss", "recon", "kl"} <= report.terms.keys()
    assert len(report.latent_information) == 4 and report.information_name == "KL"
    assert report.terms["kl"] == pytest.approx(sum(report.latent_information), rel=1e-5)
    assert report.schedules["beta"] == 4.0
    assert report.schedules["lr.loss"] == pytest.approx(1e-4)
    assert report.images_per_sec > 0
    assert result.step == 20 and result.checkpoint is None


def test_lr_multiplier_schedule_sets_every_optimiser():
    sched = {"kind": "stages", "values": [1.0, 0.1], "boundaries": [10]}
    reports = []
    train(_config({"name": "factor_vae"}, steps=20, lr_multiplier=sched), on_report=reports.append)
    assert reports[0].schedules["lr.loss"] == pytest.approx(1e-4)
    assert reports[-1].schedules["lr.loss"] == pytest.approx(1e-5)
    assert reports[-1].schedules["lr.discriminator_loss"] == pytest.approx(1e-5)
    assert reports[-1].schedules["lr_multiplier"] == pytest.approx(0.1)


def test_training_lowers_the_loss():
    result = train(_config(steps=150, report_every=10, batch_size=32))
    first, last = result.reports[0].terms["recon"], result.reports[-1].terms["recon"]
    assert last < 0.7 * first


def test_divergence_raises_with_step_and_term(monkeypatch):
    original = BetaVAE.regularizer

    def exploding(self, posterior):
        terms = original(self, posterior)
        if posterior.step == 7:
            terms["regularizer"] = terms["regularizer"] * float("nan")
        return terms

    monkeypatch.setattr(BetaVAE, "regularizer", exploding)
    with pytest.raises(Diverged) as info:
        train(_config(steps=20))
    assert info.value.step == 7
    assert info.value.term in {"loss", "regularizer"}
    assert "step 7" in str(info.value)


def test_check_dataset_refuses_data_before_the_first_step(tmp_path):
    seen = []

    def refuse(dataset):
        seen.append(dataset.provenance.label())
        raise ConfigError("not this data")

    reports = []
    with pytest.raises(ConfigError, match="not this data"):
        train(_config(steps=20), reports.append, checkpoint_dir=tmp_path, check_dataset=refuse)
    assert seen == ["procedural"] and reports == [] and not list(tmp_path.iterdir())


def test_checkpoint_loads_with_weights_only_and_holds_every_state(tmp_path):
    train(_config(steps=10), checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["step"] == 10
    assert {"method", "optimizers", "schedules", "stream", "generator"} <= state.keys()
    assert state["stream"]["position"] == 10
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_with_a_different_config_is_refused(tmp_path):
    train(_config(steps=10), checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="method"):
        train(_config({"name": "beta_vae", "beta": 8}, steps=20), resume_from=tmp_path)


def test_corrupt_checkpoint_is_reported(tmp_path):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_channels_last_trains_to_the_same_numbers():
    a = train(_config(steps=5))
    b = train(_config(steps=5, channels_last=True))
    assert b.last_report.terms["loss"] == pytest.approx(a.last_report.terms["loss"], rel=1e-4)


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"method": {"name": "beta_vae", "beta": -1}}, "method.beta"),
        ({"method": {"name": "beta_vea"}}, "did you mean beta_vae"),
        ({"dataset": {"name": "dsprite"}}, "dataset.name"),
        ({"train": {"steps": 0}}, "train.steps"),
        ({"model": {"latent_dim": 10, "typo": 1}}, "model.typo: unknown key"),
    ],
)
def test_invalid_configs_name_the_field(patch, message):
    config = copy.deepcopy(_config())
    for key, value in patch.items():
        config[key] = {**config[key], **value} if key == "train" else value
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_flat_params_are_dotted():
    params = load_config(_config()).flat_params()
    assert params["method.beta"] == 4
    assert params["train.optimizer.lr"] == 1e-4
    assert params["dataset.options.sizes"] == [3, 2, 4, 4, 4]


@pytest.mark.parametrize(
    "method",
    [{"name": "beta_vae", "beta": 4}, {"name": "devae"}, {"name": "deft", "variant": "B", "stage_steps": 5}],
    ids=["beta_vae", "devae", "deft"],
)
def test_the_erow_architecture_is_a_model_option(method):
    config = _config(method, steps=10)
    config["model"]["architecture"] = "erow"
    result = train(config)
    first_conv = next(m for m in result.method.modules() if isinstance(m, torch.nn.Conv2d))
    dlib_count = sum(p.numel() for p in train(_config(method, steps=1)).method.parameters())
    assert first_conv.kernel_size == (4, 4) and result.step == 10
    assert sum(p.numel() for p in result.method.parameters()) != dlib_count


def test_did_refuses_the_erow_architecture():
    config = _config({"name": "did"}, steps=1)
    config["model"]["architecture"] = "erow"
    with pytest.raises(ConfigError, match="DiD builds its own networks"):
        train(config)


def test_set_learning_rates_applies_the_methods_factors_and_the_multiplier():
    class Factors:
        name = "stub"

        def lr_factors(self, step):
            return {"loss": [1.0, 0.5 if step >= 2 else 0.0]}

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
    main = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:2], "lr": 0.2}], lr=0.1)
    other = torch.optim.SGD(params[2:], lr=0.3)
    optimizers = [("loss", main), ("other", other)]
    set_learning_rates(Factors(), optimizers, step=0)
    assert [g["lr"] for g in main.param_groups] == [0.1, 0.0]
    set_learning_rates(Factors(), optimizers, step=2, multiplier=0.5)
    assert [g["lr"] for g in main.param_groups] == pytest.approx([0.05, 0.05])
    assert [g["base_lr"] for g in main.param_groups] == [0.1, 0.2]
    assert other.param_groups[0]["lr"] == pytest.approx(0.15)
    with pytest.raises(ValueError, match="2 factors for the 'loss' optimiser"):
        set_learning_rates(Factors(), [("loss", other)], step=0)


def _checkpoint(tmp_path, state):
    path = tmp_path / CHECKPOINT_NAME
    torch.save(state, path)
    return path


def test_a_checkpoint_of_the_wrong_structure_is_a_checkpoint_error(tmp_path):
    train(_config(steps=5), checkpoint_dir=tmp_path)
    good = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    cases = {
        "a list": ([1, 2], "holds a list"),
        "no weights": ({k: v for k, v in good.items() if k != "method"}, "it lacks method"),
        "foreign weights": ({**good, "method": {"bogus": torch.zeros(2)}}, "does not fit this model"),
        "foreign optimiser state": ({**good, "optimizers": {}}, "does not fit this model"),
    }
    for name, (state, message) in cases.items():
        path = _checkpoint(tmp_path, state)
        with pytest.raises(CheckpointError, match=message):
            train(_config(steps=10), resume_from=path)
        if name != "foreign optimiser state":
            with pytest.raises(CheckpointError, match=message):
                load_trained(path)


def test_a_refused_resume_is_refused_before_the_data_and_model_are_built(tmp_path, monkeypatch):
    train(_config(steps=5), checkpoint_dir=tmp_path)
    import disent_core.train as trainer

    monkeypatch.setattr(trainer, "_Run", lambda config: pytest.fail("built a run for a refused resume"))
    with pytest.raises(CheckpointError, match="different configuration"):
        train(_config({"name": "beta_vae", "beta": 8}, steps=10), resume_from=tmp_path)
    with pytest.raises(CheckpointError, match="different configuration"):
        check_resumable(tmp_path, load_config(_config({"name": "beta_vae", "beta": 8})))


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"seed": 2**64}, "train.seed: must be <= 9223372036854775807"),
        ({"optimizer": {"betas": [0.9, 1.5]}}, r"train.optimizer.betas.1: must be < 1"),
        ({"optimizer": {"betas": [float("nan"), 0.9]}}, r"train.optimizer.betas.0: must be a finite number"),
        ({"optimizer": {"lr": float("inf")}}, r"train.optimizer.lr: must be a finite number"),
    ],
)
def test_values_that_would_fail_inside_torch_are_refused_by_the_config(patch, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_config(**patch))


def test_more_threads_than_cpus_are_refused_before_anything_is_built(monkeypatch):
    import disent_core.train as trainer

    monkeypatch.setattr(trainer, "_Run", lambda config: pytest.fail("built a run that cannot run"))
    with pytest.raises(ConfigError, match=rf"train.threads: must be <= {os.cpu_count()}, the CPUs"):
        train(_config(threads=(os.cpu_count() or 1) + 1))
    with pytest.raises(ConfigError, match=r"train\.threads"):
        check_runnable(load_config(_config(threads=10**5)))


def test_dataset_options_are_checked_against_the_factory_without_loading_data():
    config = _config()
    config["dataset"] = {"name": "dsprites_procedural", "options": {"cache": "bogus", "colour": 1}}
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value).splitlines()[1] == (
        "  dataset.options: cache: Input should be 'lazy' or 'packed', got 'bogus'; dataset "
        "'dsprites_procedural' has no option 'colour'; its options are: sizes, cache"
    )
