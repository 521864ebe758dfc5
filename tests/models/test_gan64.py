"""The GAN networks of DiD: shapes, no normalisation in the critic, a code-dependent generator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from disent_core.models.conv64 import ConvEncoder, DeconvDecoder
from disent_core.models.gan64 import ConvNet, DCGANGenerator


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(channels: int) -> None:
    generator, net = DCGANGenerator(10, channels, 8), ConvNet(channels, 7, 8)
    images = generator(torch.rand(4, 10))
    assert images.shape == (4, channels, 64, 64)
    assert net(images).shape == (4, 7)


def test_conv_net_is_the_dlib_encoder_trunk_with_one_head() -> None:
    net, encoder = ConvNet(3, 10), ConvEncoder(3, 10)
    trunk = sum(p.numel() for p in encoder.features.parameters())
    assert sum(p.numel() for p in net.parameters()) == trunk + 256 * 10 + 10
    assert not any(isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm) for m in net.modules())


def test_generator_output_depends_on_the_code_at_initialisation() -> None:
    codes = 2 * torch.rand(64, 5, generator=torch.Generator().manual_seed(0)) - 1
    torch.manual_seed(0)
    with torch.no_grad():
        spread = DCGANGenerator(5, 1, 8)(codes).std(0).mean()
        decoder_spread = DeconvDecoder(5, 1, 8)(codes).std(0).mean()
    assert spread > 0.1 > 100 * decoder_spread  # why DiD does not reuse the VAE decoder as G
