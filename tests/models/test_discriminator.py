"""FactorVAE's discriminator: 6 x 1000 LeakyReLU(0.2) layers and two logits."""

from __future__ import annotations

import torch
from torch import nn

from disent_core.models.discriminator import FactorDiscriminator


def test_layout_and_output() -> None:
    disc = FactorDiscriminator(10)
    linears = [m for m in disc.modules() if isinstance(m, nn.Linear)]
    activations = [m for m in disc.modules() if isinstance(m, nn.LeakyReLU)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(10, 1000), *[(1000, 1000)] * 5, (1000, 2)]
    assert len(activations) == 6
    assert all(a.negative_slope == 0.2 for a in activations)
    assert isinstance(disc.net[-1], nn.Linear)  # logits, no activation after the last layer
    assert sum(p.numel() for p in disc.parameters()) == (10 * 1000 + 1000) + 5 * (1000 * 1000 + 1000) + 2002
    assert disc(torch.randn(3, 10, generator=torch.Generator().manual_seed(0))).shape == (3, 2)
