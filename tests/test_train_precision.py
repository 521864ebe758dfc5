"""``train.precision``: bf16 and fp16 autocast of the training step, against the fp32 reference."""

import json

import pytest
import torch

from disent_core.config import load_config
from disent_core.errors import CheckpointError
from disent_core.methods.registry import METHODS
from disent_core.train import AUTOCAST_DTYPES, CHECKPOINT_NAME, FP16_INIT_SCALE, _Run, load_checkpoint, train

SMALL_GRID = {"sizes": [3, 2, 4, 4, 4]}
BF16_LOSS_TOLERANCE = 0.02
"""bf16's total loss stays within 2 % of fp32's at every report of 120 steps (measured: under 0.5 %)."""


def _config(steps=20, precision="fp32", **train_options):
    return {
        "dataset": {"name": "dsprites_procedural", "options": SMALL_GRID},
        "method": {"name": "beta_vae", "beta": 4},
        "model": {"latent_dim": 4},
        "train": {"steps": steps, "batch_size": 8, "seed": 3, "report_every": 10, "prefetch": 0,
                  "precision": precision, **train_options},
    }


def test_bf16_training_follows_fp32_within_the_stated_tolerance():
    def losses(precision):
        config = {
            "dataset": {"name": "dsprites_procedural"},
            "method": {"name": "beta_vae", "beta": 4},
            "train": {"steps": 120, "batch_size": 16, "report_every": 20, "precision": precision},
        }
        return [(r.terms["loss"], r.terms["kl"]) for r in train(config).reports]

    fp32, bf16 = losses("fp32"), losses("bf16")
    assert len(fp32) == len(bf16) == 6
    for (loss32, kl32), (loss16, kl16) in zip(fp32, bf16, strict=True):
        assert loss16 == pytest.approx(loss32, rel=BF16_LOSS_TOLERANCE)
        assert kl16 == pytest.approx(kl32, rel=0.15, abs=0.1)
    assert fp32 != bf16, "bf16 autocast must change the arithmetic"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_resumes_bit_exactly(tmp_path, precision):
    straight = train(_config(steps=20, precision=precision))
    train(_config(steps=10, precision=precision), checkpoint_dir=tmp_path)
    resumed = train(_config(steps=20, precision=precision), resume_from=tmp_path / CHECKPOINT_NAME)
    for key, value in straight.method.state_dict().items():
        assert torch.equal(value, resumed.method.state_dict()[key]), key
    assert straight.last_report.terms == resumed.last_report.terms


def test_fp16_checkpoints_and_reports_its_gradient_scaler_and_fp32_runs_none(tmp_path):
    result = train(_config(steps=4, precision="fp16"), checkpoint_dir=tmp_path / "fp16")
    scaler = load_checkpoint(tmp_path / "fp16")["scaler"]
    assert scaler["scale"] == result.last_report.schedules["grad_scale"] == FP16_INIT_SCALE
    assert scaler["_growth_tracker"] == 4, "no step of the first four overflowed"
    assert "grad_scale" not in train(_config(steps=4), checkpoint_dir=tmp_path / "fp32").last_report.schedules
    assert load_checkpoint(tmp_path / "fp32")["scaler"] == {}


def test_a_checkpoint_resumes_only_with_its_precision(tmp_path):
    train(_config(steps=10, precision="bf16"), checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"train\.precision: checkpoint 'bf16', config 'fp32'"):
        train(_config(steps=20), resume_from=tmp_path)


def test_a_checkpoint_written_before_the_precision_field_resumes_as_fp32(tmp_path):
    train(_config(steps=10), checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path)
    saved = json.loads(state["config"])
    del saved["train"]["precision"]
    state["config"] = json.dumps(saved, sort_keys=True)
    del state["scaler"]
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    assert train(_config(steps=12), resume_from=tmp_path).step == 12
    with pytest.raises(CheckpointError, match=r"train\.precision"):
        train(_config(steps=12, precision="bf16"), resume_from=tmp_path)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_methods_loss_terms_stay_fp32_under_autocast(name):
    run = _Run(load_config({**_config(), "method": {"name": name}}))
    x = next(run.stream).float() / 255
    with torch.autocast("cpu", dtype=AUTOCAST_DTYPES["bf16"]):
        terms = run.method.loss(x, 0)
    assert {key: value.dtype for key, value in terms.items() if value.dtype != torch.float32} == {}
