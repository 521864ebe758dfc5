"""The memory estimate of a training run: exact layer sizes, and a fast refusal of what cannot fit."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from disent_core.config import load_config
from disent_core.errors import ConfigError
from disent_core.memory import (
    available_memory,
    check_training_memory,
    estimate_training_memory,
    format_bytes,
)
from disent_core.models.conv64 import ConvEncoder, DeconvDecoder
from disent_core.train import train


def _config(batch_size: int = 8, **model) -> dict:
    return {
        "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
        "method": {"name": "beta_vae", "beta": 4},
        "model": {"latent_dim": 6, **model},
        "train": {"steps": 2, "batch_size": batch_size, "prefetch": 0},
    }


@pytest.mark.parametrize("architecture", ["dlib", "erow"])
def test_the_estimate_counts_the_real_networks_weights_and_layer_outputs(architecture: str) -> None:
    config = load_config(_config(batch_size=5, architecture=architecture, base_channels=16))
    estimate = estimate_training_memory(config)
    encoder = ConvEncoder(1, 6, 16, architecture)
    decoder = DeconvDecoder(6, 1, 16, architecture)
    outputs: list[int] = []
    for module in (*encoder.modules(), *decoder.modules()):
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.ReLU):
            module.register_forward_hook(lambda _m, _i, out: outputs.append(out[0].numel()))
    mean, _ = encoder(torch.zeros(5, 1, 64, 64))
    decoder(mean)
    weights = sum(p.numel() for p in (*encoder.parameters(), *decoder.parameters()))
    assert estimate.parameters == 4 * weights
    assert estimate.optimizer == 3 * estimate.parameters
    # every layer's output, plus the input and the per-pixel loss, per image of the batch
    assert estimate.activations == 4 * 5 * (sum(outputs) + 2 * 64 * 64)
    assert estimate.batches == 5 * 64 * 64


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"batch_size": 1_000_000}, "a batch of 1000000 images"),
        ({"base_channels": 100_000}, "model.base_channels 100000"),
    ],
)
def test_a_run_that_cannot_fit_is_refused_in_under_a_second(changes: dict, names: str) -> None:
    batch = changes.get("batch_size", 8)
    model = {k: v for k, v in changes.items() if k != "batch_size"}
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        train(_config(batch_size=batch, **model))
    assert time.perf_counter() - started < 1.0
    message = str(info.value)
    assert "of host memory but" in message and "is available" in message and names in message


def test_an_ordinary_run_fits() -> None:
    estimate = check_training_memory(load_config(_config()))
    assert 0 < estimate.total < 200 * 1024**2
    assert available_memory() > 0


def test_byte_counts_read_in_binary_units() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 1024**4) == "3.0 TiB"
