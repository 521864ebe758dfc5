"""The dlib conv encoder / deconv decoder: shapes, layer layout and parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from disent_core.models.conv64 import ConvEncoder, DeconvDecoder


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def dlib_encoder_params(c: int, d: int) -> int:
    """conv 4x4 C->32, 4x4 32->32, 2x2 32->64, 2x2 64->64, dense 1024->256, two heads 256->d."""
    return ((c * 32 * 16 + 32) + (32 * 32 * 16 + 32) + (32 * 64 * 4 + 64) + (64 * 64 * 4 + 64)
            + (64 * 4 * 4 * 256 + 256) + 2 * (256 * d + d))


def dlib_decoder_params(c: int, d: int) -> int:
    """dense d->256, 256->1024, deconv 4x4 64->64, 64->32, 32->32, 32->C."""
    return ((d * 256 + 256) + (256 * 1024 + 1024) + (64 * 64 * 16 + 64) + (64 * 32 * 16 + 32)
            + (32 * 32 * 16 + 32) + (32 * c * 16 + c))


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(channels: int) -> None:
    encoder, decoder = ConvEncoder(channels, 10), DeconvDecoder(10, channels)
    mean, logvar = encoder(torch.rand(2, channels, 64, 64))
    assert mean.shape == logvar.shape == (2, 10)
    assert decoder(mean).shape == (2, channels, 64, 64)


@pytest.mark.parametrize(("channels", "encoder_total", "decoder_total"), [(1, 309_204, 381_313),
                                                                          (3, 310_228, 382_339)])
def test_parameter_counts_match_disentanglement_lib(channels: int, encoder_total: int,
                                                    decoder_total: int) -> None:
    assert dlib_encoder_params(channels, 10) == encoder_total
    assert dlib_decoder_params(channels, 10) == decoder_total
    assert n_params(ConvEncoder(channels, 10)) == encoder_total
    assert n_params(DeconvDecoder(10, channels)) == decoder_total


def test_encoder_layer_layout() -> None:
    convs = [m for m in ConvEncoder(1, 10).modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(4, 4), (4, 4), (2, 2), (2, 2)]
    assert [c.stride for c in convs] == [(2, 2)] * 4
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]


def test_base_channels_scale_the_widths() -> None:
    encoder, decoder = ConvEncoder(3, 4, base_channels=8), DeconvDecoder(4, 3, base_channels=8)
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16]
    mean, _ = encoder(torch.rand(2, 3, 64, 64))
    assert mean.shape == (2, 4)
    assert decoder(mean).shape == (2, 3, 64, 64)


def erow_encoder_params(c: int, d: int) -> int:
    """conv 4x4 C->32, 32->32, 32->64, 64->64 (s2 p1), 4x4 valid 64->256, heads 256->d (the port's
    single 256->2d layer has the same count)."""
    return ((c * 32 * 16 + 32) + (32 * 32 * 16 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 16 + 64)
            + (64 * 256 * 16 + 256) + 2 * (256 * d + d))


def erow_decoder_params(c: int, d: int) -> int:
    """dense d->256, deconv 4x4 256->64 (1->4), 64->64, 64->32, 32->32, 32->C (s2 p1)."""
    return ((d * 256 + 256) + (256 * 64 * 16 + 64) + (64 * 64 * 16 + 64) + (64 * 32 * 16 + 32)
            + (32 * 32 * 16 + 32) + (32 * c * 16 + c))


@pytest.mark.parametrize("channels", [1, 3])
def test_the_erow_port_architecture_has_its_layers_and_shapes(channels: int) -> None:
    encoder = ConvEncoder(channels, 10, architecture="erow")
    decoder = DeconvDecoder(10, channels, architecture="erow")
    assert n_params(encoder) == erow_encoder_params(channels, 10)
    assert n_params(decoder) == erow_decoder_params(channels, 10)
    assert all(conv.kernel_size == (4, 4) for conv in encoder.modules() if isinstance(conv, nn.Conv2d))
    assert not any(isinstance(m, nn.Linear) and m.out_features == 1024 for m in decoder.modules())
    mean, logvar = encoder(torch.rand(2, channels, 64, 64))
    assert mean.shape == logvar.shape == (2, 10)
    assert decoder(mean).shape == (2, channels, 64, 64)
    with pytest.raises(ValueError, match="architecture must be one of dlib, erow"):
        ConvEncoder(channels, 10, architecture="google")
