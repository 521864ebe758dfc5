"""FactorVAE's total-correlation discriminator (Kim & Mnih 2018; disentanglement_lib).

An MLP d -> 1000 x 6 -> 2 with LeakyReLU(0.2) after each hidden layer. Its two logits score
"z drawn from q(z)" (index 0) against "z with each dimension permuted across the batch" (index 1).
"""

from __future__ import annotations

import torch
from torch import nn

from disent_core.models.outputs import full_precision


class FactorDiscriminator(nn.Module):
    """z (N, d) -> logits (N, 2)."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6, slope: float = 0.2) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(slope)]
            width = hidden
        blocks.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The two logits of each code: index 0 "from q(z)", index 1 "permuted".

        Args:
            z: codes (N, latent_dim).

        Returns:
            Logits (N, 2), at least fp32 under autocast (``outputs.full_precision``).
        """
        return full_precision(self.net(z))
