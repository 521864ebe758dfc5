"""A trained method as a plain PyTorch module: images in, representation out.

A ``Method`` is trained through ``loss`` and read through its protocols (``representation``,
``posterior``, ``decode``: ``disent_core/latents.py``); it has no ``forward``, so a tool that takes
"a model" and calls it (MLflow's PyTorch flavour, an ``nn.Sequential`` downstream) cannot use it as
it is. ``RepresentationModel`` is that model: ``model(x)`` is the method's ``representation(x)``
(the posterior mean for the Gaussian VAEs, the code the metrics score), and the whole method stays
reachable as ``model.method`` (its decoder, posterior, discriminator, config), so wrapping it loses
nothing of what was trained.

``load_representation_model`` builds one from a checkpoint written by ``disent_core.train.train``,
on the CPU and in eval mode: every tensor and generator it holds is a CPU one, so that it can be
pickled on a GPU worker and loaded on a machine without a GPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from disent_core.methods.base import Method
from disent_core.train import load_trained


class RepresentationModel(nn.Module):
    """``forward(x)`` = ``method.representation(x)``; the trained method is ``self.method``.

    Args:
        method: a trained method (in eval mode for a deterministic representation).
    """

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The representation of a batch of observations.

        Args:
            x: observations (N, C, H, W), float in [0, 1], of the shape the method was trained on
                (``method.context.observation_shape``).

        Returns:
            Codes (N, d): the posterior means for the Gaussian VAEs.
        """
        return self.method.representation(x)


def load_representation_model(checkpoint: str | Path) -> RepresentationModel:
    """The model of a checkpoint written by ``train``, on the CPU and in eval mode.

    Args:
        checkpoint: ``checkpoint.pt`` or the directory holding it.

    Returns:
        The ``RepresentationModel`` of the trained method.

    Raises:
        CheckpointError: the checkpoint is missing, unreadable or does not fit its config.
    """
    method, _ = load_trained(checkpoint, device="cpu")
    return RepresentationModel(method).eval()
